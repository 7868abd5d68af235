//! The federation wire formats of DESIGN §7, one definition for both sides: the events, the
//! batch Seatkeep signs with its server key, the ack the provider signs with its key, and
//! the checks of a compact JWS against a key the caller pinned.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::jws::{self, JwsAlgorithm};
use seatkeep_device::keys::PublicKey;

/// `typ` of a batch.
pub const BATCH_TYP: &str = "seatkeep-federation+jwt";
/// `typ` of an ack.
pub const ACK_TYP: &str = "seatkeep-federation-ack+jwt";
/// Most events in one batch (§7).
pub const MAX_BATCH_EVENTS: usize = 500;
/// Largest batch or ack token accepted (500 events of a few hundred bytes each, base64).
pub const MAX_TOKEN_BYTES: usize = 1 << 20;

/// One event (§7). Unknown fields are ignored so a provider may read newer servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    /// `license.imported`, `seat.activated`, ... (kept as text: a collector stores types it
    /// does not know yet).
    #[serde(rename = "type")]
    pub kind: String,
    pub at: i64,
    pub seat: Option<String>,
    /// `sha256(server_id ":" device_id)` in hex, or the raw id with `user_data`.
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub in_use: i64,
    pub seats: i64,
    pub overage: bool,
    pub key_file_seq: i64,
    pub channel: Option<serde_json::Value>,
    /// `usage.*` events: `amt`, `unit`, `issued`, `units`, `packet` (or `reason`), flattened
    /// into the event.
    #[serde(flatten, default)]
    pub usage: super::events::UsageFacts,
}

/// The claims of a batch: consecutive events of one license.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchClaims {
    /// Server id.
    pub iss: String,
    pub lic: String,
    pub iat: i64,
    pub events: Vec<Event>,
}

/// The claims of an ack: the provider holds events `1..=acked` of `lic` from server `sub`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckClaims {
    /// Provider id.
    pub iss: String,
    /// Server id.
    pub sub: String,
    pub lic: String,
    pub acked: i64,
    pub iat: i64,
}

/// Why a batch or ack token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a compact JWS: {0}")]
    Shape(String),
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("wrong typ {found:?} (expected {expected})")]
    Typ {
        expected: &'static str,
        found: Option<String>,
    },
    #[error("alg {found} is not the pinned {expected}")]
    Alg {
        expected: JwsAlgorithm,
        found: String,
    },
    #[error("kid {found:?} is not {expected}")]
    Kid {
        expected: String,
        found: Option<String>,
    },
    #[error("signature does not verify")]
    Signature,
    #[error("claims: {0}")]
    Claims(String),
}

/// The device field of an event: the hash of §7, so device ids stay on the site.
pub fn device_hash(server_id: &str, device_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(server_id.as_bytes());
    hash.update(b":");
    hash.update(device_id.as_bytes());
    hex::encode(hash.finalize())
}

/// Verifies `token` (typ, pinned alg, kid, signature) with `key` and parses its claims.
/// The key and algorithm come from the caller's own records, never from the token.
pub fn verify<T: serde::de::DeserializeOwned>(
    token: &str,
    typ: &'static str,
    key: &PublicKey,
    alg: JwsAlgorithm,
    kid: &str,
) -> Result<T, WireError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(WireError::TooLarge);
    }
    let parsed = jws::parse_compact(token).map_err(|e| WireError::Shape(e.to_string()))?;
    if parsed.header.typ.as_deref() != Some(typ) {
        return Err(WireError::Typ {
            expected: typ,
            found: parsed.header.typ,
        });
    }
    if parsed.header.alg != alg.as_str() {
        return Err(WireError::Alg {
            expected: alg,
            found: parsed.header.alg,
        });
    }
    if parsed.header.kid.as_deref() != Some(kid) {
        return Err(WireError::Kid {
            expected: kid.to_owned(),
            found: parsed.header.kid,
        });
    }
    if !key.verify_jws(alg, &parsed) {
        return Err(WireError::Signature);
    }
    serde_json::from_slice(&parsed.payload).map_err(|e| WireError::Claims(e.to_string()))
}

/// The unverified header and claims of a token: only to find which key to verify with.
pub fn peek<T: serde::de::DeserializeOwned>(token: &str) -> Result<(jws::JwsHeader, T), WireError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(WireError::TooLarge);
    }
    let parsed = jws::parse_compact(token).map_err(|e| WireError::Shape(e.to_string()))?;
    let claims =
        serde_json::from_slice(&parsed.payload).map_err(|e| WireError::Claims(e.to_string()))?;
    Ok((parsed.header, claims))
}

impl BatchClaims {
    /// Events are consecutive, start at 1 or later, and number at most [`MAX_BATCH_EVENTS`].
    pub fn check_shape(&self) -> Result<(), WireError> {
        if self.events.is_empty() || self.events.len() > MAX_BATCH_EVENTS {
            return Err(WireError::Claims(format!(
                "a batch holds 1 to {MAX_BATCH_EVENTS} events, not {}",
                self.events.len()
            )));
        }
        let first = self.events[0].seq;
        if first < 1 {
            return Err(WireError::Claims("seq starts at 1".into()));
        }
        for (expected, event) in (first..).zip(&self.events) {
            if event.seq != expected {
                return Err(WireError::Claims(format!(
                    "events are not consecutive: seq {} where {expected} was due",
                    event.seq
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_hash_is_sha256_of_server_colon_device() {
        // sha256("s:d")
        assert_eq!(device_hash("s", "d"), hex::encode(Sha256::digest(b"s:d")));
    }
}
