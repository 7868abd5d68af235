//! `licenses list|show`.

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, format_time, print_json};
use crate::app::App;
use crate::licenses;

/// Read licenses.
#[derive(Debug, Args)]
pub struct Licenses {
    #[command(subcommand)]
    command: LicensesCommand,
}

#[derive(Debug, Subcommand)]
enum LicensesCommand {
    /// Every license with its seat usage.
    List,
    /// One license and its recent changes.
    Show {
        /// License id.
        lic: String,
    },
}

impl Run for Licenses {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let app = global.migrated_app()?;
        match self.command {
            LicensesCommand::List => list(&app, global.json),
            LicensesCommand::Show { lic } => show(&app, &lic, global.json),
        }
    }
}

fn list(app: &App, json: bool) -> Result<(), CliError> {
    let mut conn = app.db.conn()?;
    let all = licenses::list(&mut conn)?;
    if json {
        return print_json(&all);
    }
    if all.is_empty() {
        println!("no licenses imported yet (seatkeep keyfile import FILE)");
    }
    for l in &all {
        println!(
            "{}  {} ({})  {}  {}/{} seats in use  expires {}  seq {}{}",
            l.id,
            l.product_name,
            l.customer_name,
            l.model.as_str(),
            l.in_use,
            l.seats,
            format_time(l.expires_at),
            l.seq,
            if l.status == crate::seats::LicenseStatus::Active {
                String::new()
            } else {
                format!("  [{}]", l.status.as_str())
            }
        );
    }
    Ok(())
}

fn show(app: &App, lic: &str, json: bool) -> Result<(), CliError> {
    let mut conn = app.db.conn()?;
    let license = licenses::find(&mut conn, lic)?
        .ok_or_else(|| CliError::Usage(format!("no license '{lic}'")))?;
    let history = crate::audit::for_license(&mut conn, lic, 20)?;
    if json {
        return print_json(&serde_json::json!({ "license": license, "recent_audit": history }));
    }
    println!(
        "license {} (seq {}, {})",
        license.id,
        license.seq,
        license.status.as_str()
    );
    println!(
        "  customer  {} ({})",
        license.customer_name, license.customer_id
    );
    println!(
        "  product   {} ({}, edition {})",
        license.product_name, license.product_id, license.product_edition
    );
    println!("  model     {}", license.model.as_str());
    println!(
        "  seats     {} in use of {} (grantable {})",
        license.in_use, license.seats, license.capacity
    );
    println!(
        "  term      {} to {}",
        format_time(license.not_before),
        format_time(license.expires_at)
    );
    println!("  admins    {}", license.admins);
    println!("recent changes:");
    for entry in history {
        println!(
            "  {}  {:<18} {:<10} {}",
            format_time(Some(entry.at)),
            entry.action,
            entry.actor,
            entry.detail
        );
    }
    Ok(())
}
