//! What each `seatkeep` command does. `main.rs` parses arguments and calls in here; the
//! functions here call the same library functions the server and console use.

pub mod admin;
pub mod device;
pub mod keyfile;
pub mod provider;
pub mod quickstart;
pub mod seats;
pub mod server;

use std::path::{Path, PathBuf};

use crate::admins::AdminError;
use crate::app::{App, StartError};
use crate::config::{Config, ConfigError};
use crate::db::DbError;
use crate::identity::IdentityError;
use crate::keyfile::KeyFileError;
use crate::licenses::ImportError;
use crate::seats::SeatError;
use crate::signing::SigningError;
use crate::web::ServeError;

/// A command failed; the message is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Start-up failed (config, keys, database).
    #[error(transparent)]
    Start(#[from] StartError),
    /// Config problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Identity problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Key file refused.
    #[error("{path}: {source}")]
    KeyFile {
        /// File.
        path: PathBuf,
        /// Why.
        source: KeyFileError,
    },
    /// Import refused.
    #[error("{path}: {source}")]
    Import {
        /// File.
        path: PathBuf,
        /// Why.
        source: ImportError,
    },
    /// Seat operation refused.
    #[error(transparent)]
    Seat(#[from] SeatError),
    /// Admin operation refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Database problem.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Signing problem.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// Server problem.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Device client problem.
    #[error(transparent)]
    Client(#[from] device::ClientError),
    /// Offline verification failed.
    #[error("invalid: {0}")]
    Verify(#[from] seatkeep_device::VerifyError),
    /// File I/O.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
}

impl From<diesel::result::Error> for CliError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file, naming it in the error.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, contents).map_err(|source| CliError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

/// Creates a folder and its parents, naming it in the error.
pub fn create_dir(path: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(path).map_err(|source| CliError::Io {
        action: "cannot create",
        path: path.to_path_buf(),
        source,
    })
}

/// Loads config and application (without migrating).
pub fn load_app(config: Option<&Path>) -> Result<App, CliError> {
    let config = Config::load(config)?;
    Ok(App::load(config)?)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("cannot encode output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Formats unix seconds as RFC 3339 (UTC), or "never".
pub fn format_time(unix: Option<i64>) -> String {
    match unix.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
        )
        .to_string(),
        None => "never".to_owned(),
    }
}
