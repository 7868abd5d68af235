//! Integration tests: the real `seatkeep` binary, over HTTP and the CLI, against real SQLite
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! and PostgreSQL (started by `tests/run`). One test binary, so it links once.

mod chaos_proxy;
mod helpers;

mod activation;
mod backup;
mod check;
mod concurrency;
mod console_browser;
mod console_http;
mod console_license_actions;
mod console_metered;
mod console_proxy;
mod console_seat_list;
mod console_support;
mod device_client;
mod export;
mod federation;
mod federation_offline;
mod federation_support;
mod foundation;
mod hardening;
mod keyfiles;
mod lockout;
mod metered;
mod metered_client;
mod metered_independent;
mod notify;
mod offline;
mod openapi_fuzz;
mod quickstart;
mod ratelimit;
mod restart;
mod revocation;
mod takeover;
mod trust;
