//! Retrying a write that lost a race: an operation reads, decides and writes in one
//! transaction, and when a concurrent change of the same row got there first it says
//! [`TxnError::LostRace`] (everything it wrote is rolled back) and [`settle`] runs it again
//! from the read. The seat operations and the meter's packet requests both go through here.

use super::DbError;

/// Why a write transaction was abandoned.
pub enum TxnError<E> {
    /// A concurrent request changed the same row first; read again and retry.
    LostRace,
    /// A real error, returned as it is.
    Failed(E),
}

impl<E: From<DbError>> From<DbError> for TxnError<E> {
    fn from(e: DbError) -> Self {
        Self::Failed(e.into())
    }
}

impl<E: From<DbError>> From<diesel::result::Error> for TxnError<E> {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(DbError::Query(e).into())
    }
}

/// Runs `attempt` until it does not lose a race, at most `retries` times; `what` names the
/// contended thing for the error when it loses every time.
pub fn settle<T, E: From<DbError>>(
    what: &str,
    retries: usize,
    mut attempt: impl FnMut() -> Result<T, TxnError<E>>,
) -> Result<T, E> {
    for _ in 0..retries {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(TxnError::LostRace) => continue,
            Err(TxnError::Failed(e)) => return Err(e),
        }
    }
    Err(DbError::Unavailable(format!("too much contention on {what}; retry")).into())
}
