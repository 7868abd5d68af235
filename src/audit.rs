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
