//! Device proofs (DESIGN §5): a compact JWS the device signs with its own key to reissue or
//! return a seat that has a registered `device_jwk`. A device id is a hardware serial and
//! every device holds the same key file, so neither proves who is asking; this does.
//!
//! The server checks, in order: the signature with the key registered for the seat (never
//! one the proof names), `typ`, `alg` = `EdDSA`, `iss` = the seat's device, `aud` = the
//! server id, `seat`, `action`, `user_name` (for a reissue, the new name), `iat` within
//! [`PROOF_MAX_AGE_SECS`] of its clock, and a `jti` it has never seen for that seat.
//!
//! ```
//! use seatkeep_device::DeviceJwk;
//! use seatkeep_device::proof::{self, Expected, ProofAction, ProofClaims};
//!
//! // Made once, kept on the device (32 random bytes from the OS in a product).
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
//! // Sent as `device_jwk` when the device activates.
//! let jwk = DeviceJwk::from_key(&key.verifying_key());
//! // To return the seat: a fresh proof, sent as `proof`.
//! let claims = ProofClaims {
//!     iss: "scanner-0042".into(),
//!     aud: "server-id".into(),
//!     seat: "st_AAAAAAAAAAAAAAAAAAAAAA".into(),
//!     action: ProofAction::Return,
//!     user_name: None,
//!     jti: "kq3v5tXUpVb0cG0QH8Zp2w".into(),
//!     iat: 1_780_000_000,
//! };
//! let token = proof::sign(&key, &claims);
//! // What the server checks, with the key it registered for the seat.
//! let expected = Expected {
//!     device_id: "scanner-0042",
//!     server_id: "server-id",
//!     seat: "st_AAAAAAAAAAAAAAAAAAAAAA",
//!     action: ProofAction::Return,
//!     user_name: None,
//!     now: 1_780_000_030,
//! };
//! assert_eq!(proof::verify(&token, &jwk, &expected), Ok(claims));
//! ```

use serde::{Deserialize, Serialize};

use crate::device_jwk::DeviceJwk;
use crate::jws::{self, DeviceSignedError};

/// `typ` of a device proof.
pub const PROOF_TYP: &str = "seatkeep-device-proof+jwt";
/// How far `iat` may be from the server's clock, either way.
pub const PROOF_MAX_AGE_SECS: i64 = 300;
/// Longest proof accepted.
pub const MAX_PROOF_BYTES: usize = 4096;

/// What a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofAction {
    Reissue,
    Return,
}

/// The claims of a device proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// The device id.
    pub iss: String,
    /// The server id.
    pub aud: String,
    /// The seat to change.
    pub seat: String,
    pub action: ProofAction,
    /// For a reissue: the new user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A value never used before for this seat (16–128 characters of `[A-Za-z0-9_-]`).
    pub jti: String,
    /// Issue time, unix seconds.
    pub iat: i64,
}

/// Why a proof was refused (the server answers 401 `invalid_device_proof` for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Not a compact JWS of the right shape, size, `typ` or `alg`.
    Malformed(String),
    /// The signature does not verify with the seat's key.
    BadSignature,
    /// A claim does not match the request.
    Mismatch(&'static str),
    /// `iat` is too far from the server's clock.
    Stale { iat: i64, now: i64 },
    /// The `jti` was used before for this seat.
    Replayed,
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "the proof is malformed: {why}"),
            Self::BadSignature => f.write_str("the proof is not signed by this seat's device key"),
            Self::Mismatch(claim) => write!(f, "the proof's {claim} does not match the request"),
            Self::Stale { iat, now } => write!(
                f,
                "the proof was issued at {iat}, more than {PROOF_MAX_AGE_SECS} s from the server's time {now}"
            ),
            Self::Replayed => f.write_str("the proof was used before (its jti is not new)"),
        }
    }
}

impl std::error::Error for ProofError {}

/// What the server expects a proof to say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub device_id: &'a str,
    pub server_id: &'a str,
    pub seat: &'a str,
    pub action: ProofAction,
    /// For a reissue: the new user name.
    pub user_name: Option<&'a str>,
    /// The verifier's clock, unix seconds.
    pub now: i64,
}

/// Signs a proof with the device's key (the device side).
pub fn sign(key: &ed25519_dalek::SigningKey, claims: &ProofClaims) -> String {
    jws::sign_ed25519(key, PROOF_TYP, claims)
}

/// Verifies a proof against the seat's registered key and the request (the server side).
/// The `jti` is returned for the caller to record; seeing it twice is the caller's check.
pub fn verify(
    token: &str,
    registered: &DeviceJwk,
    expected: &Expected<'_>,
) -> Result<ProofClaims, ProofError> {
    let payload = jws::verify_ed25519(token, registered, PROOF_TYP, MAX_PROOF_BYTES).map_err(
        |e| match e {
            DeviceSignedError::Malformed(why) => ProofError::Malformed(why),
            DeviceSignedError::BadSignature => ProofError::BadSignature,
        },
    )?;
    let claims: ProofClaims = serde_json::from_slice(&payload)
        .map_err(|e| ProofError::Malformed(format!("claims: {e}")))?;
    let checks = [
        ("iss", claims.iss == expected.device_id),
        ("aud", claims.aud == expected.server_id),
        ("seat", claims.seat == expected.seat),
        ("action", claims.action == expected.action),
        (
            "user_name",
            claims.user_name.as_deref() == expected.user_name,
        ),
    ];
    if let Some((claim, _)) = checks.iter().find(|(_, ok)| !ok) {
        return Err(ProofError::Mismatch(claim));
    }
    if !jws::is_token_id(&claims.jti, 128) {
        return Err(ProofError::Malformed(
            "jti must be 16 to 128 characters of A-Z a-z 0-9 - _".into(),
        ));
    }
    if (claims.iat - expected.now).abs() > PROOF_MAX_AGE_SECS {
        return Err(ProofError::Stale {
            iat: claims.iat,
            now: expected.now,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn claims() -> ProofClaims {
        ProofClaims {
            iss: "dev-1".into(),
            aud: "server".into(),
            seat: "st_x".into(),
            action: ProofAction::Return,
            user_name: None,
            jti: "0123456789abcdef".into(),
            iat: 1_000,
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            device_id: "dev-1",
            server_id: "server",
            seat: "st_x",
            action: ProofAction::Return,
            user_name: None,
            now: 1_100,
        }
    }

    #[test]
    fn a_proof_verifies_with_its_key_only() {
        let token = sign(&key(7), &claims());
        let mine = DeviceJwk::from_key(&key(7).verifying_key());
        let other = DeviceJwk::from_key(&key(8).verifying_key());
        assert_eq!(verify(&token, &mine, &expected()), Ok(claims()));
        assert_eq!(
            verify(&token, &other, &expected()),
            Err(ProofError::BadSignature)
        );
    }

    #[test]
    fn claims_must_match_and_be_fresh() {
        let jwk = DeviceJwk::from_key(&key(7).verifying_key());
        let token = sign(&key(7), &claims());
        let mut reissue = expected();
        reissue.action = ProofAction::Reissue;
        assert_eq!(
            verify(&token, &jwk, &reissue),
            Err(ProofError::Mismatch("action"))
        );
        let mut late = expected();
        late.now = 1_000 + 6 * 60;
        assert!(matches!(
            verify(&token, &jwk, &late),
            Err(ProofError::Stale { .. })
        ));
        let mut short = claims();
        short.jti = "short".into();
        assert!(matches!(
            verify(&sign(&key(7), &short), &jwk, &expected()),
            Err(ProofError::Malformed(_))
        ));
    }
}
