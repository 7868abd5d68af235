//! The emails of metered licenses (DESIGN §8, §10.3), queued by the journal inside the
//! transaction of the change that owes them: `usage_exhausted` when a packet spends the
//! last units of the pool (or a request is refused because not even the smallest packet
//! is left), `usage_threshold` when `issued / cap` crosses
//! `notify.threshold_percent` upward (both to the key file's admins, once per cap: a
//! renewal that raises the cap starts a new episode), and `usage_state_invalid` to the
//! operators when a device is flagged.

use diesel::prelude::*;

use super::{Kind, admins, license_url, queue, render, settings};
use crate::db::models::License;
use crate::db::schema::{licenses, notifications};
use crate::db::{DbConn, DbError};
use crate::journal::{Change, Recorded};

/// After a packet: the pool ran out, or crossed the threshold.
pub(super) fn provisioned(
    conn: &mut DbConn,
    change: &Change<'_>,
    lic: &str,
) -> Result<(), DbError> {
    let figure = |name: &str| change.detail[name].as_i64().unwrap_or_default();
    let (issued, amt) = (figure("issued"), figure("amt"));
    let license: License = licenses::table
        .find(lic)
        .select(License::as_select())
        .get_result(conn)?;
    let cap = license.meter_cap;
    let percent = settings().threshold_percent;
    let over = |issued: i64| issued * 100 >= percent * cap;
    let kind = if cap > 0 && issued >= cap {
        Kind::UsageExhausted
    } else if cap > 0 && over(issued) && !over(issued - amt) {
        Kind::UsageThreshold
    } else {
        return Ok(());
    };
    let unit = change.detail["unit"].as_str().unwrap_or_default();
    queue_pool(conn, &license, kind, issued, unit, change.at)
}

/// A packet request refused because the pool cannot give even the smallest packet: the
/// admins hear of it once per cap, like the packet that spends the pool to the last unit
/// (the same dedupe key), so a pool that never reaches exactly zero is not left silent.
/// Called in the refusal's own transaction.
pub fn pool_refused(conn: &mut DbConn, lic: &str, unit: &str, at: i64) -> Result<(), DbError> {
    let license: License = licenses::table
        .find(lic)
        .select(License::as_select())
        .get_result(conn)?;
    let issued = license.meter_issued;
    queue_pool(conn, &license, Kind::UsageExhausted, issued, unit, at)
}

/// Queues the pool email of `kind` for the license's cap (once per cap).
fn queue_pool(
    conn: &mut DbConn,
    license: &License,
    kind: Kind,
    issued: i64,
    unit: &str,
    at: i64,
) -> Result<(), DbError> {
    let (lic, cap) = (license.id.as_str(), license.meter_cap);
    let key = format!("{}:{lic}:{cap}", kind.as_str());
    // Devices keep asking while the pool is spent: once the email is queued, later
    // refusals render nothing and write nothing (the unique key alone would still cost a
    // render and an insert each time, inside the refusal's transaction).
    let queued: Option<i64> = notifications::table
        .filter(notifications::dedupe_key.eq(&key))
        .select(notifications::id)
        .get_result(conn)
        .optional()?;
    if queued.is_some() {
        return Ok(());
    }
    let percent = settings().threshold_percent;
    let rendered = render::UsagePool {
        exhausted: kind == Kind::UsageExhausted,
        product: &license.product_name,
        customer: &license.customer_name,
        license: lic,
        issued,
        cap,
        unit,
        percent,
        url: &license_url(license),
    }
    .render();
    queue(conn, kind, Some(lic), &admins(license), &key, rendered, at)?;
    Ok(())
}

/// A flagged metered device: one email to the operators per flag (keyed by the change).
pub(super) fn state_invalid(
    conn: &mut DbConn,
    change: &Change<'_>,
    lic: &str,
    recorded: Recorded,
) -> Result<(), DbError> {
    if settings().operators.is_empty() {
        return Ok(());
    }
    let text = |name: &str| change.detail[name].as_str().unwrap_or_default().to_owned();
    let rendered = render::UsageStateInvalid {
        license: lic,
        seat: change.seat.unwrap_or_default(),
        device_id: &text("device_id"),
        reason: &text("reason"),
        url: &settings().public_url,
    }
    .render();
    queue(
        conn,
        Kind::UsageStateInvalid,
        Some(lic),
        &settings().operators,
        &format!("usage_state_invalid:{lic}:{}", recorded.seq),
        rendered,
        change.at,
    )?;
    Ok(())
}
