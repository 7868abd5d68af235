//! `seatkeep`: the command line (DESIGN §4). Parses arguments and runs them with
//! `seatkeep::cli`, where every command lives.

use std::process::ExitCode;

use clap::Parser as _;
use seatkeep::cli::Cli;

/// jemalloc with a background purging thread (settings in `.cargo/config.toml`) hands freed
/// pages back within about a second after a burst of connections closes; glibc's arenas kept
/// ~100 MB after 4,000 stalled connections, mimalloc (purging only on later allocations)
/// about as much (README, Operations).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One process-wide TLS backend: aws-lc-rs, also used for signing.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Every error's message already carries its cause, on one line.
            eprintln!("seatkeep: {error}");
            ExitCode::FAILURE
        }
    }
}
