//! The provider keys this server trusts, pinned by `kid` with one algorithm each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

use crate::jws::JwsAlgorithm;

/// One `[[provider.trusted_keys]]` block of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKeyConfig {
    /// Key id the provider puts in the JWS header.
    pub kid: String,
    /// Provider id; must equal the key file's `iss`.
    pub provider: String,
    /// The only algorithm accepted with this key.
    pub algorithm: JwsAlgorithm,
    /// PEM (`PUBLIC KEY`, SubjectPublicKeyInfo) of the provider's public key.
    pub public_key_file: PathBuf,
}

/// Why a trusted key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The PEM file could not be read.
    #[error("provider.trusted_keys: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The PEM is not a public key of the pinned algorithm's family.
    #[error("provider.trusted_keys: {path} is not a {alg} public key (PEM 'PUBLIC KEY'): {reason}")]
    Key {
        path: PathBuf,
        /// Pinned algorithm.
        alg: JwsAlgorithm,
        reason: String,
    },
    /// Two blocks share a `kid`.
    #[error("provider.trusted_keys: kid '{0}' is listed twice")]
    DuplicateKid(String),
}

/// A provider public key with its pinned algorithm.
#[derive(Clone)]
pub struct TrustedKey {
    /// Key id.
    pub kid: String,
    /// Provider id.
    pub provider: String,
    /// Pinned algorithm.
    pub algorithm: JwsAlgorithm,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    pub(crate) decoding_key: DecodingKey,
}

/// All trusted provider keys, by `kid`.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    by_kid: HashMap<String, TrustedKey>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kid.keys()).finish()
    }
}

impl TrustedKeys {
    /// Loads every configured key; `base` resolves relative paths.
    pub fn load(configs: &[TrustedKeyConfig], base: &Path) -> Result<Self, TrustError> {
        let mut by_kid = HashMap::new();
        for config in configs {
            let path = base.join(&config.public_key_file);
            let pem_bytes = std::fs::read(&path).map_err(|source| TrustError::Read {
                path: path.clone(),
                source,
            })?;
            let key = Self::parse(config, &pem_bytes).map_err(|reason| TrustError::Key {
                path: path.clone(),
                alg: config.algorithm,
                reason,
            })?;
            if by_kid.insert(config.kid.clone(), key).is_some() {
                return Err(TrustError::DuplicateKid(config.kid.clone()));
            }
        }
        Ok(Self { by_kid })
    }

    fn parse(config: &TrustedKeyConfig, pem_bytes: &[u8]) -> Result<TrustedKey, String> {
        let doc = pem::parse(pem_bytes).map_err(|e| e.to_string())?;
        if doc.tag() != "PUBLIC KEY" {
            return Err(format!("found a '{}' block", doc.tag()));
        }
        let decoding_key = if config.algorithm.is_rsa() {
            DecodingKey::from_rsa_pem(pem_bytes)
        } else {
            DecodingKey::from_ed_pem(pem_bytes)
        }
        .map_err(|e| e.to_string())?;
        Ok(TrustedKey {
            kid: config.kid.clone(),
            provider: config.provider.clone(),
            algorithm: config.algorithm,
            spki_der: doc.contents().to_vec(),
            decoding_key,
        })
    }

    /// Checks that `pem_bytes` loads as `config`'s key, as [`TrustedKeys::load`] would.
    pub fn check(config: &TrustedKeyConfig, pem_bytes: &[u8]) -> Result<(), String> {
        Self::parse(config, pem_bytes).map(drop)
    }

    /// The key for `kid`, if trusted.
    pub fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.by_kid.get(kid)
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    /// True when no provider key is trusted (nothing can be imported).
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}
