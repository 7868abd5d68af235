//! Verifying a provider's ack (DESIGN §7) and marking events delivered: the ack must be
//! signed by a provider key this server trusts for the license's issuer, with the pinned
//! algorithm, name this server in `sub` and the license in `lic`, and acknowledge no more
//! than was ever recorded. Anything else changes nothing.

use diesel::prelude::*;

use super::wire::{self, ACK_TYP, AckClaims};
use super::{FederationError, state};
use crate::app::App;
use crate::db::schema::licenses;
use seatkeep_device::keys::PublicKey;

/// What a verified ack did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub lic: String,
    pub acked: i64,
    /// False for an ack no newer than what was already acknowledged.
    pub advanced: bool,
}

/// Verifies `token` as an ack for this server (for `expected_lic` when given) and records
/// it.
pub fn apply(
    app: &App,
    token: &str,
    expected_lic: Option<&str>,
) -> Result<Applied, FederationError> {
    let claims = verify(app, token, expected_lic)?;
    let advanced = state::mark_acked(&app.db, &claims.lic, claims.acked, app.clock.now())?;
    Ok(Applied {
        lic: claims.lic,
        acked: claims.acked,
        advanced,
    })
}

/// The claims of an ack that verifies for this server.
pub fn verify(
    app: &App,
    token: &str,
    expected_lic: Option<&str>,
) -> Result<AckClaims, FederationError> {
    let bad = |why: String| FederationError::Ack(why);
    let (header, unverified) =
        wire::peek::<AckClaims>(token).map_err(|e| bad(format!("not an ack: {e}")))?;
    let lic = unverified.lic;
    if expected_lic.is_some_and(|expected| expected != lic) {
        return Err(bad(format!("the ack is for license '{lic}', not this one")));
    }
    let mut conn = app.db.conn()?;
    let found: Option<(String, i64)> = licenses::table
        .filter(licenses::id.eq(&lic))
        .select((licenses::issuer, licenses::change_seq))
        .get_result(&mut conn)
        .optional()?;
    let (issuer, recorded) = found.ok_or_else(|| bad(format!("unknown license '{lic}'")))?;
    let kid = header
        .kid
        .ok_or_else(|| bad("the ack names no kid".into()))?;
    let trusted = app
        .trusted
        .get(&kid)
        .filter(|k| k.provider == issuer)
        .ok_or_else(|| {
            bad(format!(
                "kid '{kid}' is not a trusted key of provider '{issuer}'"
            ))
        })?;
    let key = PublicKey::from_spki_der(&trusted.spki_der).map_err(|e| bad(e.to_string()))?;
    let claims: AckClaims = wire::verify(token, ACK_TYP, &key, trusted.algorithm, &kid)
        .map_err(|e| bad(e.to_string()))?;
    if claims.iss != issuer {
        return Err(bad(format!(
            "iss '{}' is not the issuer '{issuer}'",
            claims.iss
        )));
    }
    if claims.sub != app.identity.id() {
        return Err(bad(format!(
            "the ack is for server {}, not this one",
            claims.sub
        )));
    }
    if !(0..=recorded).contains(&claims.acked) {
        return Err(bad(format!(
            "acked {} is outside 0..={recorded}, the events recorded",
            claims.acked
        )));
    }
    Ok(claims)
}
