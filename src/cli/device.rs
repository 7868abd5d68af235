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
pub use files::{SavedActivation, load_saved_activation, read_device_key_input};
pub use http::{ActivateOptions, ActivationOutcome};

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
        crate::db::now_unix(),
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
