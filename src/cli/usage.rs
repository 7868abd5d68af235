//! `usage status|devices|reset-device`: the pool of a metered license, its devices, and
//! clearing a device flagged for an impossible report.

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, print_json};
use crate::meter;

/// Metered licenses: the usage pool and the devices drawing on it.
#[derive(Debug, Args)]
pub struct Usage {
    #[command(subcommand)]
    command: UsageCommand,
}

#[derive(Debug, Subcommand)]
enum UsageCommand {
    /// Units sold, issued and available.
    Status {
        /// License id.
        #[arg(long)]
        license: String,
    },
    /// Per device: packets, units issued, last reported use, stranded units, flags.
    Devices {
        /// License id.
        #[arg(long)]
        license: String,
    },
    /// Clear a device's flag so it gets packets again (audited).
    ResetDevice {
        /// Seat id.
        seat: String,
    },
}

impl Run for Usage {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let app = global.migrated_app()?;
        match self.command {
            UsageCommand::Status { license } => {
                let s = meter::status(&app, &license)?;
                if global.json {
                    return print_json(&s);
                }
                println!(
                    "{}: {} of {} {} issued ({} available, cap {} with {}% overdraft), {} packets, {} devices flagged",
                    s.license,
                    s.issued,
                    s.units,
                    s.unit,
                    s.available,
                    s.cap,
                    s.overdraft_percent,
                    s.packets,
                    s.devices_flagged
                );
            }
            UsageCommand::Devices { license } => {
                let rows = meter::devices(&app, &license)?;
                if global.json {
                    return print_json(&rows);
                }
                for d in &rows {
                    println!(
                        "{}  {:<8}  {}  packets {}  issued {}  used {}  stranded {}{}",
                        d.seat,
                        d.state,
                        d.device_id,
                        d.packets,
                        d.issued,
                        d.used,
                        d.stranded,
                        d.flag
                            .as_deref()
                            .map(|f| format!("  FLAGGED: {f}"))
                            .unwrap_or_default()
                    );
                }
                if rows.is_empty() {
                    println!("no devices");
                }
            }
            UsageCommand::ResetDevice { seat } => {
                let cleared = meter::reset_device(&app, &seat, "cli")?;
                if global.json {
                    return print_json(&serde_json::json!({"seat": seat, "cleared_flag": cleared}));
                }
                match cleared {
                    Some(reason) => println!("seat {seat}: flag cleared ({reason})"),
                    None => println!("seat {seat}: was not flagged; reports reset"),
                }
            }
        }
        Ok(())
    }
}
