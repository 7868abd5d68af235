//! Refused activations, counted per license and hour: a device refused in a loop costs one
//! row per hour, and the group-commit writer adds up the refusals of a batch into one
//! statement per license.

use diesel::prelude::*;

use super::schema::refusal_counts;
use super::{DbConn, DbError};

/// Length of a counting bucket.
pub const BUCKET_SECS: i64 = 3600;

/// The bucket `at` falls in: the start of its hour.
pub fn bucket_of(at: i64) -> i64 {
    at - at.rem_euclid(BUCKET_SECS)
}

/// Refusals of one license in one bucket, to be added.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = refusal_counts)]
pub struct RefusalCount {
    pub license_id: String,
    pub bucket: i64,
    pub refused: i64,
    pub first_at: i64,
    pub last_at: i64,
}

impl RefusalCount {
    /// One refusal of `license_id` at `at`.
    pub fn one(license_id: &str, at: i64) -> Self {
        Self {
            license_id: license_id.to_owned(),
            bucket: bucket_of(at),
            refused: 1,
            first_at: at,
            last_at: at,
        }
    }

    /// Folds another refusal of the same license and bucket into this one.
    pub fn absorb(&mut self, other: &RefusalCount) {
        self.refused += other.refused;
        self.first_at = self.first_at.min(other.first_at);
        self.last_at = self.last_at.max(other.last_at);
    }
}

/// Adds `count` to its bucket's row, creating the row on the first refusal of the hour.
pub fn add(conn: &mut DbConn, count: &RefusalCount) -> Result<(), DbError> {
    // The upsert is written once and compiled per backend (`ON CONFLICT` on both).
    crate::on_backend!(conn, |c| diesel::insert_into(refusal_counts::table)
        .values(count)
        .on_conflict((refusal_counts::license_id, refusal_counts::bucket))
        .do_update()
        .set((
            refusal_counts::refused.eq(refusal_counts::refused + count.refused),
            refusal_counts::last_at.eq(count.last_at),
        ))
        .execute(c))?;
    Ok(())
}

/// Refusals of a license in the buckets from the one holding `since` on. One row per hour,
/// summed here: `SUM(BIGINT)` is NUMERIC on PostgreSQL.
pub fn total_since(conn: &mut DbConn, license_id: &str, since: i64) -> Result<i64, DbError> {
    let counts: Vec<i64> = refusal_counts::table
        .filter(refusal_counts::license_id.eq(license_id))
        .filter(refusal_counts::bucket.ge(bucket_of(since)))
        .select(refusal_counts::refused)
        .load(conn)?;
    Ok(counts.iter().sum())
}

/// Refusals counted so far per license, by license id.
pub fn totals(conn: &mut DbConn) -> Result<Vec<(String, i64)>, DbError> {
    let rows: Vec<(String, i64)> = refusal_counts::table
        .select((refusal_counts::license_id, refusal_counts::refused))
        .order(refusal_counts::license_id)
        .load(conn)?;
    let mut totals: Vec<(String, i64)> = Vec::new();
    for (license, refused) in rows {
        match totals.last_mut() {
            Some((last, total)) if *last == license => *total += refused,
            _ => totals.push((license, refused)),
        }
    }
    Ok(totals)
}

/// A license's refusals per hour bucket from the one holding `since` on, oldest first.
pub fn per_bucket_since(
    conn: &mut DbConn,
    license_id: &str,
    since: i64,
) -> Result<Vec<(i64, i64)>, DbError> {
    Ok(refusal_counts::table
        .filter(refusal_counts::license_id.eq(license_id))
        .filter(refusal_counts::bucket.ge(bucket_of(since)))
        .order(refusal_counts::bucket)
        .select((refusal_counts::bucket, refusal_counts::refused))
        .load(conn)?)
}
