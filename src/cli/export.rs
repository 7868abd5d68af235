//! `export seats`: the seats of a license as CSV or JSON (the same bytes as the console's
//! export button, from [`crate::export::write_seats`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::{CliError, Global, Run};
use crate::export::{self, ExportFormat, StateFilter};

/// Export data (the list of registered users).
#[derive(Debug, Args)]
pub struct Export {
    #[command(subcommand)]
    command: ExportCommand,
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// Seats of a license: seat, device id, user name, state, generation, activated,
    /// released. CSV cells that a spreadsheet would run as a formula start with '.
    Seats {
        /// License id.
        #[arg(long)]
        license: String,
        /// Output format (default csv; json with --json).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Which seats.
        #[arg(long, value_enum, default_value = "active")]
        state: StateArg,
        /// Write here instead of stdout (replaced only when the export is complete).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `--format`: the [`ExportFormat`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// RFC 4180 CSV with a header row, CRLF line ends, formula-injection-safe cells.
    Csv,
    /// One JSON array of seat objects.
    Json,
}

impl From<FormatArg> for ExportFormat {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Csv => Self::Csv,
            FormatArg::Json => Self::Json,
        }
    }
}

/// `--state`: the [`StateFilter`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StateArg {
    /// Seats held now.
    Active,
    /// Every seat ever taken, released ones included.
    All,
}

impl From<StateArg> for StateFilter {
    fn from(arg: StateArg) -> Self {
        match arg {
            StateArg::Active => Self::Active,
            StateArg::All => Self::All,
        }
    }
}

impl Run for Export {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let ExportCommand::Seats {
            license,
            format,
            state,
            out,
        } = self.command;
        let format = format.map_or(
            if global.json {
                ExportFormat::Json
            } else {
                ExportFormat::Csv
            },
            ExportFormat::from,
        );
        let state = StateFilter::from(state);
        let app = global.migrated_app()?;
        let mut conn = app.db.conn()?;
        match out {
            None => {
                let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
                export::write_seats(&mut conn, &license, format, state, &mut stdout)
                    .map_err(export_error)?;
            }
            Some(path) => {
                let rows = to_file(&path, |file| {
                    export::write_seats(&mut conn, &license, format, state, file)
                })?;
                eprintln!("exported {rows} seats of {license} to {}", path.display());
            }
        }
        Ok(())
    }
}

/// Writes through `write` into `PATH.partial`, renamed to `path` when complete (removed on
/// failure), so a failed export never leaves a file that looks whole.
fn to_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<u64, export::ExportError>,
) -> Result<u64, CliError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let io_error = |action, source| CliError::Io {
        action,
        path: partial.clone(),
        source,
    };
    let file = std::fs::File::create(&partial).map_err(|e| io_error("cannot create", e))?;
    let mut buffered = std::io::BufWriter::new(file);
    let written = write(&mut buffered).map_err(export_error).and_then(|rows| {
        buffered.flush().map_err(|e| io_error("cannot write", e))?;
        Ok(rows)
    });
    let result = written.and_then(|rows| {
        std::fs::rename(&partial, path).map_err(|source| CliError::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(rows)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn export_error(e: export::ExportError) -> CliError {
    CliError::Usage(e.to_string())
}
