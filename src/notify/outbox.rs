//! The outbox rows after they are queued: claimed with a lease, marked sent, retried with
//! backoff, given up on; listed and retried by the CLI.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::schema::notifications;
use crate::db::{Backend, DbConn, DbError};

/// First retry delay; doubles per attempt up to [`MAX_BACKOFF_SECS`].
const FIRST_BACKOFF_SECS: i64 = 60;
const MAX_BACKOFF_SECS: i64 = 3600;
/// Longest `last_error` kept.
const MAX_ERROR_LEN: usize = 1000;
/// SMTP commands of a session besides one `RCPT TO` per recipient, each allowed the full
/// `smtp.timeout`: connect, greeting, EHLO, STARTTLS (or the TLS handshake), EHLO again,
/// AUTH, MAIL FROM, DATA with its content, QUIT.
const SESSION_STEPS: i64 = 8;

/// Where a notification is: waiting (or being sent), sent, or given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    Pending,
    Sent,
    Failed,
}

crate::stored_word!(NotificationState, "notification state", {
    Pending => "pending",
    Sent => "sent",
    Failed => "failed",
});

impl NotificationState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        crate::db::word::StoredWord::as_str(self)
    }
}

/// How long a claim holds a row: a whole SMTP session to `recipients` where every step
/// takes the full timeout, so no other instance sends the row while this one still may.
pub fn lease_secs(timeout_secs: i64, recipients: usize) -> i64 {
    let recipients = i64::try_from(recipients.max(1)).unwrap_or(i64::MAX / 4);
    SESSION_STEPS
        .saturating_add(recipients)
        .saturating_mul(timeout_secs.max(1))
}

/// A claimed row, what the sender needs to send it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub recipients: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub body_text: String,
    #[diesel(sql_type = Text)]
    pub body_html: String,
    #[diesel(sql_type = Text)]
    pub dedupe_key: String,
    #[diesel(sql_type = BigInt)]
    pub attempts: i64,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// A row as `notify list` shows it.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = notifications)]
pub struct Listed {
    pub id: i64,
    pub kind: String,
    pub license_id: Option<String>,
    pub recipients: String,
    pub subject: String,
    #[diesel(deserialize_as = crate::db::word::Word<NotificationState>)]
    pub state: NotificationState,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Whether any row is due: a read, so an idle sender does not queue a write every pass.
pub fn any_due(conn: &mut DbConn, now: i64) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        notifications::table
            .filter(notifications::state.eq(NotificationState::Pending.as_str()))
            .filter(notifications::next_attempt_at.le(now)),
    ))
    .get_result(conn)?)
}

/// Claims the oldest due row: it gets one more attempt and, as its next attempt, the end
/// of a lease long enough for a whole session to its recipients ([`lease_secs`]), so no
/// other instance takes it while it is being sent and a crash leaves it due again after the
/// lease. PostgreSQL skips rows another instance has locked this moment; SQLite has one
/// writer anyway.
pub fn claim(conn: &mut DbConn, now: i64, timeout_secs: i64) -> Result<Option<Claimed>, DbError> {
    let sql = match conn.backend() {
        Backend::Postgres => {
            "SELECT id, kind, recipients, subject, body_text, body_html, dedupe_key, \
               attempts, created_at FROM notifications \
             WHERE state = $1 AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id, kind, recipients, subject, body_text, body_html, dedupe_key, \
               attempts, created_at FROM notifications \
             WHERE state = ? AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, id LIMIT 1"
        }
    };
    let row: Option<Claimed> = diesel::sql_query(sql)
        .bind::<Text, _>(NotificationState::Pending.as_str())
        .bind::<BigInt, _>(now)
        .get_result(conn)
        .optional()?;
    let Some(mut row) = row else {
        return Ok(None);
    };
    let lease_until = now + lease_secs(timeout_secs, row.recipient_list().len());
    row.attempts += 1;
    diesel::update(notifications::table.find(row.id))
        .set((
            notifications::next_attempt_at.eq(lease_until),
            notifications::attempts.eq(row.attempts),
        ))
        .execute(conn)?;
    Ok(Some(row))
}

impl Claimed {
    /// The recipients, as stored (a JSON array).
    pub fn recipient_list(&self) -> Vec<String> {
        serde_json::from_str(&self.recipients).unwrap_or_default()
    }
}

/// The row of a claim, if the claim still holds.
type StillClaimed = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Find<notifications::table, i64>,
        diesel::dsl::Eq<notifications::state, &'static str>,
    >,
    diesel::dsl::Eq<notifications::attempts, i64>,
>;

/// The claim of `row` as its sender holds it: still pending and no attempt since (another
/// instance that took the row over after the lease counted one more).
fn still_claimed(row: &Claimed) -> StillClaimed {
    notifications::table
        .find(row.id)
        .filter(notifications::state.eq(NotificationState::Pending.as_str()))
        .filter(notifications::attempts.eq(row.attempts))
}

/// Marks a claimed row sent. Returns false when the claim was lost (the lease ran out and
/// another instance took the row), which leaves the row to that instance.
pub fn mark_sent(conn: &mut DbConn, row: &Claimed, now: i64) -> Result<bool, DbError> {
    let changed = diesel::update(still_claimed(row))
        .set((
            notifications::state.eq(NotificationState::Sent.as_str()),
            notifications::sent_at.eq(Some(now)),
            notifications::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Records a failed attempt: due again after the backoff for `attempts`, or failed for good
/// once the row is older than `give_up_secs`. Returns true when it gave up; a lost claim
/// (see [`mark_sent`]) changes nothing and returns false.
pub fn mark_attempt_failed(
    conn: &mut DbConn,
    row: &Claimed,
    error: &str,
    now: i64,
    give_up_secs: i64,
) -> Result<bool, DbError> {
    let gave_up = now - row.created_at >= give_up_secs;
    let error: String = error.chars().take(MAX_ERROR_LEN).collect();
    let state = if gave_up {
        NotificationState::Failed
    } else {
        NotificationState::Pending
    };
    let changed = diesel::update(still_claimed(row))
        .set((
            notifications::state.eq(state.as_str()),
            notifications::next_attempt_at.eq(now + backoff_secs(row.attempts)),
            notifications::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(gave_up && changed == 1)
}

/// Delay after the `attempts`-th failed attempt: 1 min, doubling, at most 1 h.
pub fn backoff_secs(attempts: i64) -> i64 {
    let doublings = u32::try_from((attempts - 1).clamp(0, 6)).unwrap_or(6);
    (FIRST_BACKOFF_SECS << doublings).min(MAX_BACKOFF_SECS)
}

/// Which rows `notify list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Pending,
    Failed,
}

/// Rows, newest first (at most `limit`).
pub fn list(conn: &mut DbConn, filter: Filter, limit: i64) -> Result<Vec<Listed>, DbError> {
    let mut query = notifications::table
        .select(Listed::as_select())
        .order(notifications::id.desc())
        .limit(limit)
        .into_boxed();
    match filter {
        Filter::All => {}
        Filter::Pending => {
            query = query.filter(notifications::state.eq(NotificationState::Pending.as_str()));
        }
        Filter::Failed => {
            query = query.filter(notifications::state.eq(NotificationState::Failed.as_str()));
        }
    }
    Ok(query.load(conn)?)
}

/// Makes a pending or failed row due now, with a fresh give-up period. Returns false when
/// no unsent row has this id.
pub fn retry(conn: &mut DbConn, id: i64, now: i64) -> Result<bool, DbError> {
    let changed = diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::state.ne(NotificationState::Sent.as_str())),
    )
    .set((
        notifications::state.eq(NotificationState::Pending.as_str()),
        notifications::next_attempt_at.eq(now),
        notifications::created_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Makes an unsent notification due now (`notify retry`, the console's retry button),
/// journalled with `actor`. Returns false when no unsent row has this id.
pub fn retry_now(app: &crate::app::App, id: i64, actor: &str) -> Result<bool, DbError> {
    let now = app.clock.now();
    let actor = actor.to_owned();
    app.db.write("~notifications", move |conn| {
        if !retry(conn, id, now)? {
            return Ok(false);
        }
        crate::journal::record(
            conn,
            &crate::journal::Change {
                at: now,
                actor: &actor,
                kind: crate::journal::ChangeKind::NotificationRetried,
                license: None,
                seat: None,
                detail: serde_json::json!({"notification": id}),
            },
        )?;
        Ok(true)
    })
}

/// The outbox in numbers, for metrics (all instances: rows are never deleted, so the
/// number of rows is the number ever queued).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Rows per state: pending, sent, failed.
    pub by_state: Vec<(NotificationState, i64)>,
    /// Creation time of the oldest pending row.
    pub oldest_pending: Option<i64>,
}

/// Rows per state, and the creation time of the oldest pending one.
pub fn stats(conn: &mut DbConn) -> Result<Stats, DbError> {
    let mut counts = Vec::with_capacity(3);
    for state in [
        NotificationState::Pending,
        NotificationState::Sent,
        NotificationState::Failed,
    ] {
        let n: i64 = notifications::table
            .filter(notifications::state.eq(state.as_str()))
            .count()
            .get_result(conn)?;
        counts.push((state, n));
    }
    let oldest: Option<i64> = notifications::table
        .filter(notifications::state.eq(NotificationState::Pending.as_str()))
        .select(diesel::dsl::min(notifications::created_at))
        .get_result(conn)?;
    Ok(Stats {
        by_state: counts,
        oldest_pending: oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::{backoff_secs, lease_secs};

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        let delays: Vec<i64> = (1..=8).map(backoff_secs).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn lease_covers_a_whole_session_to_every_recipient() {
        // 30 s timeout: 8 steps plus one RCPT each.
        assert_eq!(lease_secs(30, 1), 270);
        assert_eq!(lease_secs(30, 2), 300);
        assert_eq!(lease_secs(30, 12), 600);
        // A row with no parsable recipients still gets a one-recipient session.
        assert_eq!(lease_secs(30, 0), 270);
        // The old figure (4 × timeout + 60 s) fell short of a slow two-recipient session.
        assert!(lease_secs(30, 2) > 4 * 30 + 60);
    }
}
