//! Email notifications (DESIGN §8): what is owed, written as outbox rows inside the
//! transaction of the change that causes it, each with a unique dedupe key. The key, not an
//! application-side "sent already?" check, is what makes "once" hold on several instances:
//! every insert is `ON CONFLICT DO NOTHING`.
//!
//! Rows are written from three places only: the journal (threshold and the metered emails
//! of [`usage`], inside the change's transaction), the group-commit writer's refusal step (seats_exhausted, after every other
//! job of the batch, so outbox rows are locked last), and the watch job (expiry, clock).
//! [`sender`] sends them.

pub mod outbox;
pub mod render;
pub mod sender;
pub mod usage;
pub mod watch;

use std::sync::OnceLock;

use diesel::prelude::*;

use crate::config::Config;
use crate::db::models::License;
use crate::db::refusals::{self, RefusalCount};
use crate::db::schema::{licenses, notifications};
use crate::db::{DbConn, DbError};
use crate::journal::{Change, ChangeKind, Recorded};

pub use render::Rendered;

/// Seconds in a day: the digest period of a seats_exhausted episode.
pub(crate) const DAY_SECS: i64 = 86_400;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SeatsExhausted,
    Threshold,
    Expiring,
    ClockUntrusted,
    FederationOverdue,
    UsageStateInvalid,
    UsageExhausted,
    UsageThreshold,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeatsExhausted => "seats_exhausted",
            Self::Threshold => "threshold",
            Self::Expiring => "expiring",
            Self::ClockUntrusted => "clock_untrusted",
            Self::FederationOverdue => "federation_overdue",
            Self::UsageStateInvalid => "usage_state_invalid",
            Self::UsageExhausted => "usage_exhausted",
            Self::UsageThreshold => "usage_threshold",
        }
    }
}

/// What the rules need from the config. Set once per process by [`configure`]; the journal
/// and the writer reach it here because they run deep inside write closures that get only a
/// connection.
#[derive(Debug, Clone)]
pub struct Settings {
    pub public_url: String,
    pub threshold_percent: i64,
    pub operators: Vec<String>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Records the settings of this process's config (the first call wins).
pub fn configure(config: &Config) {
    let _ = SETTINGS.set(Settings {
        public_url: config.public_url(),
        threshold_percent: i64::from(config.notify.threshold_percent),
        operators: config.notify.operators.clone(),
    });
}

pub(crate) fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        public_url: String::new(),
        threshold_percent: 90,
        operators: Vec::new(),
    })
}

/// Parses an RFC 5322 mailbox (`a@b.example` or `Name <a@b.example>`).
pub fn parse_mailbox(
    text: &str,
) -> Result<lettre::message::Mailbox, lettre::address::AddressError> {
    text.parse()
}

/// `b***@customer.example`: recipients as logs show them.
pub fn mask(address: &str) -> String {
    let addr = address
        .rsplit('<')
        .next()
        .unwrap_or(address)
        .trim_end_matches('>');
    match addr.split_once('@') {
        Some((local, domain)) => {
            format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
        }
        None => "***".to_owned(),
    }
}

/// `text` with every mailbox-shaped word (`local@domain.tld`) masked as [`mask`] does: what
/// a relay answers (`550 5.1.1 <buyer@customer.example> unknown`) may quote a recipient.
pub fn mask_mailboxes(text: &str) -> String {
    let is_local = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '@' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut start = out.len();
        for (at, c) in out.char_indices().rev() {
            if !is_local(c) {
                break;
            }
            start = at;
        }
        let mut end = i + 1;
        while end < chars.len() && is_domain(chars[end]) {
            end += 1;
        }
        let domain: String = chars[i + 1..end].iter().collect();
        let domain = domain.trim_end_matches('.');
        if start == out.len() || domain.is_empty() {
            out.push('@');
            i += 1;
            continue;
        }
        let local = out.split_off(start);
        out.push_str(&mask(&format!("{local}@{domain}")));
        i += 1 + domain.chars().count();
    }
    out
}

/// One notification to queue.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = notifications)]
struct NewNotification<'a> {
    kind: &'a str,
    license_id: Option<&'a str>,
    recipients: String,
    subject: String,
    body_text: String,
    body_html: String,
    dedupe_key: &'a str,
    created_at: i64,
    next_attempt_at: i64,
}

/// Queues a notification unless one with `dedupe_key` exists. Returns true when queued.
pub fn queue(
    conn: &mut DbConn,
    kind: Kind,
    license_id: Option<&str>,
    recipients: &[String],
    dedupe_key: &str,
    rendered: Rendered,
    now: i64,
) -> Result<bool, DbError> {
    let row = NewNotification {
        kind: kind.as_str(),
        license_id,
        recipients: serde_json::Value::from(recipients.to_vec()).to_string(),
        subject: rendered.subject,
        body_text: rendered.text,
        body_html: rendered.html,
        dedupe_key,
        created_at: now,
        next_attempt_at: now,
    };
    // Written once, compiled per backend (`ON CONFLICT DO NOTHING` on both).
    let inserted = crate::on_backend!(conn, |c| diesel::insert_into(notifications::table)
        .values(&row)
        .on_conflict(notifications::dedupe_key)
        .do_nothing()
        .execute(c))?;
    if inserted == 1 {
        tracing::info!(
            kind = kind.as_str(),
            key = dedupe_key,
            "notification queued"
        );
    }
    Ok(inserted == 1)
}

/// The license's admins, as stored (a JSON array).
pub(crate) fn admins(license: &License) -> Vec<String> {
    serde_json::from_str(&license.admins).unwrap_or_default()
}

pub(crate) fn license_url(license: &License) -> String {
    format!("{}/console/licenses/{}", settings().public_url, license.id)
}

/// The writer's refusal step, after the batch's counter upsert for `count`: the first
/// refusal of an episode queues `seats_exhausted`; while refusals go on, one digest a day.
/// Only reads the license row (its lock belongs to the changes, taken first).
pub fn on_refusal(conn: &mut DbConn, count: &RefusalCount) -> Result<(), DbError> {
    let license: Option<License> = licenses::table
        .find(&count.license_id)
        .select(License::as_select())
        .get_result(conn)
        .optional()?;
    let Some(license) = license else {
        return Ok(());
    };
    if license.in_use < license.capacity {
        // A seat was freed after this refusal was decided: the episode is over already.
        return Ok(());
    }
    let key = format!("seats_exhausted:{}:{}", license.id, license.exhaust_episode);
    let started: Option<i64> = notifications::table
        .filter(notifications::dedupe_key.eq(&key))
        .select(notifications::created_at)
        .get_result(conn)
        .optional()?;
    let now = count.last_at;
    let (key, refused, day) = match started {
        None => (key, count.refused, 0),
        Some(started) => {
            let day = (now - started) / DAY_SECS;
            if day < 1 {
                return Ok(());
            }
            let refused = refusals::total_since(conn, &license.id, started)?;
            (format!("{key}:day{day}"), refused, day)
        }
    };
    let rendered = render::seats_exhausted(&license, refused, day, &license_url(&license));
    queue(
        conn,
        Kind::SeatsExhausted,
        Some(&license.id),
        &admins(&license),
        &key,
        rendered,
        now,
    )?;
    Ok(())
}

/// The journal's hook, inside the change's transaction: a grant that takes usage across
/// `notify.threshold_percent` upward queues `threshold`, keyed by the change's number (a new
/// crossing needs usage to have gone back under first, so each is its own episode).
pub fn on_change(
    conn: &mut DbConn,
    change: &Change<'_>,
    recorded: Option<Recorded>,
) -> Result<(), DbError> {
    let (Some(recorded), Some(lic)) = (recorded, change.license) else {
        return Ok(());
    };
    match change.kind {
        ChangeKind::UsageStateInvalid => return usage::state_invalid(conn, change, lic, recorded),
        ChangeKind::UsageProvisioned => return usage::provisioned(conn, change, lic),
        _ => {}
    }
    if change.kind != ChangeKind::SeatActivated || recorded.seats <= 0 {
        return Ok(());
    }
    let percent = settings().threshold_percent;
    let over = |in_use: i64| in_use * 100 >= percent * recorded.seats;
    if !over(recorded.in_use) || over(recorded.in_use - 1) {
        return Ok(());
    }
    let license: License = licenses::table
        .find(lic)
        .select(License::as_select())
        .get_result(conn)?;
    let detail = &change.detail;
    let text = |name: &str| detail[name].as_str().unwrap_or_default().to_owned();
    let rendered = render::threshold(
        &license,
        recorded.in_use,
        percent,
        &text("user_name"),
        &text("device_id"),
        &license_url(&license),
    );
    queue(
        conn,
        Kind::Threshold,
        Some(lic),
        &admins(&license),
        &format!("threshold:{lic}:{}", recorded.seq),
        rendered,
        change.at,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mask_mailboxes;

    #[test]
    fn mailboxes_in_a_relay_answer_are_masked() {
        let answer = "127.0.0.1:25: failed (permanent error (550): 5.1.1 <cfo@customer.example>: \
                      unknown; also buyer.x+y@sub.customer.example.)";
        let masked = mask_mailboxes(answer);
        assert!(!masked.contains("cfo@"), "{masked}");
        assert!(!masked.contains("buyer.x+y@"), "{masked}");
        assert!(masked.contains("<c***@customer.example>"), "{masked}");
        assert!(masked.contains("b***@sub.customer.example."), "{masked}");
        assert!(masked.starts_with("127.0.0.1:25: failed"), "{masked}");
        // Nothing mailbox-shaped: unchanged.
        for text in [
            "no at sign",
            "a lone @ sign",
            "trailing@",
            "@leading.example",
        ] {
            assert_eq!(mask_mailboxes(text), text);
        }
    }
}
