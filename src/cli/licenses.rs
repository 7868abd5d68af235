//! `licenses list|show|revoke|reinstate`.

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, format_time, print_json};
use crate::app::App;
use crate::licenses;

/// Read licenses; revoke and reinstate them.
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
    /// Revoke a license: every device request for it answers 403 license_revoked, and its
    /// seats read `revoked` (kept, so `reinstate` gives them back).
    Revoke {
        /// License id.
        lic: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Lift a license's revocation: its seats work again as they were.
    Reinstate {
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
            LicensesCommand::Revoke { lic, reason } => {
                let license = crate::revocation::revoke(&app, &lic, &reason, "cli")?;
                report_status(&license, global.json)
            }
            LicensesCommand::Reinstate { lic } => {
                let license = crate::revocation::reinstate(&app, &lic, "cli")?;
                report_status(&license, global.json)
            }
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

fn report_status(license: &crate::db::models::License, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(license);
    }
    println!(
        "license {} is {} ({} seats held)",
        license.id,
        license.status.as_str(),
        license.in_use
    );
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
