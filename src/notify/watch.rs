//! The watch: notifications owed because time passed rather than because something changed
//! (a license nearing or past its `exp`, the clock gone back). A job of every `serve`; the
//! dedupe keys make several instances (and every pass) owe each one once.

use std::time::Duration;

use diesel::prelude::*;

use super::render::{ClockUntrusted, Expiring, FederationOverdue};
use super::{Kind, Rendered, admins, license_url, queue, settings};
use crate::app::App;
use crate::db::models::License;
use crate::db::schema::{licenses, notifications};
use crate::db::{DbConn, DbError};
use crate::jobs::{Job, JobError};
use crate::seats::LicenseStatus;

use super::DAY_SECS;
/// Write order: outbox rows only, after every license id.
const WRITE_ORDER: &str = "~notifications";

/// The watch job.
#[derive(Debug)]
pub struct Watch {
    expiring_days: Vec<u32>,
    /// `federation.alert_after`, seconds.
    alert_after: i64,
}

impl Watch {
    pub fn new(expiring_days: &[u32], alert_after: Duration) -> Self {
        Self {
            expiring_days: expiring_days.to_vec(),
            alert_after: i64::try_from(alert_after.as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// One notification the watch owes.
struct Owed {
    kind: Kind,
    license: Option<String>,
    recipients: Vec<String>,
    key: String,
    rendered: Rendered,
}

/// The `expiring` notification due for `license` at `now`, if any: once each of `days`
/// before `exp` (only the nearest one passed, so a server that was off does not send three
/// at once), and once after it. Returns the dedupe key (per milestone), whether it expired,
/// and the days really left, rounded up (a server that was off past the 7-day milestone and
/// starts 3 days before `exp` says 3, not 7).
fn expiry_due(id: &str, exp: Option<i64>, days: &[u32], now: i64) -> Option<(String, bool, u32)> {
    let exp = exp?;
    if now >= exp {
        return Some((format!("expired:{id}:{exp}"), true, 0));
    }
    let left = exp - now;
    let day = days
        .iter()
        .copied()
        .filter(|d| i64::from(*d) * DAY_SECS >= left)
        .min()?;
    let days_left = u32::try_from((left + DAY_SECS - 1) / DAY_SECS).unwrap_or(day);
    Some((format!("expiring:{id}:{exp}:{day}d"), false, days_left))
}

fn rfc3339(at: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

fn owed(app: &App, conn: &mut DbConn, watch: &Watch, now: i64) -> Result<Vec<Owed>, DbError> {
    let days = &watch.expiring_days;
    let mut owed = Vec::new();
    let active: Vec<License> = licenses::table
        .filter(licenses::status.eq(LicenseStatus::Active.as_str()))
        .filter(licenses::expires_at.is_not_null())
        .order(licenses::id)
        .select(License::as_select())
        .load(conn)?;
    for license in &active {
        let Some((key, expired, days_left)) =
            expiry_due(&license.id, license.expires_at, days, now)
        else {
            continue;
        };
        let url = license_url(license);
        let rendered = Expiring {
            product: &license.product_name,
            customer: &license.customer_name,
            license: &license.id,
            expired,
            days: days_left,
            expires: rfc3339(license.expires_at.unwrap_or_default()),
            url: &url,
        }
        .render();
        owed.push(Owed {
            kind: Kind::Expiring,
            license: Some(license.id.clone()),
            recipients: admins(license),
            key,
            rendered,
        });
    }
    if let Err(untrusted) = app.clock.check(now)
        && !settings().operators.is_empty()
    {
        // Keyed by the high-water mark the clock fell behind: one email per incident.
        let high = now + untrusted.behind_secs;
        owed.push(Owed {
            kind: Kind::ClockUntrusted,
            license: None,
            recipients: settings().operators.clone(),
            key: format!("clock_untrusted:{high}"),
            rendered: ClockUntrusted {
                behind_secs: untrusted.behind_secs,
                url: &settings().public_url,
            }
            .render(),
        });
    }
    if !settings().operators.is_empty() {
        owed.extend(federation_overdue(conn, watch.alert_after, now)?);
    }
    // Only what is not queued yet is written: most passes write nothing.
    let mut missing = Vec::with_capacity(owed.len());
    for o in owed {
        let exists = notifications::table
            .filter(notifications::dedupe_key.eq(&o.key))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !exists {
            missing.push(o);
        }
    }
    Ok(missing)
}

/// Licenses whose events wait past `alert_after`: one email to the operators per episode,
/// keyed by the acknowledged seq it is stuck at (an ack that moves ends the episode).
fn federation_overdue(conn: &mut DbConn, alert_after: i64, now: i64) -> Result<Vec<Owed>, DbError> {
    let stuck = crate::federation::status::all(conn, now, alert_after)?;
    Ok(stuck
        .into_iter()
        .filter(|f| f.alerting)
        .map(|f| Owed {
            kind: Kind::FederationOverdue,
            license: Some(f.license.clone()),
            recipients: settings().operators.clone(),
            key: format!("federation_overdue:{}:{}", f.license, f.acked_seq),
            rendered: FederationOverdue {
                license: &f.license,
                pending: f.pending,
                age_secs: f.oldest_pending_age.unwrap_or_default(),
                provider_url: f.url.as_deref().unwrap_or("(offline files only)"),
                url: &settings().public_url,
            }
            .render(),
        })
        .collect())
}

impl Job for Watch {
    fn name(&self) -> &'static str {
        "notify_watch"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run(&self, app: &App) -> Result<(), JobError> {
        let now = app.clock.now();
        let missing = owed(app, &mut *app.db.conn()?, self, now)?;
        if missing.is_empty() {
            return Ok(());
        }
        app.db.write(WRITE_ORDER, move |conn| {
            for o in missing {
                queue(
                    conn,
                    o.kind,
                    o.license.as_deref(),
                    &o.recipients,
                    &o.key,
                    o.rendered,
                    now,
                )?;
            }
            Ok::<(), DbError>(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_day_passed_is_due_once() {
        let days = [30, 7, 1];
        let exp = 100 * DAY_SECS;
        let at = |n: i64| expiry_due("l", Some(exp), &days, exp - n);
        assert_eq!(at(40 * DAY_SECS), None);
        assert_eq!(at(30 * DAY_SECS).map(|d| d.2), Some(30));
        // Past the 7-day milestone with 5 days left: the 7-day email, saying 5.
        let five = at(5 * DAY_SECS).unwrap();
        assert!(five.0.ends_with(":7d"), "{}", five.0);
        assert_eq!(five.2, 5);
        assert_eq!(at(6 * DAY_SECS + 1).map(|d| d.2), Some(7));
        assert_eq!(at(3600).map(|d| d.2), Some(1));
        assert!(at(0).is_some_and(|d| d.1));
        assert_eq!(expiry_due("l", None, &days, exp), None);
    }
}
