//! Prometheus metrics: process counters kept here, seat gauges read from the database at
//! scrape time (so several instances report the same truth).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::app::App;
use crate::seats::{Activation, SeatError};

static ACTIVATIONS_CREATED: AtomicU64 = AtomicU64::new(0);
static ACTIVATIONS_REPEATED: AtomicU64 = AtomicU64::new(0);
static ACTIVATIONS_EXHAUSTED: AtomicU64 = AtomicU64::new(0);
static ACTIVATIONS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Counts one activation answer.
pub fn count_activation(result: &Result<Activation, SeatError>) {
    let counter = match result {
        Ok(a) if a.created => &ACTIVATIONS_CREATED,
        Ok(_) => &ACTIVATIONS_REPEATED,
        Err(SeatError::SeatsExhausted { .. }) => &ACTIVATIONS_EXHAUSTED,
        Err(_) => &ACTIVATIONS_REFUSED,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Renders the exposition text. Blocking (reads the database).
pub fn render(app: &App) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP seatkeep_activations_total Activation requests answered by this instance.\n",
    );
    out.push_str("# TYPE seatkeep_activations_total counter\n");
    for (result, counter) in [
        ("created", &ACTIVATIONS_CREATED),
        ("repeated", &ACTIVATIONS_REPEATED),
        ("seats_exhausted", &ACTIVATIONS_EXHAUSTED),
        ("refused", &ACTIVATIONS_REFUSED),
    ] {
        let _ = writeln!(
            out,
            "seatkeep_activations_total{{result=\"{result}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    let (licenses, refusals, outbox) = match app.db.conn() {
        Ok(mut conn) => (
            crate::licenses::list(&mut conn).ok(),
            crate::db::refusals::totals(&mut conn).unwrap_or_default(),
            crate::notify::outbox::stats(&mut conn).unwrap_or_default(),
        ),
        Err(_) => (None, Vec::new(), Default::default()),
    };
    out.push_str("# HELP seatkeep_database_up 1 when the database answered this scrape.\n");
    out.push_str("# TYPE seatkeep_database_up gauge\n");
    let _ = writeln!(out, "seatkeep_database_up {}", u8::from(licenses.is_some()));
    out.push_str("# HELP seatkeep_seats Seats bought per license.\n# TYPE seatkeep_seats gauge\n");
    let licenses = licenses.unwrap_or_default();
    for l in &licenses {
        let _ = writeln!(
            out,
            "seatkeep_seats{{license=\"{}\"}} {}",
            escape(&l.id),
            l.seats
        );
    }
    out.push_str("# HELP seatkeep_seats_in_use Seats held per license.\n# TYPE seatkeep_seats_in_use gauge\n");
    for l in &licenses {
        let _ = writeln!(
            out,
            "seatkeep_seats_in_use{{license=\"{}\"}} {}",
            escape(&l.id),
            l.in_use
        );
    }
    out.push_str("# HELP seatkeep_refusals_total Activations refused for lack of seats, per license (all instances).\n# TYPE seatkeep_refusals_total counter\n");
    for (license, refused) in &refusals {
        let _ = writeln!(
            out,
            "seatkeep_refusals_total{{license=\"{}\"}} {refused}",
            escape(license)
        );
    }
    notifications(&mut out, app, &outbox);
    federation(&mut out, app);
    usage(&mut out, app);
    out
}

/// Metered licenses (all instances, from the database): units sold and issued, packets
/// issued, devices flagged for an impossible report.
fn usage(out: &mut String, app: &App) {
    let rows = app
        .db
        .conn()
        .ok()
        .and_then(|mut c| crate::meter::ops::gauges(&mut c).ok())
        .unwrap_or_default();
    type Value = fn(&crate::meter::ops::UsageGauge) -> i64;
    let gauges: [(&str, &str, &str, Value); 4] = [
        (
            "seatkeep_usage_units",
            "gauge",
            "Units sold, per metered license.",
            |r| r.units,
        ),
        (
            "seatkeep_usage_units_issued_total",
            "counter",
            "Units issued in packets, per metered license.",
            |r| r.issued,
        ),
        (
            "seatkeep_usage_packets_issued_total",
            "counter",
            "Packets issued, per metered license.",
            |r| r.packets,
        ),
        (
            "seatkeep_usage_devices_flagged",
            "gauge",
            "Devices refused for an impossible reported state until reset, per license.",
            |r| r.devices_flagged,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let values = rows.iter().map(|r| (r.license.as_str(), value(r)));
        per_license(out, name, kind, help, values);
    }
}

/// Federation per license (all instances, from the database): events the provider has not
/// acknowledged and the age of the oldest.
fn federation(out: &mut String, app: &App) {
    let alert_after =
        i64::try_from(app.config.federation.alert_after.as_secs()).unwrap_or(i64::MAX);
    let rows = app
        .db
        .conn()
        .ok()
        .and_then(|mut c| crate::federation::status::all(&mut c, app.clock.now(), alert_after).ok())
        .unwrap_or_default();
    type Value = fn(&crate::federation::status::LicenseFederation) -> i64;
    let gauges: [(&str, &str, Value); 2] = [
        (
            "seatkeep_federation_pending_events",
            "Events not yet acknowledged by the provider, per license.",
            |r| r.pending,
        ),
        (
            "seatkeep_federation_oldest_pending_seconds",
            "Age of the oldest unacknowledged event, per license (0: none).",
            |r| r.oldest_pending_age.unwrap_or(0),
        ),
    ];
    for (name, help, value) in gauges {
        let values = rows.iter().map(|r| (r.license.as_str(), value(r)));
        per_license(out, name, "gauge", help, values);
    }
}

/// One metric with a value per license.
fn per_license<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    values: impl Iterator<Item = (&'a str, i64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (license, value) in values {
        let _ = writeln!(out, "{name}{{license=\"{}\"}} {value}", escape(license));
    }
}

/// The email outbox (all instances, from the database, so every instance reports the same
/// figures): notifications queued, sent and given up on, rows per state, the oldest pending
/// age; and the attempts this instance made.
fn notifications(out: &mut String, app: &App, outbox: &crate::notify::outbox::Stats) {
    use crate::notify::outbox::NotificationState;
    use crate::notify::sender::{FAILED_ATTEMPTS, SENT};
    let count = |wanted: NotificationState| {
        outbox
            .by_state
            .iter()
            .filter(|(state, _)| *state == wanted)
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    let queued: i64 = outbox.by_state.iter().map(|(_, n)| n).sum();
    for (name, help, value) in [
        (
            "seatkeep_notifications_queued_total",
            "Notifications ever queued (all instances; rows are never deleted).",
            queued,
        ),
        (
            "seatkeep_notifications_sent_total",
            "Notifications sent (all instances).",
            count(NotificationState::Sent),
        ),
        (
            "seatkeep_notifications_failed_total",
            "Notifications given up on (all instances; `notify retry` takes one back, read as a counter reset).",
            count(NotificationState::Failed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out.push_str(
        "# HELP seatkeep_notifications Notifications in the outbox by state.
# TYPE seatkeep_notifications gauge
",
    );
    for (state, n) in &outbox.by_state {
        let _ = writeln!(
            out,
            "seatkeep_notifications{{state=\"{}\"}} {n}",
            state.as_str()
        );
    }
    out.push_str("# HELP seatkeep_notifications_oldest_pending_seconds Age of the oldest unsent notification (0: none).
# TYPE seatkeep_notifications_oldest_pending_seconds gauge
");
    let age = outbox
        .oldest_pending
        .map_or(0, |at| (app.clock.now() - at).max(0));
    let _ = writeln!(out, "seatkeep_notifications_oldest_pending_seconds {age}");
    out.push_str(
        "# HELP seatkeep_emails_total SMTP sessions by this instance: sent, or failed (an attempt; the row may be retried).
# TYPE seatkeep_emails_total counter
",
    );
    for (result, counter) in [("sent", &SENT), ("failed", &FAILED_ATTEMPTS)] {
        let _ = writeln!(
            out,
            "seatkeep_emails_total{{result=\"{result}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
