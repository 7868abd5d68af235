//! The flags and output of `device offline-request | offline-apply` (the work is in
//! [`super::offline`]).

use std::path::PathBuf;

use super::offline;
use crate::cli::{CliError, print_json};

/// `device offline-request`: exactly one of `--activate` and `--packets`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["activate", "packets"])))]
pub struct RequestArgs {
    /// Ask for a seat (needs --key-file and --device-id; --user as for `activate`).
    #[arg(long, requires_all = ["key_file", "device_id"])]
    activate: bool,
    /// Ask for a packet of N units for the saved metered activation (needs --saved and
    /// --provider-key; 0 reports the state and syncs the clock only).
    #[arg(long, value_name = "N", requires_all = ["saved", "provider_key"])]
    packets: Option<i64>,
    /// Accept fewer units when the pool is low (with --packets).
    #[arg(long, requires = "packets")]
    partial: bool,
    /// The site's key file (with --activate).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// This device's id (with --activate).
    #[arg(long)]
    device_id: Option<String>,
    /// User name (with --activate).
    #[arg(long, default_value = "")]
    user: String,
    /// The saved activation (default with --activate: ./DEVICE_ID.device.json).
    #[arg(long)]
    saved: Option<PathBuf>,
    /// Provider public key PEM (with --packets).
    #[arg(long)]
    provider_key: Option<PathBuf>,
    /// Where to write the request file.
    #[arg(long)]
    out: PathBuf,
}

/// `device offline-apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// The response file.
    response: PathBuf,
    /// The saved activation that made the request.
    #[arg(long)]
    saved: PathBuf,
    /// Provider public key PEM.
    #[arg(long)]
    provider_key: PathBuf,
}

/// Runs `device offline-request`.
pub fn request(args: RequestArgs, json: bool) -> Result<(), CliError> {
    let written = match (args.activate, args.key_file, args.device_id) {
        (true, Some(key_file), Some(device_id)) => {
            let saved = args
                .saved
                .unwrap_or_else(|| PathBuf::from(format!("{device_id}.device.json")));
            offline::request_activation(&offline::ActivateRequest {
                key_file,
                device_id,
                user: args.user,
                saved,
                out: args.out,
            })?
        }
        _ => match (args.packets, args.saved, args.provider_key) {
            (Some(units), Some(saved), Some(provider_key)) => {
                offline::request_packets(&saved, &provider_key, units, args.partial, &args.out)?
            }
            // clap's group and `requires` refuse these before here.
            _ => {
                return Err(CliError::Usage(
                    "pass --activate --key-file F --device-id ID, or --packets N --saved F --provider-key PEM".into(),
                ));
            }
        },
    };
    if json {
        return print_json(&written);
    }
    println!(
        "request {} written to {}; carry it to `seatkeep offline fulfil`, then apply the response with `seatkeep device offline-apply RESPONSE --saved {}`",
        written.request,
        written.out.display(),
        written.saved.display()
    );
    Ok(())
}

/// Runs `device offline-apply`: each response line's outcome, error lines with their code.
pub fn apply(args: ApplyArgs, json: bool) -> Result<(), CliError> {
    let applied = offline::apply(&args.response, &args.saved, &args.provider_key)?;
    if json {
        return print_json(&applied);
    }
    for line in &applied {
        match &line.code {
            Some(code) => println!(
                "line {} ({}): {code}: {}",
                line.line, line.kind, line.outcome
            ),
            None => println!("line {} ({}): {}", line.line, line.kind, line.outcome),
        }
    }
    Ok(())
}
