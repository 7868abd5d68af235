//! After the run: the database must hold exactly the seats the benchmark was granted.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::error::{Context, Result};
use crate::setup::DbTarget;

/// One license's seats: granted (201 answers) against what the database says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LicenseCheck {
    pub license: String,
    /// Seats bought.
    pub seats: u32,
    /// 201 answers counted by the load generator.
    pub granted: u64,
    /// `licenses.in_use`.
    pub in_use: i64,
    /// Seat rows in state `active`.
    pub active_seats: i64,
    /// All three agree and stay within the seats bought.
    pub ok: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

/// Reads `in_use` and the active seats of each `(license, seats, granted)`.
pub fn check(db: &DbTarget, expected: &[(&str, u32, u64)]) -> Result<Vec<LicenseCheck>> {
    let mut conn = db.connect()?;
    expected
        .iter()
        .map(|&(license, seats, granted)| {
            let in_use = diesel::sql_query("SELECT in_use AS v FROM licenses WHERE id = $1")
                .bind::<Text, _>(license)
                .get_result::<Count>(&mut conn)
                .with_context(|| format!("read in_use of {license}"))?
                .v;
            let active_seats = diesel::sql_query(
                "SELECT COUNT(*) AS v FROM seats WHERE license_id = $1 AND state = 'active'",
            )
            .bind::<Text, _>(license)
            .get_result::<Count>(&mut conn)
            .with_context(|| format!("count seats of {license}"))?
            .v;
            let granted_i64 = i64::try_from(granted).unwrap_or(i64::MAX);
            Ok(LicenseCheck {
                license: license.to_owned(),
                seats,
                granted,
                in_use,
                active_seats,
                ok: in_use == granted_i64
                    && active_seats == granted_i64
                    && in_use <= i64::from(seats),
            })
        })
        .collect()
}
