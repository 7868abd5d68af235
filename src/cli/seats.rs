//! `licenses list|show` and `seats list|retire`.

use super::{CliError, format_time, print_json};
use crate::app::App;
use crate::licenses;
use crate::seats;

/// `seatkeep licenses list`.
pub fn list_licenses(app: &App, json: bool) -> Result<(), CliError> {
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

/// `seatkeep licenses show LIC`.
pub fn show_license(app: &App, lic: &str, json: bool) -> Result<(), CliError> {
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

/// `seatkeep seats list --license LIC [--search TEXT]`.
pub fn list_seats(app: &App, lic: &str, search: Option<&str>, json: bool) -> Result<(), CliError> {
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

/// `seatkeep seats retire SEAT`.
pub fn retire(app: &App, seat: &str, json: bool) -> Result<(), CliError> {
    let status = seats::retire(app, seat, "cli")?;
    if json {
        return print_json(&status);
    }
    println!("retired seat {} (device {})", status.seat, status.device_id);
    Ok(())
}
