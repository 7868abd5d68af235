//! The audit log: one row per change, written in the same transaction as the change.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::models::{AuditEntry, NewAuditEntry};
use crate::db::schema::audit_log;

/// Appends an audit row inside the caller's transaction.
pub fn record(
    conn: &mut DbConn,
    at: i64,
    actor: &str,
    action: &str,
    license_id: Option<&str>,
    seat_id: Option<&str>,
    detail: serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(NewAuditEntry {
            at,
            actor,
            action,
            license_id,
            seat_id,
            detail: detail.to_string(),
        })
        .execute(conn)?;
    Ok(())
}

/// How many `action` rows a seat has at or after `since`, and the oldest of them.
pub fn count_since(
    conn: &mut DbConn,
    seat_id: &str,
    action: &str,
    since: i64,
) -> QueryResult<(i64, Option<i64>)> {
    audit_log::table
        .filter(audit_log::seat_id.eq(seat_id))
        .filter(audit_log::action.eq(action))
        .filter(audit_log::at.ge(since))
        .select((diesel::dsl::count_star(), diesel::dsl::min(audit_log::at)))
        .get_result(conn)
}

/// The newest audit rows of a license, newest first.
pub fn for_license(
    conn: &mut DbConn,
    license_id: &str,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    audit_log::table
        .filter(audit_log::license_id.eq(license_id))
        .order(audit_log::id.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
}
