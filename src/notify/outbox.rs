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
    pub state: String,
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
            .filter(notifications::state.eq("pending"))
            .filter(notifications::next_attempt_at.le(now)),
    ))
    .get_result(conn)?)
}

/// Claims up to `limit` due rows: each gets `lease_until` as its next attempt (so no other
/// instance takes it while it is being sent, and a crash leaves it due again after the lease)
/// and one more attempt. PostgreSQL skips rows another instance has locked this moment;
/// SQLite has one writer anyway.
pub fn claim(
    conn: &mut DbConn,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>, DbError> {
    let sql = match conn.backend() {
        Backend::Postgres => {
            "UPDATE notifications SET next_attempt_at = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM notifications \
               WHERE state = 'pending' AND next_attempt_at <= $2 \
               ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, recipients, subject, body_text, body_html, dedupe_key, \
               attempts, created_at"
        }
        Backend::Sqlite => {
            "UPDATE notifications SET next_attempt_at = ?, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM notifications \
               WHERE state = 'pending' AND next_attempt_at <= ? \
               ORDER BY next_attempt_at, id LIMIT ?) \
             RETURNING id, kind, recipients, subject, body_text, body_html, dedupe_key, \
               attempts, created_at"
        }
    };
    Ok(diesel::sql_query(sql)
        .bind::<BigInt, _>(lease_until)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// Marks a claimed row sent.
pub fn mark_sent(conn: &mut DbConn, id: i64, now: i64) -> Result<(), DbError> {
    diesel::update(notifications::table.find(id))
        .set((
            notifications::state.eq("sent"),
            notifications::sent_at.eq(Some(now)),
            notifications::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failed attempt: due again after the backoff for `attempts`, or failed for good
/// once the row is older than `give_up_secs`. Returns true when it gave up.
pub fn mark_attempt_failed(
    conn: &mut DbConn,
    row: &Claimed,
    error: &str,
    now: i64,
    give_up_secs: i64,
) -> Result<bool, DbError> {
    let gave_up = now - row.created_at >= give_up_secs;
    let error: String = error.chars().take(MAX_ERROR_LEN).collect();
    diesel::update(notifications::table.find(row.id))
        .set((
            notifications::state.eq(if gave_up { "failed" } else { "pending" }),
            notifications::next_attempt_at.eq(now + backoff_secs(row.attempts)),
            notifications::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(gave_up)
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
        Filter::Pending => query = query.filter(notifications::state.eq("pending")),
        Filter::Failed => query = query.filter(notifications::state.eq("failed")),
    }
    Ok(query.load(conn)?)
}

/// Makes a pending or failed row due now, with a fresh give-up period. Returns false when
/// no unsent row has this id.
pub fn retry(conn: &mut DbConn, id: i64, now: i64) -> Result<bool, DbError> {
    let changed = diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::state.ne("sent")),
    )
    .set((
        notifications::state.eq("pending"),
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

/// The outbox in numbers, for metrics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Rows per state: pending, sent, failed.
    pub by_state: Vec<(String, i64)>,
    /// Creation time of the oldest pending row.
    pub oldest_pending: Option<i64>,
}

/// Rows per state, and the creation time of the oldest pending one.
pub fn stats(conn: &mut DbConn) -> Result<Stats, DbError> {
    let mut counts = Vec::with_capacity(3);
    for state in ["pending", "sent", "failed"] {
        let n: i64 = notifications::table
            .filter(notifications::state.eq(state))
            .count()
            .get_result(conn)?;
        counts.push((state.to_owned(), n));
    }
    let oldest: Option<i64> = notifications::table
        .filter(notifications::state.eq("pending"))
        .select(diesel::dsl::min(notifications::created_at))
        .get_result(conn)?;
    Ok(Stats {
        by_state: counts,
        oldest_pending: oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        let delays: Vec<i64> = (1..=8).map(backoff_secs).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
