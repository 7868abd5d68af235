//! `[federation]`: how the pusher delivers events to the provider (DESIGN §7).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, duration};

/// `[federation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Time between pusher passes (each pushes every license whose backoff allows it).
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Events per batch, 1..=500.
    pub batch_size: usize,
    /// Whole request: connect, send, answer.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Extra CA certificate (PEM) for a provider behind a private CA.
    pub ca_file: PathBuf,
    /// Events unacknowledged this long raise a `federation_overdue` notification.
    #[serde(deserialize_with = "duration")]
    pub alert_after: Duration,
}

/// Checks the section; errors name the key.
pub(super) fn validate(federation: &FederationConfig) -> Result<(), ConfigError> {
    if !(1..=crate::federation::wire::MAX_BATCH_EVENTS).contains(&federation.batch_size) {
        return Err(ConfigError::Value {
            key: "federation.batch_size",
            reason: "must be 1..500".into(),
        });
    }
    for (key, value) in [
        ("federation.interval", federation.interval),
        ("federation.timeout", federation.timeout),
        ("federation.alert_after", federation.alert_after),
    ] {
        if value < Duration::from_secs(1) {
            return Err(ConfigError::Value {
                key,
                reason: "must be at least 1s".into(),
            });
        }
    }
    Ok(())
}
