//! The usage pool of a `metered` license (DESIGN §10.1): `meter_cap` and `meter_issued` on
//! the license row, `meter_issued <= meter_cap` held by a `CHECK`, and units taken by one
//! conditional `UPDATE` that also takes the journal's change number (so it is the statement
//! that locks the license row, as every change of a license does first).

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::db::DbConn;
use crate::db::schema::licenses;
use crate::journal::{self, Recorded};

/// The SQL of `meter_cap` after a renewal (boxed, as the `ceiling` expression).
pub type CapSql = crate::seats::rules::CeilingSql;

/// `meter_cap` for a renewal to `cap`: the new cap, or what was issued already when that is
/// more. Units issued stay issued (they are consumed), so a lowered pool issues nothing
/// more until a top-up raises the cap past them, and the CHECK keeps holding. The true cap
/// stays readable from the stored terms.
pub fn cap_sql(cap: i64) -> CapSql {
    use diesel::dsl::sql;
    Box::new(
        sql::<BigInt>("CASE WHEN ")
            .bind::<BigInt, _>(cap)
            .sql(" >= meter_issued THEN ")
            .bind::<BigInt, _>(cap)
            .sql(" ELSE meter_issued END"),
    )
}

/// Units taken from the pool, with what the journal needs.
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    pub amount: i64,
    /// `meter_issued` after the take.
    pub issued: i64,
    pub recorded: Recorded,
}

/// Takes `amount` units when they fit under the cap: one statement, checked by the database.
/// `None` when they do not fit (nothing changed).
pub fn take(conn: &mut DbConn, lic: &str, amount: i64) -> QueryResult<Option<Taken>> {
    let row: Option<((i64, i64, i64, i64), i64)> = crate::on_backend!(conn, |c| diesel::update(
        licenses::table
            .filter(licenses::id.eq(lic))
            .filter((licenses::meter_issued + amount).le(licenses::meter_cap)),
    )
    .set((
        licenses::meter_issued.eq(licenses::meter_issued + amount),
        journal::take_number(),
    ))
    .returning((journal::recorded_columns(), licenses::meter_issued))
    .get_result(c)
    .optional())?;
    Ok(row.map(|(recorded, issued)| Taken {
        amount,
        issued,
        recorded: Recorded::from(recorded),
    }))
}

/// `(meter_cap, meter_issued)` of a license as the transaction sees it.
pub fn figures(conn: &mut DbConn, lic: &str) -> QueryResult<(i64, i64)> {
    licenses::table
        .find(lic)
        .select((licenses::meter_cap, licenses::meter_issued))
        .get_result(conn)
}

/// How many units are left: never negative.
pub fn available(cap: i64, issued: i64) -> i64 {
    (cap - issued).max(0)
}
