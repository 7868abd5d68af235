//! The emails of metered licenses (DESIGN §8, §10.3), queued by the journal inside the
//! transaction of the change that owes them: `usage_exhausted` when a packet spends the
//! last units of the pool, `usage_threshold` when `issued / cap` crosses
//! `notify.threshold_percent` upward (both to the key file's admins, once per cap: a
//! renewal that raises the cap starts a new episode), and `usage_state_invalid` to the
//! operators when a device is flagged.

use diesel::prelude::*;

use super::{Kind, admins, license_url, queue, render, settings};
use crate::db::models::License;
use crate::db::schema::licenses;
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
    let (kind, key) = if cap > 0 && issued >= cap {
        (Kind::UsageExhausted, format!("usage_exhausted:{lic}:{cap}"))
    } else if cap > 0 && over(issued) && !over(issued - amt) {
        (Kind::UsageThreshold, format!("usage_threshold:{lic}:{cap}"))
    } else {
        return Ok(());
    };
    let rendered = render::UsagePool {
        exhausted: kind == Kind::UsageExhausted,
        product: &license.product_name,
        customer: &license.customer_name,
        license: lic,
        issued,
        cap,
        unit: change.detail["unit"].as_str().unwrap_or_default(),
        percent,
        url: &license_url(&license),
    }
    .render();
    queue(
        conn,
        kind,
        Some(lic),
        &admins(&license),
        &key,
        rendered,
        change.at,
    )?;
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
