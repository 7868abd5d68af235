//! Building the signed batches of a license: consecutive events from the first one the
//! provider has not acknowledged, signed with the server key (no transaction is open).

use super::events::{self, Disclosure};
use super::wire::{BATCH_TYP, BatchClaims};
use super::{FederationError, state};
use crate::app::App;

/// One signed batch.
#[derive(Debug, Clone)]
pub struct SignedBatch {
    pub lic: String,
    pub first: i64,
    pub last: i64,
    pub token: String,
}

/// Up to `max_batches` batches of `lic` starting after the acknowledged events.
pub fn pending(
    app: &App,
    lic: &str,
    max_batches: usize,
) -> Result<Vec<SignedBatch>, FederationError> {
    let server_id = app.identity.id().to_owned();
    let mut conn = app.db.conn()?;
    let disclosure = Disclosure::of(&mut conn, lic, &server_id)?
        .ok_or_else(|| FederationError::UnknownLicense(lic.to_owned()))?;
    let mut after = state::read(&mut conn, lic)?.acked_seq;
    let size = app.config.federation.batch_size;
    let mut batches = Vec::new();
    while batches.len() < max_batches {
        let rows = events::after(&mut conn, lic, after, size)?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        let claims = BatchClaims {
            iss: server_id.clone(),
            lic: lic.to_owned(),
            iat: app.clock.now(),
            events: rows.into_iter().map(|r| disclosure.event(r)).collect(),
        };
        let token = app
            .identity
            .key()
            .sign_jws(BATCH_TYP, &server_id, &claims)?;
        batches.push(SignedBatch {
            lic: lic.to_owned(),
            first: after + 1,
            last,
            token,
        });
        after = last;
    }
    Ok(batches)
}
