//! Why the reference device client failed; every message is one line.

use std::path::PathBuf;

use super::http::error_chain;

/// Why a client operation failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A local file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we tried, e.g. "cannot read key file".
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `--server` is not an http(s) URL.
    #[error("invalid server URL '{url}': {reason}")]
    BadUrl {
        /// As given.
        url: String,
        reason: String,
    },
    /// `--ca` holds no usable PEM certificate.
    #[error("--ca {}: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach {url}: {}", error_chain(source))]
    Http {
        /// Request URL.
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server refused with a problem+json answer (DESIGN §5).
    #[error("{code}: {detail} (HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable error code, e.g. `seats_exhausted`.
        code: String,
        /// Human-readable reason.
        detail: String,
        /// Seconds to wait before retrying (`Retry-After`), when given.
        retry_after: Option<u64>,
    },
    /// The server answered something that is not an activation or a problem.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        /// Request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A file meant to hold a saved activation does not.
    #[error("{} is not a saved activation: {reason}", path.display())]
    SavedActivation { path: PathBuf, reason: String },
    /// `--device-key` holds neither a saved activation nor a usable bare device key.
    #[error("{}: {reason}", path.display())]
    DeviceKeyInput { path: PathBuf, reason: String },
    /// An offline request or response file that cannot be made or read.
    #[error("{}: {reason}", path.display())]
    OfflineFile { path: PathBuf, reason: String },
}
