//! The device's own key pair (DESIGN §5 "Who may change a seat", §10.2): an Ed25519 key the
//! device makes at activation and keeps. The public half goes to the server as a JWK
//! (`device_jwk`); the server then accepts reissue and return of that seat only with a
//! [`crate::proof`] signed by it. Its RFC 7638 thumbprint is the key's short name (`jkt`).
//!
//! This is the one private key the crate handles: the device's own, with `ed25519-dalek`,
//! which signs in constant time. Nothing here touches an RSA private key.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::jws::b64url;

/// An Ed25519 public key as a JSON Web Key (RFC 8037): `{"kty":"OKP","crv":"Ed25519","x":…}`.
/// Other members (`kid`, `use`, …) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceJwk {
    /// Must be `OKP`.
    pub kty: String,
    /// Must be `Ed25519`.
    pub crv: String,
    /// base64url (no padding) of the 32-byte public key.
    pub x: String,
}

/// Why a `device_jwk` is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkError(pub &'static str);

impl std::fmt::Display for JwkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for JwkError {}

impl DeviceJwk {
    /// The JWK of an Ed25519 public key.
    pub fn from_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: b64url(key.as_bytes()),
        }
    }

    /// The public key, checked: `OKP`/`Ed25519`, 32 bytes, a valid curve point that is not
    /// of small order (such a key would accept forged signatures).
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, JwkError> {
        use base64::Engine as _;
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(JwkError(
                "must be an Ed25519 key: kty \"OKP\", crv \"Ed25519\"",
            ));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| JwkError("x must be unpadded base64url"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| JwkError("x must hold 32 bytes"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| JwkError("x is not an Ed25519 public key"))?;
        if key.is_weak() {
            return Err(JwkError("x is a weak (small-order) key"));
        }
        Ok(key)
    }

    /// The RFC 7638 thumbprint: base64url of SHA-256 over `{"crv","kty","x"}` in that order,
    /// without spaces.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
            self.crv, self.kty, self.x
        );
        b64url(&sha2::Sha256::digest(canonical.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8037_thumbprint() {
        // RFC 8037 appendix A.3.
        let jwk = DeviceJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert!(jwk.verifying_key().is_ok());
    }

    #[test]
    fn refuses_other_keys() {
        let mut jwk = DeviceJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        jwk.crv = "X25519".into();
        assert!(jwk.verifying_key().is_err());
        jwk.crv = "Ed25519".into();
        jwk.x = "AAAA".into();
        assert!(jwk.verifying_key().is_err());
        // The identity point: small order.
        jwk.x = b64url(&{
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        });
        assert!(jwk.verifying_key().is_err());
    }
}
