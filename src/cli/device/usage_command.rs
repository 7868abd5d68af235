//! The flags and output of `device usage status | tick | request` (the work is in
//! [`super::usage`]).

use std::path::PathBuf;

use seatkeep_device::meter::Enforcement;

use super::usage::{self, UsageReport};
use crate::cli::{CliError, print_json};

/// The saved metered activation and the key that verifies it.
#[derive(Debug, Clone, clap::Args)]
pub struct Saved {
    /// The file `device activate` wrote (the usage state is kept beside it).
    #[arg(long)]
    saved: PathBuf,
    /// Provider public key PEM (what the product has built in).
    #[arg(long)]
    provider_key: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Balance, use and what the product may do now; changes nothing.
    Status(Saved),
    /// One run of the product: pays its first minute (device_hour) or the day (device_day).
    /// Exits 1 when the product must stop.
    Tick(Saved),
    /// Ask the server for a packet of usage and apply the answer.
    Request {
        #[command(flatten)]
        saved: Saved,
        /// Units wanted (0: report the state and sync the clock only); default: the key
        /// file's packet size.
        #[arg(long)]
        units: Option<i64>,
        /// Accept fewer units when the pool is low.
        #[arg(long)]
        partial: bool,
        /// Seatkeep base URL (default: the one saved).
        #[arg(long)]
        server: Option<String>,
        /// Extra CA certificate (PEM) to trust for HTTPS.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
}

/// Units for people: at most two decimals (a `device_hour` minute is 0.02).
fn shown(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn print_report(report: &UsageReport) {
    println!(
        "seat {}: {}, balance {} {} (used {}, lapsed {}), last packet {}, {} request(s) pending",
        report.seat,
        report.enforcement,
        shown(report.balance_units),
        report.unit,
        shown(report.used_units),
        shown(report.lapsed_units),
        report.last_packet,
        report.pending_requests
    );
}

/// Runs a `device usage` command.
pub fn run(command: UsageCommand, json: bool) -> Result<(), CliError> {
    match command {
        UsageCommand::Status(saved) => {
            let opened = usage::open(&saved.saved, &saved.provider_key)?;
            let report = usage::report(&opened, opened.meter.status(opened.clocks()));
            if json {
                return print_json(&report);
            }
            print_report(&report);
            Ok(())
        }
        UsageCommand::Tick(saved) => {
            let mut opened = usage::open(&saved.saved, &saved.provider_key)?;
            let enforcement = usage::tick(&mut opened, &saved.saved)?;
            let report = usage::report(&opened, enforcement);
            if json {
                print_json(&report)?;
            } else {
                print_report(&report);
            }
            match enforcement {
                Enforcement::Locked(_) => Err(CliError::Usage(format!(
                    "the product must stop: {}",
                    report.enforcement
                ))),
                Enforcement::Active | Enforcement::Low => Ok(()),
            }
        }
        UsageCommand::Request {
            saved,
            units,
            partial,
            server,
            ca,
        } => {
            let mut opened = usage::open(&saved.saved, &saved.provider_key)?;
            let wanted = units.unwrap_or(opened.default_units);
            let outcome = super::block_on(usage::request(
                &mut opened,
                &saved.saved,
                wanted,
                partial,
                server.as_deref(),
                ca.as_deref(),
            ))?;
            if json {
                return print_json(&outcome);
            }
            for (seq, amount) in &outcome.applied {
                println!(
                    "packet {seq}: {} {} applied",
                    shown(*amount),
                    outcome.usage.unit
                );
            }
            for seq in &outcome.already {
                println!("packet {seq}: applied before");
            }
            for refused in &outcome.refused {
                println!("packet refused: {refused}");
            }
            println!(
                "pool: {} of {} units issued; clock {}",
                outcome.pool_issued,
                outcome.pool_units,
                if outcome.time_synced {
                    "synced"
                } else {
                    "not synced"
                }
            );
            print_report(&outcome.usage);
            Ok(())
        }
    }
}
