//! `device activate` and `device verify`: the reference device client. It is the device
//! crate ([`seatkeep_device`]: formats, wire types, offline verifier) plus HTTP and files:
//!
//! * [`http`]: the activation round trip (`POST /api/v1/activations`);
//! * [`change`]: reissue and return, with a proof signed by the device key;
//! * [`files`]: the saved activation and the inputs of `device verify`;
//! * [`offline`] and [`offline_command`]: request and response files for a device that
//!   cannot reach Seatkeep (`device offline-request | offline-apply`, DESIGN §11);
//! * [`usage`] and [`usage_command`]: the metered side (`device usage …`, DESIGN §10.5);
//! * [`error`]: the client's errors.

pub mod change;
pub mod error;
pub mod files;
pub mod http;
pub mod offline;
pub mod offline_command;
#[cfg(test)]
mod tests;
pub mod usage;
pub mod usage_command;

use std::path::{Path, PathBuf};

use seatkeep_device::{ProviderKey, verify_device_key};

use super::{CliError, print_json, read_file};

pub use error::ClientError;
use files::read_device_key_input;
use http::ActivateOptions;

/// The reference device client and offline verifier.
#[derive(Debug, clap::Args)]
pub struct Device {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DeviceCommand {
    /// Activate a seat and store what the server returned.
    Activate {
        /// Seatkeep base URL.
        #[arg(long)]
        server: String,
        /// The site's key file.
        #[arg(long)]
        key_file: PathBuf,
        /// This device's id.
        #[arg(long)]
        device_id: String,
        /// User name.
        #[arg(long, default_value = "")]
        user: String,
        /// Where to store the answer (default ./DEVICE_ID.device.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Extra CA certificate (PEM) to trust for HTTPS.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Do not register a device key pair: the seat is then changed with the return token
        /// from the first answer, which anyone who copies the saved file can use.
        #[arg(long)]
        no_device_key: bool,
    },
    /// Change the user name on a saved activation's seat (a new device key, gen + 1).
    Reissue {
        /// The file `device activate` wrote.
        #[arg(long)]
        saved: PathBuf,
        /// The new user name.
        #[arg(long)]
        user: String,
        /// Seatkeep base URL (default: the one saved).
        #[arg(long)]
        server: Option<String>,
        /// Extra CA certificate (PEM) to trust for HTTPS.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Give a saved activation's seat back to the license.
    Return {
        /// The file `device activate` wrote.
        #[arg(long)]
        saved: PathBuf,
        /// Seatkeep base URL (default: the one saved).
        #[arg(long)]
        server: Option<String>,
        /// Extra CA certificate (PEM) to trust for HTTPS.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// A metered seat's usage: status, a run of the product, packet requests.
    Usage {
        #[command(subcommand)]
        command: usage_command::UsageCommand,
    },
    /// Write a request file for `seatkeep offline fulfil` (a device without a connection).
    OfflineRequest(offline_command::RequestArgs),
    /// Apply a response file from `seatkeep offline fulfil` to the saved activation.
    OfflineApply(offline_command::ApplyArgs),
    /// Verify a device key offline with only the provider's public key.
    Verify {
        /// Provider public key PEM.
        #[arg(long)]
        provider_key: PathBuf,
        /// The stored activation (JSON from `device activate`) or a bare device key.
        #[arg(long)]
        device_key: PathBuf,
        /// The key file, when --device-key is a bare device key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// This device's id.
        #[arg(long)]
        device_id: String,
        /// Expected user name.
        #[arg(long)]
        user: Option<String>,
    },
}

impl super::Run for Device {
    fn run(self, global: &super::Global) -> Result<(), CliError> {
        match self.command {
            DeviceCommand::Activate {
                server,
                key_file,
                device_id,
                user,
                out,
                ca,
                no_device_key,
            } => activate(
                &ActivateOptions {
                    server,
                    key_file,
                    device_id,
                    user,
                    out,
                    ca,
                    device_key: !no_device_key,
                },
                global.json,
            ),
            DeviceCommand::Reissue {
                saved,
                user,
                server,
                ca,
            } => {
                let opts = change::ChangeOptions { saved, server, ca };
                let outcome = block_on(change::reissue(&opts, &user))?;
                report_change(&outcome, global.json)
            }
            DeviceCommand::Return { saved, server, ca } => {
                let opts = change::ChangeOptions { saved, server, ca };
                let outcome = block_on(change::return_seat(&opts))?;
                report_change(&outcome, global.json)
            }
            DeviceCommand::Usage { command } => usage_command::run(command, global.json),
            DeviceCommand::OfflineRequest(args) => offline_command::request(args, global.json),
            DeviceCommand::OfflineApply(args) => offline_command::apply(args, global.json),
            DeviceCommand::Verify {
                provider_key,
                device_key,
                key_file,
                device_id,
                user,
            } => verify(
                &provider_key,
                &device_key,
                key_file.as_ref(),
                &device_id,
                user.as_deref(),
                global.json,
            ),
        }
    }
}

/// Runs one client exchange on a small runtime of its own.
pub(super) fn block_on<T>(
    exchange: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the HTTP client: {e}")))?;
    Ok(runtime.block_on(exchange)?)
}

fn report_change(outcome: &change::ChangeOutcome, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(outcome);
    }
    match &outcome.user_name {
        Some(user) => println!(
            "reissued: seat {} for user {user:?} (key generation {})",
            outcome.seat, outcome.generation
        ),
        None => println!("returned: seat {} is {}", outcome.seat, outcome.state),
    }
    Ok(())
}

/// `seatkeep device activate`.
pub fn activate(options: &ActivateOptions, json: bool) -> Result<(), CliError> {
    let outcome = block_on(http::activate(options))?;
    if json {
        return print_json(&outcome);
    }
    println!(
        "{} seat {} ({}, key generation {}, license term ends {}); saved to {}",
        if outcome.created {
            "activated:"
        } else {
            "already active:"
        },
        outcome.seat,
        outcome.state,
        outcome.generation,
        super::format_time(outcome.expires_at),
        outcome.saved_to.display()
    );
    Ok(())
}

/// `seatkeep device verify`: offline, with only the provider's public key.
pub fn verify(
    provider_key: &Path,
    device_key: &Path,
    key_file: Option<&PathBuf>,
    device_id: &str,
    user: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let provider = ProviderKey::from_pem(&read_file(provider_key)?)?;
    let (key_file_text, device_key_text) =
        read_device_key_input(device_key, key_file.map(PathBuf::as_path))?;
    let verified = verify_device_key(
        &provider,
        &key_file_text,
        &device_key_text,
        device_id,
        user,
        crate::clock::default_source().now(),
    )?;
    if json {
        return print_json(&verified);
    }
    println!(
        "valid: {} ({} edition {}) for {}, license {} of {}, seat {}, device {}, user {:?}, generation {}, expires {}",
        verified.product.name,
        verified.product.id,
        verified.product.edition,
        verified.customer.name,
        verified.license,
        verified.provider,
        verified.seat,
        verified.device,
        verified.user,
        verified.generation,
        super::format_time(verified.expires_at)
    );
    Ok(())
}
