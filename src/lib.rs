//! Seatkeep: an on-premises site-license server.
//!
//! A provider signs a key file for N seats; Seatkeep imports it and hands each device a
//! device-bound key signed by the server key, with exact seat counts. README.md has the map
//! of this crate; DESIGN.md (shared with the provider) fixes the formats.

pub mod admins;
pub mod app;
pub mod audit;
pub mod backup;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod export;
pub mod federation;
pub mod identity;
pub mod jobs;
pub mod journal;
pub mod keyfile;
pub mod licenses;
pub mod meter;
pub mod metrics;
pub mod notify;
pub mod offline;
pub mod revocation;
pub mod seats;
pub mod signing;
pub mod web;

/// Compact JWS framing, shared with devices; signing lives in [`signing`].
pub use seatkeep_device::jws;
