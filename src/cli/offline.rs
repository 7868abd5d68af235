//! `offline fulfil REQUEST_FILE --out RESPONSE_FILE` (DESIGN §11): answers an air-gapped
//! device's request file with actor `cli`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, print_json, read_file, write_file};
use crate::offline::{self, lines::LineResult};

/// Offline files: answer request files carried from air-gapped devices.
#[derive(Debug, Args)]
pub struct Offline {
    #[command(subcommand)]
    command: OfflineCommand,
}

#[derive(Debug, Subcommand)]
enum OfflineCommand {
    /// Answer a request file; the same file again gets the same response.
    Fulfil {
        /// The request file (`SEATKEEP REQUEST`).
        request: PathBuf,
        /// Where to write the response file (`SEATKEEP RESPONSE`).
        #[arg(long, value_name = "RESPONSE_FILE")]
        out: PathBuf,
    },
}

impl Run for Offline {
    fn run(self, global: &Global) -> Result<(), CliError> {
        match self.command {
            OfflineCommand::Fulfil { request, out } => {
                let refused = |source| CliError::Offline {
                    path: request.clone(),
                    source,
                };
                // Checked before the database is opened: a refused file changes nothing.
                let file = offline::RequestFile::read(&read_file(&request)?).map_err(refused)?;
                let app = global.migrated_app()?;
                let fulfilled = offline::fulfil(&app, &file, "cli").map_err(refused)?;
                write_file(&out, fulfilled.response.as_bytes())?;
                if global.json {
                    return print_json(&serde_json::json!({
                        "replayed": fulfilled.replayed,
                        "lines": fulfilled.outcomes,
                        "out": out,
                    }));
                }
                if fulfilled.replayed {
                    println!(
                        "{}: fulfilled before; the stored response was written again to {}",
                        request.display(),
                        out.display()
                    );
                    return Ok(());
                }
                for outcome in &fulfilled.outcomes {
                    match &outcome.result {
                        LineResult::Answered { answered } => {
                            println!("line {} ({}): {answered}", outcome.line, outcome.kind);
                        }
                        LineResult::Refused { code, detail } => println!(
                            "line {} ({}): refused {code}: {detail}",
                            outcome.line, outcome.kind
                        ),
                    }
                }
                println!("response written to {}", out.display());
                Ok(())
            }
        }
    }
}
