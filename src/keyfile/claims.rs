//! The key file's claims (DESIGN §3) and their rules live in the device crate, so the server
//! and devices read them the same way. What the claims mean for seats (capacity, ceiling) is
//! in `crate::seats::rules`.

pub use seatkeep_device::keyfile::claims::*;
