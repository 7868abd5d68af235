//! `backup --out FILE` and `restore FILE`, over [`crate::backup`]. Progress lines go to a
//! terminal only; the one-line result always.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Args;

use super::{CliError, Global, Run, print_json};
use crate::backup;

/// Back up the database while the server keeps serving (SQLite: VACUUM INTO; PostgreSQL:
/// pg_dump). The server key is left out unless --include-server-key.
#[derive(Debug, Args)]
pub struct Backup {
    /// The backup file to write (must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also write the server key beside it as FILE.server-key.pem (mode 0600): keep it apart.
    #[arg(long)]
    include_server_key: bool,
}

/// Restore a backup into this config's database, which must be empty unless --force.
#[derive(Debug, Args)]
pub struct Restore {
    /// A file written by `seatkeep backup`.
    file: PathBuf,
    /// Also restore the server key from FILE.server-key.pem.
    #[arg(long)]
    include_server_key: bool,
    /// Replace a database that holds data (and an existing server key).
    #[arg(long)]
    force: bool,
}

fn progress(line: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("… {line}");
    }
}

impl Run for Backup {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let config = global.config()?;
        let report = backup::backup(&config, &self.out, self.include_server_key, &progress)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if global.json {
            return print_json(&report);
        }
        println!(
            "backup written to {} ({} bytes){}",
            report.file.display(),
            report.bytes,
            match &report.server_key {
                Some(key) => format!("; server key in {} (keep it apart)", key.display()),
                None => "; server key not included".to_owned(),
            }
        );
        Ok(())
    }
}

impl Run for Restore {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let config = global.config()?;
        let report = backup::restore(
            &config,
            &self.file,
            self.include_server_key,
            self.force,
            &progress,
        )
        .map_err(|e| CliError::Usage(e.to_string()))?;
        if global.json {
            return print_json(&report);
        }
        println!(
            "restored {} licenses and {} seats from {}{}",
            report.licenses,
            report.seats,
            self.file.display(),
            match &report.server_key {
                Some(key) => format!("; server key written to {}", key.display()),
                None => String::new(),
            }
        );
        Ok(())
    }
}
