//! Metered usage on the device (DESIGN §10): the packet formats both sides use, and the
//! meter a product embeds — its balance, its clock, its ticks and what it enforces.
//!
//! * [`terms`]: the key file's `meter` claim and the pool it sells;
//! * [`wire`]: packet request, packet, time token and the answer carrying them;
//! * [`Meter`]: the device's meter. It verifies packets with the server key of the key file
//!   (provider key → key file → device key → packet), keeps buckets of units with their
//!   expiry, a high-water mark of trusted time, and charges ticks;
//! * [`state`] and [`StateStore`]: the sealed state and where the product keeps it.
//!
//! The product passes both clocks on every call ([`Clocks`]: the wall clock and a monotonic
//! one) and 32 random bytes for each request; the library does no I/O.
//!
//! A product's loop, in short (`examples/metered.rs` runs it end to end):
//! ```text
//! meter = Meter::open(&verified_device_key, device_signing_key, store)?
//! at start:        meter.login(clocks)?          -> Active | Low | Locked(reason)
//! while running:   meter.tick(clocks)?           (once a minute or more often)
//! Low or Locked:   token = meter.request(24, true, random, clocks)?
//!                  POST /api/v1/activations/{seat}/packets  (application/jose, token)
//!                  meter.apply_answer(&answer, clocks)?
//! ```

mod apply;
mod engine;
pub mod state;
mod store;
pub mod terms;
pub mod wire;

pub use apply::{AnswerReport, Applied, ApplyError};
pub use engine::{CLOCK_TOLERANCE_SECS, Clocks, Enforcement, LockReason, Meter, MeterError};
pub use state::UsageState;
pub use store::{MemoryStore, StateStore};
pub use terms::{MeterTerms, PacketSize, Unit};

#[cfg(test)]
mod tests;
