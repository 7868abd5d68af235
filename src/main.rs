//! `seatkeep`: the command line (DESIGN §4). Parses arguments and runs them with
//! `seatkeep::cli`, where every command lives.

use std::process::ExitCode;

use clap::Parser as _;
use seatkeep::cli::Cli;

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
