//! Per-license delivery state: how far the provider acknowledged, the push lease that lets
//! one instance push a license at a time, and the backoff after failures.

use diesel::prelude::*;

use crate::db::schema::federation_state;
use crate::db::{Database, DbConn, DbError};

/// A state row.
#[derive(Debug, Clone, Default, Queryable, Selectable)]
#[diesel(table_name = federation_state)]
pub struct DeliveryState {
    pub license_id: String,
    pub acked_seq: i64,
    pub acked_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Lock order key of a state write (after any license row: `~` sorts after ids).
fn order(lic: &str) -> String {
    format!("~federation:{lic}")
}

/// The license's state; a license never pushed or acked has the default (nothing acked).
pub fn read(conn: &mut DbConn, lic: &str) -> Result<DeliveryState, DbError> {
    let found = federation_state::table
        .filter(federation_state::license_id.eq(lic))
        .select(DeliveryState::as_select())
        .get_result(conn)
        .optional()?;
    Ok(found.unwrap_or_else(|| DeliveryState {
        license_id: lic.to_owned(),
        ..DeliveryState::default()
    }))
}

fn ensure_row(conn: &mut DbConn, lic: &str) -> Result<(), DbError> {
    crate::on_backend!(conn, |c| diesel::insert_into(federation_state::table)
        .values(federation_state::license_id.eq(lic))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// Takes the push lease of `lic` for `owner` until `until`, when it is free (or already
/// `owner`'s) and the backoff allows a push at `now` (`ignore_backoff`: a manual flush).
/// True when `owner` holds it now.
pub fn take_lease(
    db: &Database,
    lic: &str,
    owner: &str,
    now: i64,
    until: i64,
    ignore_backoff: bool,
) -> Result<bool, DbError> {
    let (lic, owner) = (lic.to_owned(), owner.to_owned());
    db.write(&order(&lic), move |conn| {
        ensure_row(conn, &lic)?;
        let due = if ignore_backoff { i64::MAX } else { now };
        let taken = diesel::update(
            federation_state::table
                .filter(federation_state::license_id.eq(&lic))
                .filter(
                    federation_state::lease_owner
                        .is_null()
                        .or(federation_state::lease_until.lt(now))
                        .or(federation_state::lease_owner.eq(&owner)),
                )
                .filter(federation_state::next_attempt_at.le(due)),
        )
        .set((
            federation_state::lease_owner.eq(&owner),
            federation_state::lease_until.eq(until),
        ))
        .execute(conn)?;
        Ok::<_, DbError>(taken == 1)
    })
}

/// Gives the lease back.
pub fn release_lease(db: &Database, lic: &str, owner: &str) -> Result<(), DbError> {
    let (lic, owner) = (lic.to_owned(), owner.to_owned());
    db.write(&order(&lic), move |conn| {
        diesel::update(
            federation_state::table
                .filter(federation_state::license_id.eq(&lic))
                .filter(federation_state::lease_owner.eq(&owner)),
        )
        .set((
            federation_state::lease_owner.eq(None::<String>),
            federation_state::lease_until.eq(0),
        ))
        .execute(conn)?;
        Ok::<_, DbError>(())
    })
}

/// Records a verified ack: events up to `acked` are delivered. Never moves backwards, so
/// an old ack applied again changes nothing. True when it advanced.
pub fn mark_acked(db: &Database, lic: &str, acked: i64, now: i64) -> Result<bool, DbError> {
    let lic = lic.to_owned();
    db.write(&order(&lic), move |conn| {
        ensure_row(conn, &lic)?;
        // A verified answer ends the backoff, whether or not it moved the mark.
        diesel::update(federation_state::table.filter(federation_state::license_id.eq(&lic)))
            .set((
                federation_state::attempts.eq(0),
                federation_state::next_attempt_at.eq(0),
                federation_state::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        let advanced = diesel::update(
            federation_state::table
                .filter(federation_state::license_id.eq(&lic))
                .filter(federation_state::acked_seq.lt(acked)),
        )
        .set((
            federation_state::acked_seq.eq(acked),
            federation_state::acked_at.eq(Some(now)),
        ))
        .execute(conn)?;
        Ok::<_, DbError>(advanced == 1)
    })
}

/// Records a failed push: the error and the next attempt, `backoff` seconds from `now`.
pub fn record_failure(
    db: &Database,
    lic: &str,
    error: &str,
    now: i64,
    backoff: impl FnOnce(i64) -> i64 + Send + 'static,
) -> Result<(), DbError> {
    let (lic, error) = (lic.to_owned(), error.to_owned());
    db.write(&order(&lic), move |conn| {
        ensure_row(conn, &lic)?;
        let attempts: i64 =
            diesel::update(federation_state::table.filter(federation_state::license_id.eq(&lic)))
                .set(federation_state::attempts.eq(federation_state::attempts + 1))
                .returning(federation_state::attempts)
                .get_result(conn)?;
        diesel::update(federation_state::table.filter(federation_state::license_id.eq(&lic)))
            .set((
                federation_state::next_attempt_at.eq(now.saturating_add(backoff(attempts))),
                federation_state::last_error.eq(Some(error)),
            ))
            .execute(conn)?;
        Ok::<_, DbError>(())
    })
}
