//! Public keys the device side verifies with: the provider's root key (pinned in the product,
//! [`crate::ProviderKey`]) and the server key taken out of a key file. Ed25519 or RSA (≥ 2048 bit), public-key
//! operations only.

use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha2::Sha256;

use crate::jws::{CompactJws, JwsAlgorithm};

/// Shortest RSA modulus accepted for provider and server keys, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a public key cannot be used; the message is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// `sha256(SPKI DER)` in lowercase hex: a key's fingerprint, and for a server key the server id.
pub fn spki_fingerprint(spki_der: &[u8]) -> String {
    crate::sha256_hex(spki_der)
}

/// An Ed25519 or RSA public key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519; verifies `EdDSA`.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA of at least [`MIN_RSA_BITS`]; verifies `RS256` and `PS256`.
    Rsa(rsa::RsaPublicKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl PublicKey {
    /// Parses SubjectPublicKeyInfo DER holding an Ed25519 or RSA (≥ 2048 bit) key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::Ed25519(key));
        }
        let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|_| {
            KeyError("not an Ed25519 or RSA public key (SubjectPublicKeyInfo)".into())
        })?;
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(KeyError(format!(
                "RSA key of {bits} bits is too short (at least {MIN_RSA_BITS})"
            )));
        }
        Ok(Self::Rsa(key))
    }

    /// `Ed25519` or `RSA`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "Ed25519",
            Self::Rsa(_) => "RSA",
        }
    }

    /// The `alg` values this key type verifies, for messages.
    pub fn expected_algorithms(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "EdDSA",
            Self::Rsa(_) => "RS256 or PS256",
        }
    }

    /// The algorithm named by a header's `alg` when this key type can verify it; `None` for
    /// anything else (`none`, `HS256`, an RSA algorithm with an Ed25519 key, ...).
    pub fn algorithm_for(&self, alg: &str) -> Option<JwsAlgorithm> {
        let alg: JwsAlgorithm = alg.parse().ok()?;
        (alg.is_rsa() == matches!(self, Self::Rsa(_))).then_some(alg)
    }

    /// True when `signature` is valid for `message` under `alg` with this key. Ed25519 is
    /// verified strictly (no malleable or small-order forms).
    pub fn verify(&self, alg: JwsAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (Self::Ed25519(key), JwsAlgorithm::EdDSA) => {
                ed25519_dalek::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok())
            }
            (Self::Rsa(key), JwsAlgorithm::RS256) => {
                let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
                rsa::pkcs1v15::Signature::try_from(signature)
                    .is_ok_and(|sig| verifier.verify(message, &sig).is_ok())
            }
            (Self::Rsa(key), JwsAlgorithm::PS256) => {
                let verifier = rsa::pss::VerifyingKey::<Sha256>::new(key.clone());
                rsa::pss::Signature::try_from(signature)
                    .is_ok_and(|sig| verifier.verify(message, &sig).is_ok())
            }
            _ => false,
        }
    }

    /// True when the JWS signature is valid under `alg` (pinned by the caller) with this key.
    pub fn verify_jws(&self, alg: JwsAlgorithm, jws: &CompactJws<'_>) -> bool {
        self.verify(alg, jws.signing_input.as_bytes(), &jws.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_junk_and_short_rsa() {
        assert!(PublicKey::from_spki_der(b"junk").is_err());
        // A 1024-bit RSA SubjectPublicKeyInfo.
        let short = pem::parse(include_str!("../testdata/rsa-1024.pub.pem")).unwrap();
        let err = PublicKey::from_spki_der(short.contents()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RSA key of 1024 bits is too short (at least 2048)"
        );
    }

    #[test]
    fn algorithm_must_fit_the_key_type() {
        let ed =
            PublicKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key());
        assert_eq!(ed.algorithm_for("EdDSA"), Some(JwsAlgorithm::EdDSA));
        for alg in ["RS256", "PS256", "none", "HS256", "ES256", "eddsa"] {
            assert_eq!(ed.algorithm_for(alg), None, "{alg}");
        }
        assert!(!ed.verify(JwsAlgorithm::RS256, b"m", &[0; 64]));
    }
}
