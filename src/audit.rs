//! Reading the audit log. Rows are written only by [`crate::journal::record`], in the
//! transaction of the change they describe.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::models::AuditEntry;
use crate::db::schema::audit_log;
use crate::journal::ChangeKind;

/// How many changes of `kind` a seat has had at or after `since`, and the oldest of them.
pub fn count_since(
    conn: &mut DbConn,
    seat_id: &str,
    kind: ChangeKind,
    since: i64,
) -> QueryResult<(i64, Option<i64>)> {
    audit_log::table
        .filter(audit_log::seat_id.eq(seat_id))
        .filter(audit_log::action.eq(kind.as_str()))
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

/// Which audit rows to read: every field optional, all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub license: Option<String>,
    /// Exact action, e.g. `seat.retired`.
    pub action: Option<String>,
    /// Exact actor, e.g. `admin:alice`.
    pub actor: Option<String>,
    /// At or after (unix seconds).
    pub from: Option<i64>,
    /// Before (unix seconds).
    pub until: Option<i64>,
    /// Only rows with a smaller id (keyset pagination, newest first).
    pub before_id: Option<i64>,
}

/// Audit rows matching `filter`, newest first, at most `limit`.
pub fn search(conn: &mut DbConn, filter: &AuditFilter, limit: i64) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table
        .select(AuditEntry::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(lic) = &filter.license {
        query = query.filter(audit_log::license_id.eq(lic.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::actor.eq(actor.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::at.lt(until));
    }
    if let Some(before) = filter.before_id {
        query = query.filter(audit_log::id.lt(before));
    }
    query.load(conn)
}

/// A seat's whole history, oldest first (at most `limit` rows).
pub fn for_seat(conn: &mut DbConn, seat_id: &str, limit: i64) -> QueryResult<Vec<AuditEntry>> {
    audit_log::table
        .filter(audit_log::seat_id.eq(seat_id))
        .order(audit_log::id.asc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
}
