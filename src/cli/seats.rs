//! `seats list|retire`.

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, format_time, print_json};
use crate::app::App;
use crate::licenses;
use crate::seats;

/// Read and retire seats.
#[derive(Debug, Args)]
pub struct Seats {
    #[command(subcommand)]
    command: SeatsCommand,
}

#[derive(Debug, Subcommand)]
enum SeatsCommand {
    /// Seats of a license.
    List {
        /// License id.
        #[arg(long)]
        license: String,
        /// Only seats whose device id or user name contains this text.
        #[arg(long)]
        search: Option<String>,
    },
    /// Free a seat (the device learns it on its next check).
    Retire {
        /// Seat id.
        seat: String,
        /// Why (recorded in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

impl Run for Seats {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let app = global.migrated_app()?;
        match self.command {
            SeatsCommand::List { license, search } => {
                list(&app, &license, search.as_deref(), global.json)
            }
            SeatsCommand::Retire { seat, reason } => retire(&app, &seat, &reason, global.json),
        }
    }
}

fn list(app: &App, lic: &str, search: Option<&str>, json: bool) -> Result<(), CliError> {
    let mut conn = app.db.conn()?;
    if licenses::find(&mut conn, lic)?.is_none() {
        return Err(CliError::Usage(format!("no license '{lic}'")));
    }
    let rows = seats::list(&mut conn, lic, search)?;
    if json {
        return print_json(&rows);
    }
    for s in &rows {
        println!(
            "{}  {:<8}  {}  {:?}  gen {}  since {}",
            s.id,
            s.state,
            s.device_id,
            s.user_name,
            s.generation,
            format_time(Some(s.activated_at))
        );
    }
    if rows.is_empty() {
        println!("no seats");
    }
    Ok(())
}

fn retire(app: &App, seat: &str, reason: &str, json: bool) -> Result<(), CliError> {
    if reason.chars().count() > crate::seats::rules::MAX_REASON_CHARS {
        return Err(CliError::Usage(format!(
            "--reason: at most {} characters",
            crate::seats::rules::MAX_REASON_CHARS
        )));
    }
    let status = seats::retire(app, seat, "cli", reason)?;
    if json {
        return print_json(&status);
    }
    println!("retired seat {} (device {})", status.seat, status.device_id);
    Ok(())
}
