//! Private keys: generate, load from PEM, sign. Everything here runs in aws-lc-rs, a
//! constant-time backend (the `rsa` crate is never used with a private key: RUSTSEC-2023-0071).
//!
//! Used by the server identity (device keys) and by the provider side (key files).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};
use sha2::{Digest, Sha256};

use crate::jws::{self, JwsAlgorithm, JwsHeader};

/// What went wrong with a private key.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The PEM could not be read.
    #[error("not a PEM private key: {0}")]
    Pem(String),
    /// The PEM holds something other than an Ed25519 or RSA PKCS#8 key.
    #[error("unsupported private key: expected an Ed25519 or RSA (2048-4096 bit) PKCS#8 key")]
    Unsupported,
    /// The key's type cannot sign with the requested algorithm.
    #[error("an {key} key cannot sign {alg}")]
    AlgorithmMismatch {
        key: &'static str,
        alg: JwsAlgorithm,
    },
    /// Key generation or signing failed inside the crypto library.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// Claims could not be serialized.
    #[error("could not serialize claims: {0}")]
    Json(#[from] serde_json::Error),
}

/// Key types `init --algorithm` and `provider keygen --algorithm` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// Ed25519 (default): small, fast, constant time.
    #[default]
    Ed25519,
    /// RSA 2048 bit, for verifiers that only know RSA.
    Rsa2048,
    /// RSA 3072 bit.
    Rsa3072,
}

impl KeyType {
    /// The JWS algorithm a key of this type signs with by default.
    pub fn default_algorithm(self) -> JwsAlgorithm {
        match self {
            Self::Ed25519 => JwsAlgorithm::EdDSA,
            Self::Rsa2048 | Self::Rsa3072 => JwsAlgorithm::RS256,
        }
    }

    /// Generates a new private key and returns it as a PKCS#8 PEM document.
    pub fn generate_pem(self) -> Result<String, SigningError> {
        let der = match self {
            Self::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
                .map_err(|_| SigningError::Crypto("Ed25519 key generation"))?
                .as_ref()
                .to_vec(),
            Self::Rsa2048 | Self::Rsa3072 => {
                let size = if self == Self::Rsa2048 {
                    KeySize::Rsa2048
                } else {
                    KeySize::Rsa3072
                };
                let pair = RsaKeyPair::generate(size)
                    .map_err(|_| SigningError::Crypto("RSA key generation"))?;
                let der: Pkcs8V1Der<'_> = pair
                    .as_der()
                    .map_err(|_| SigningError::Crypto("RSA key encoding"))?;
                der.as_ref().to_vec()
            }
        };
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
    }
}

enum KeyPair {
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A parsed private key, ready to sign JWS with one pinned algorithm.
pub struct SigningKey {
    pair: KeyPair,
    algorithm: JwsAlgorithm,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 PEM private key (Ed25519 or RSA). `algorithm` picks RS256 or PS256
    /// for RSA keys; `None` takes the key type's default.
    pub fn from_pem(
        pem_text: &[u8],
        algorithm: Option<JwsAlgorithm>,
    ) -> Result<Self, SigningError> {
        let doc = pem::parse(pem_text).map_err(|e| SigningError::Pem(e.to_string()))?;
        if doc.tag() != "PRIVATE KEY" {
            return Err(SigningError::Pem(format!(
                "expected a 'PRIVATE KEY' (PKCS#8) block, found '{}'",
                doc.tag()
            )));
        }
        let der = doc.contents();
        let (pair, key, default_alg) =
            if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                let spki = spki_of(pair.public_key())?;
                (
                    (KeyPair::Ed25519(pair), spki),
                    "Ed25519",
                    JwsAlgorithm::EdDSA,
                )
            } else if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                let spki = spki_of(pair.public_key())?;
                ((KeyPair::Rsa(pair), spki), "RSA", JwsAlgorithm::RS256)
            } else {
                return Err(SigningError::Unsupported);
            };
        let algorithm = algorithm.unwrap_or(default_alg);
        if algorithm.is_rsa() != default_alg.is_rsa() {
            return Err(SigningError::AlgorithmMismatch {
                key,
                alg: algorithm,
            });
        }
        let (pair, spki_der) = pair;
        Ok(Self {
            pair,
            algorithm,
            spki_der,
        })
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The public key as a `PUBLIC KEY` PEM document.
    pub fn public_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der.clone()))
    }

    /// `sha256(SPKI DER)` in lowercase hex: the server id for a server key.
    pub fn fingerprint(&self) -> String {
        spki_fingerprint(&self.spki_der)
    }

    /// Signs raw bytes with the pinned algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match &self.pair {
            KeyPair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            KeyPair::Rsa(pair) => {
                let padding = if self.algorithm == JwsAlgorithm::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| SigningError::Crypto("RSA signing"))?;
                Ok(signature)
            }
        }
    }

    /// Signs `claims` as a compact JWS with the given `typ` and `kid`.
    pub fn sign_jws<T: serde::Serialize>(
        &self,
        typ: &str,
        kid: &str,
        claims: &T,
    ) -> Result<String, SigningError> {
        let header = JwsHeader {
            alg: self.algorithm.as_str().to_owned(),
            typ: Some(typ.to_owned()),
            kid: Some(kid.to_owned()),
        };
        let payload = serde_json::to_vec(claims)?;
        let input = jws::signing_input(&header, &payload)?;
        let signature = self.sign(input.as_bytes())?;
        Ok(jws::assemble(&input, &signature))
    }
}

/// The SubjectPublicKeyInfo DER of a public key.
fn spki_of<K>(public_key: &K) -> Result<Vec<u8>, SigningError>
where
    K: AsDer<PublicKeyX509Der<'static>>,
{
    public_key
        .as_der()
        .map(|der| der.as_ref().to_vec())
        .map_err(|_| SigningError::Crypto("public key encoding"))
}

/// `sha256(SPKI DER)` in lowercase hex.
pub fn spki_fingerprint(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_sign() {
        for kind in [KeyType::Ed25519, KeyType::Rsa2048] {
            let pem = kind.generate_pem().unwrap();
            let key = SigningKey::from_pem(pem.as_bytes(), None).unwrap();
            assert_eq!(key.algorithm(), kind.default_algorithm());
            assert_eq!(key.fingerprint().len(), 64);
            let token = key
                .sign_jws("t", "k", &serde_json::json!({"a": 1}))
                .unwrap();
            assert_eq!(token.split('.').count(), 3);
        }
    }

    #[test]
    fn algorithm_must_fit_key() {
        let pem = KeyType::Ed25519.generate_pem().unwrap();
        assert!(matches!(
            SigningKey::from_pem(pem.as_bytes(), Some(JwsAlgorithm::RS256)),
            Err(SigningError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            SigningKey::from_pem(b"nonsense", None),
            Err(SigningError::Pem(_))
        ));
    }
}
