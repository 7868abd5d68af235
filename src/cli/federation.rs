//! `federation status|flush|export|ack`: the server's side of federation (DESIGN §7) from
//! the command line — how far delivery is, push now, and the air-gapped round trip.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, format_time, print_json, read_file, write_file};
use crate::federation::{self, FederationError, push::Pushed};

/// Federation of seat changes to the provider: status, push now, offline files.
#[derive(Debug, Args)]
pub struct Federation {
    #[command(subcommand)]
    command: FederationCommand,
}

#[derive(Debug, Subcommand)]
enum FederationCommand {
    /// Per license: last seq, acked seq, pending, oldest pending age, last error, next attempt.
    Status,
    /// Push every license with a federation URL now (ignoring the backoff); report each.
    Flush,
    /// Write the pending batches to a federation file for the provider.
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// Only this license.
        #[arg(long)]
        license: Option<String>,
    },
    /// Apply the provider's acks file (an old one again is harmless).
    Ack {
        /// The acks file (`SEATKEEP FEDERATION ACKS`).
        file: PathBuf,
    },
}

impl From<FederationError> for CliError {
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::Db(e) => Self::Db(e),
            other => Self::Usage(other.to_string()),
        }
    }
}

impl Run for Federation {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let app = global.migrated_app()?;
        match self.command {
            FederationCommand::Status => status(global, &app),
            FederationCommand::Flush => flush(global, &app),
            FederationCommand::Export { out, license } => {
                if let Some(lic) = &license
                    && crate::licenses::find(&mut *app.db.conn()?, lic)?.is_none()
                {
                    return Err(FederationError::UnknownLicense(lic.clone()).into());
                }
                let exported = federation::offline::export(&app, license.as_deref())?;
                write_file(&out, exported.text.as_bytes())?;
                if global.json {
                    return print_json(&exported.licenses);
                }
                for l in &exported.licenses {
                    match l.seqs {
                        Some((first, last)) => println!(
                            "{}: events {first}..{last} in {} batches",
                            l.license, l.batches
                        ),
                        None => println!("{}: nothing pending", l.license),
                    }
                }
                println!("written to {}", out.display());
                Ok(())
            }
            FederationCommand::Ack { file } => {
                let applied = federation::offline::apply_acks(&app, &read_file(&file)?)?;
                if global.json {
                    return print_json(&applied);
                }
                for a in &applied {
                    let what = if a.advanced {
                        "acknowledged"
                    } else {
                        "already acknowledged"
                    };
                    println!("{}: events up to {} {what}", a.lic, a.acked);
                }
                Ok(())
            }
        }
    }
}

fn status(global: &Global, app: &crate::app::App) -> Result<(), CliError> {
    let alert_after =
        i64::try_from(app.config.federation.alert_after.as_secs()).unwrap_or(i64::MAX);
    let rows = federation::status::all(&mut *app.db.conn()?, app.clock.now(), alert_after)?;
    if global.json {
        return print_json(&rows);
    }
    for r in &rows {
        let age = r
            .oldest_pending_age
            .map_or("-".to_owned(), |a| format!("{a}s"));
        let flag = match (r.overdue, r.alerting) {
            (true, _) => "  OVERDUE (new activations refused)",
            (false, true) => "  ALERT",
            _ => "",
        };
        println!(
            "{}  last {}  acked {}  pending {}  oldest {age}  next {}{flag}",
            r.license,
            r.last_seq,
            r.acked_seq,
            r.pending,
            if r.next_attempt_at == 0 {
                "next pass".to_owned()
            } else {
                format_time(Some(r.next_attempt_at))
            },
        );
        println!(
            "    to {}",
            r.url
                .as_deref()
                .unwrap_or("(no federation.url: offline files)")
        );
        if let Some(error) = &r.last_error {
            println!("    last error: {error}");
        }
    }
    if rows.is_empty() {
        println!("no licenses");
    }
    Ok(())
}

fn flush(global: &Global, app: &crate::app::App) -> Result<(), CliError> {
    let owner = federation::push::lease_owner();
    let results = federation::push::push_all(app, &owner, true)?;
    if global.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(lic, p)| serde_json::json!({"license": lic, "result": p}))
            .collect();
        return print_json(&rows);
    }
    let mut failed = 0;
    for (lic, pushed) in &results {
        match pushed {
            Pushed::UpToDate { acked } => println!("{lic}: up to date (acked {acked})"),
            Pushed::Delivered { sent, acked } => {
                println!("{lic}: sent {sent} events, acked {acked}");
            }
            Pushed::Waiting => println!("{lic}: another instance is pushing it"),
            Pushed::Failed { error } => {
                failed += 1;
                println!("{lic}: FAILED: {error}");
            }
        }
    }
    if results.is_empty() {
        println!("no license has a federation URL");
    }
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} license(s) could not be pushed"
        )));
    }
    Ok(())
}
