//! How far federation is, per license: what `seatkeep federation status` prints, what the
//! grace check of new activations and the overdue alert read, and what the console's badge
//! asks ([`of_license`]).

use diesel::prelude::*;
use serde::Serialize;

use super::state;
use crate::db::schema::{federation_events, licenses};
use crate::db::{DbConn, DbError};

/// One license's federation, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseFederation {
    pub license: String,
    /// The key file's federation URL; `None`: offline files only.
    pub url: Option<String>,
    /// Highest event seq recorded.
    pub last_seq: i64,
    /// Highest seq the provider acknowledged.
    pub acked_seq: i64,
    pub pending: i64,
    /// Seconds since the oldest unacknowledged event; `None` when nothing is pending.
    pub oldest_pending_age: Option<i64>,
    pub last_error: Option<String>,
    /// Unix seconds of the next push after a failure (0: at the next pass).
    pub next_attempt_at: i64,
    /// The key file's `federation.grace`, seconds.
    pub grace: Option<i64>,
    /// The grace passed: new activations answer `federation_overdue`.
    pub overdue: bool,
    /// Pending longer than `federation.alert_after`: operators are told, the console warns.
    pub alerting: bool,
}

/// Age of the oldest unacknowledged event of `lic` at `now`; `None` when all are acked.
pub fn oldest_pending_age(conn: &mut DbConn, lic: &str, now: i64) -> Result<Option<i64>, DbError> {
    let acked = state::read(conn, lic)?.acked_seq;
    let at: Option<i64> = federation_events::table
        .filter(federation_events::license_id.eq(lic))
        .filter(federation_events::seq.eq(acked + 1))
        .select(federation_events::at)
        .get_result(conn)
        .optional()?;
    Ok(at.map(|at| now.saturating_sub(at).max(0)))
}

/// The federation of `lic` at `now` (`alert_after` in seconds); `None` for an unknown license.
pub fn of_license(
    conn: &mut DbConn,
    lic: &str,
    now: i64,
    alert_after: i64,
) -> Result<Option<LicenseFederation>, DbError> {
    let found: Option<(Option<String>, i64, Option<i64>)> = licenses::table
        .filter(licenses::id.eq(lic))
        .select((
            licenses::federation_url,
            licenses::change_seq,
            licenses::federation_grace,
        ))
        .get_result(conn)
        .optional()?;
    let Some((url, last_seq, grace)) = found else {
        return Ok(None);
    };
    let delivery = state::read(conn, lic)?;
    let age = oldest_pending_age(conn, lic, now)?;
    Ok(Some(LicenseFederation {
        license: lic.to_owned(),
        url,
        last_seq,
        acked_seq: delivery.acked_seq,
        pending: last_seq - delivery.acked_seq,
        oldest_pending_age: age,
        last_error: delivery.last_error,
        next_attempt_at: delivery.next_attempt_at,
        grace,
        overdue: matches!((age, grace), (Some(age), Some(grace)) if age > grace),
        alerting: age.is_some_and(|age| age > alert_after),
    }))
}

/// Every license, by id.
pub fn all(
    conn: &mut DbConn,
    now: i64,
    alert_after: i64,
) -> Result<Vec<LicenseFederation>, DbError> {
    let ids: Vec<String> = licenses::table
        .select(licenses::id)
        .order(licenses::id.asc())
        .load(conn)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(of_license(conn, &id, now, alert_after)?);
    }
    Ok(out)
}
