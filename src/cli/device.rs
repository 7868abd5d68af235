//! `device activate` and `device verify`: the reference device client. It is the device
//! crate ([`seatkeep_device`]: formats, wire types, offline verifier) plus HTTP and files:
//!
//! * [`http`]: the activation round trip (`POST /api/v1/activations`);
//! * [`files`]: the saved activation and the inputs of `device verify`;
//! * [`error`]: the client's errors.

pub mod error;
pub mod files;
pub mod http;
#[cfg(test)]
mod tests;

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
    },
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
            } => activate(
                &ActivateOptions {
                    server,
                    key_file,
                    device_id,
                    user,
                    out,
                    ca,
                },
                global.json,
            ),
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

/// `seatkeep device activate`.
pub fn activate(options: &ActivateOptions, json: bool) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the HTTP client: {e}")))?;
    let outcome = runtime.block_on(http::activate(options))?;
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
