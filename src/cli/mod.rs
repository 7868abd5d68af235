//! The `seatkeep` command line (DESIGN §4). Each command group is one file here holding its
//! clap arguments and a `run` that calls the same library functions the server and console
//! use, then prints the result: text, or JSON with `--json`. `main.rs` only parses [`Cli`] and
//! calls [`Cli::run`].

mod admin;
mod backup;
mod check;
mod device;
mod export;
mod federation;
mod keyfile;
mod licenses;
mod notify;
mod offline;
mod provider;
mod quickstart;
mod seats;
mod server;
mod usage;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::admins::AdminError;
use crate::app::{App, StartError};
use crate::config::{Config, ConfigError};
use crate::db::DbError;
use crate::identity::IdentityError;
use crate::keyfile::KeyFileError;
use crate::licenses::ImportError;
use crate::seats::SeatError;
use crate::signing::{KeyType, SigningError};
use crate::web::ServeError;

#[derive(Debug, Parser)]
#[command(name = "seatkeep", version, about = "On-premises site-license server")]
pub struct Cli {
    /// Config file (default: ./seatkeep.toml when present, then the built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Runs the parsed command.
    pub fn run(self) -> Result<(), CliError> {
        let global = Global {
            config: self.config,
            json: self.json,
        };
        self.command.run(&global)
    }
}

/// The flags every command takes (`--config`, `--json`).
struct Global {
    config: Option<PathBuf>,
    json: bool,
}

impl Global {
    fn config(&self) -> Result<Config, CliError> {
        Ok(Config::load(self.config.as_deref())?)
    }

    /// The application, database not migrated (for `migrate` itself).
    fn app(&self) -> Result<App, CliError> {
        Ok(App::load(self.config()?)?)
    }

    /// The application with pending migrations applied.
    fn migrated_app(&self) -> Result<App, CliError> {
        let app = self.app()?;
        app.db.migrate()?;
        Ok(app)
    }
}

/// A command or command group: its parsed arguments, run with the global flags.
trait Run {
    fn run(self, global: &Global) -> Result<(), CliError>;
}

/// Declares the top-level commands and their dispatch from one list of `Variant(Type)`, where
/// `Type` is `clap::Args` (its doc comment is the command's help) and [`Run`]. The variant
/// name, in kebab case, is the command's name.
macro_rules! commands {
    ($($variant:ident($ty:ty),)*) => {
        #[derive(Debug, Subcommand)]
        enum Command {
            $($variant($ty),)*
        }

        impl Command {
            fn run(self, global: &Global) -> Result<(), CliError> {
                match self {
                    $(Self::$variant(command) => command.run(global),)*
                }
            }
        }
    };
}

// In `seatkeep --help` order. A new command group is a file in this folder with its `Args`
// type and `Run`, its `mod` line above, and one line here.
commands! {
    Init(server::Init),
    Serve(server::Serve),
    Quickstart(quickstart::Quickstart),
    Migrate(server::Migrate),
    Keyfile(keyfile::Keyfile),
    Licenses(licenses::Licenses),
    Seats(seats::Seats),
    Usage(usage::Usage),
    Admin(admin::Admin),
    Notify(notify::Notify),
    Federation(federation::Federation),
    Export(export::Export),
    Backup(backup::Backup),
    Restore(backup::Restore),
    Check(check::Check),
    Offline(offline::Offline),
    Provider(provider::Provider),
    Device(device::Device),
}

/// `--algorithm` of `init` and `provider keygen`: the [`KeyType`]s by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyTypeArg {
    /// Ed25519 (default): small, fast, constant time.
    #[value(name = "ed25519")]
    Ed25519,
    /// RSA 2048 bit, for verifiers that only know RSA.
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA 3072 bit.
    #[value(name = "rsa-3072")]
    Rsa3072,
}

impl From<KeyTypeArg> for KeyType {
    fn from(arg: KeyTypeArg) -> Self {
        match arg {
            KeyTypeArg::Ed25519 => Self::Ed25519,
            KeyTypeArg::Rsa2048 => Self::Rsa2048,
            KeyTypeArg::Rsa3072 => Self::Rsa3072,
        }
    }
}

/// A command failed; the message is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Start-up failed (config, keys, database).
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{path}: {source}")]
    KeyFile { path: PathBuf, source: KeyFileError },
    #[error("{path}: {source}")]
    Import { path: PathBuf, source: ImportError },
    #[error(transparent)]
    Seat(#[from] SeatError),
    #[error(transparent)]
    Meter(#[from] crate::meter::MeterError),
    /// A request file refused whole (`request_too_large`, `invalid_request_file`, a fault).
    #[error("{path}: {source}")]
    Offline {
        path: PathBuf,
        source: crate::offline::OfflineError,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Revocation(#[from] crate::revocation::RevocationError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The device client could not activate.
    #[error(transparent)]
    Client(#[from] device::ClientError),
    /// Offline verification of a device key failed.
    #[error("invalid: {0}")]
    Verify(#[from] seatkeep_device::VerifyError),
    #[error("{action} {path}: {source}")]
    Io {
        /// `cannot read`, `cannot write`, `cannot create`.
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An email could not be sent (`notify test`).
    #[error(transparent)]
    Notify(#[from] crate::notify::sender::SendError),
    /// Bad arguments, or any other refusal already worded for the user.
    #[error("{0}")]
    Usage(String),
}

crate::query_errors_into!(CliError);

/// Reads a file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file, naming it in the error.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, contents).map_err(|source| CliError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}

/// Creates a folder and its parents, naming it in the error.
fn create_dir(path: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(path).map_err(|source| CliError::Io {
        action: "cannot create",
        path: path.to_path_buf(),
        source,
    })
}

/// Prints a value as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("cannot encode output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Formats unix seconds as RFC 3339 (UTC), or "never".
fn format_time(unix: Option<i64>) -> String {
    match unix.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
        )
        .to_string(),
        None => "never".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_consistent() {
        // clap's own checks (duplicate names, bad defaults, conflicting ids), which it otherwise
        // runs only when a debug build parses arguments.
        super::Cli::command().debug_assert();
    }
}
