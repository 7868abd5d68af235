//! Key files (`*.seatkey`, DESIGN §3) on the server. The format (armor, framing, claims and
//! their rules, term) is the device crate's [`seatkeep_device::keyfile`], so the server and
//! devices read a file the same way. Here:
//!
//! * [`claims`]: the claims (from the device crate);
//! * [`trust`]: the provider keys this server trusts;
//! * this module: verification (signature pinned by `kid`, claims, server binding, term) and
//!   issuing (the provider's side).

pub mod claims;
mod codes;
pub mod enrol;
pub mod trust;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use seatkeep_device::keyfile::{self as format, TermError};

use crate::jws::{self, JwsError};
use crate::signing::{SigningError, SigningKey};

pub use claims::{KeyFileClaims, LicenseModel};
pub use seatkeep_device::keyfile::{KEY_FILE_TYP, TERM_LEEWAY_SECS, armor, dearmor, digest};
pub use trust::{TrustedKey, TrustedKeyConfig, TrustedKeys};

/// Why a key file is refused. The message is safe to show to whoever presented the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Over the size cap.
    #[error("key file too large (limit {limit} bytes)")]
    TooLarge {
        /// Cap in bytes.
        limit: usize,
    },
    /// Not UTF-8 text.
    #[error("key file is not UTF-8 text")]
    NotUtf8,
    /// Armor lines wrong.
    #[error("key file armor: {0}")]
    Armor(String),
    /// JWS framing wrong.
    #[error("key file: {0}")]
    Jws(#[from] JwsError),
    /// Wrong `typ`.
    #[error("key file typ must be '{KEY_FILE_TYP}', found {0:?}")]
    Typ(Option<String>),
    /// No `kid` in the header.
    #[error("key file header has no kid")]
    MissingKid,
    /// `kid` not in `provider.trusted_keys`.
    #[error("key file signed with unknown key '{0}' (not in provider.trusted_keys)")]
    UnknownKid(String),
    /// `alg` differs from the algorithm pinned for the `kid`.
    #[error("key file alg '{alg}' is not allowed for key '{kid}' (pinned: {pinned})")]
    AlgorithmNotAllowed {
        /// Key id.
        kid: String,
        /// Header alg.
        alg: String,
        /// Pinned alg.
        pinned: jws::JwsAlgorithm,
    },
    /// The signature does not verify.
    #[error("key file signature is invalid")]
    BadSignature,
    /// Claims are not valid JSON of the right shape.
    #[error("key file claims: {0}")]
    Claims(String),
    /// A claim breaks a rule.
    #[error("key file claim {claim}: {reason}")]
    InvalidClaim {
        /// Claim path.
        claim: &'static str,
        /// Rule broken.
        reason: String,
    },
    /// `iss` is not the trusted key's provider.
    #[error("key file issuer '{iss}' does not match the provider '{expected}' of its key")]
    IssuerMismatch {
        /// Claimed issuer.
        iss: String,
        /// Provider of the key.
        expected: String,
    },
    /// The file is for another Seatkeep server.
    #[error("key file is bound to another server ({found}), not this one ({ours})")]
    WrongServer {
        /// `server.id` in the file.
        found: String,
        /// This server's id.
        ours: String,
    },
    /// `server.key` does not match `server.id`/this server's key.
    #[error("key file server.key does not match this server's public key")]
    ServerKeyMismatch,
    /// Term over.
    #[error("license expired at {exp} (unix time)")]
    Expired {
        /// `exp`.
        exp: i64,
    },
    /// Term not started.
    #[error("license not valid before {nbf} (unix time)")]
    NotYetValid {
        /// `nbf`.
        nbf: i64,
    },
    /// Signing failed (provider side).
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl From<format::KeyFileError> for KeyFileError {
    fn from(e: format::KeyFileError) -> Self {
        use format::KeyFileError as F;
        match e {
            F::TooLarge { limit } => Self::TooLarge { limit },
            F::NotUtf8 => Self::NotUtf8,
            F::Armor(reason) => Self::Armor(reason),
            F::Jws(e) => Self::Jws(e),
            F::Typ(found) => Self::Typ(found),
            F::Claims(reason) => Self::Claims(reason),
            F::InvalidClaim { claim, reason } => Self::InvalidClaim { claim, reason },
        }
    }
}

impl From<TermError> for KeyFileError {
    fn from(e: TermError) -> Self {
        match e {
            TermError::NotYetValid { nbf } => Self::NotYetValid { nbf },
            TermError::Expired { exp } => Self::Expired { exp },
        }
    }
}

/// Which Seatkeep server a key file must be bound to.
#[derive(Debug, Clone)]
pub struct ServerBinding {
    /// Server id: `sha256(SPKI DER)`, lowercase hex.
    pub id: String,
    /// SubjectPublicKeyInfo DER of the server key.
    pub spki_der: Vec<u8>,
}

/// A key file whose signature, claims and server binding were checked.
#[derive(Debug, Clone)]
pub struct VerifiedKeyFile {
    /// The compact JWS (armor removed).
    pub compact: String,
    /// `sha256(compact)` in lowercase hex: the file's identity.
    pub digest: String,
    /// Header `kid`.
    pub kid: String,
    pub claims: KeyFileClaims,
}

/// Verifies a key file: armor, JWS, `typ`, the `alg` pinned for `kid`, signature, claims,
/// issuer and server binding. The term (`nbf`/`exp`) is checked separately by
/// [`check_term`], since a device may present an older version of a renewed license.
pub fn verify(
    bytes: &[u8],
    trusted: &TrustedKeys,
    server: &ServerBinding,
) -> Result<VerifiedKeyFile, KeyFileError> {
    let compact = dearmor(bytes)?;
    let parsed = format::parse(&compact)?;
    let kid = parsed.header.kid.clone().ok_or(KeyFileError::MissingKid)?;
    let key = trusted
        .get(&kid)
        .ok_or_else(|| KeyFileError::UnknownKid(kid.clone()))?;
    // The pinned algorithm decides; the header may only agree with it.
    if parsed.header.alg != key.algorithm.as_str() {
        return Err(KeyFileError::AlgorithmNotAllowed {
            kid,
            alg: parsed.header.alg.clone(),
            pinned: key.algorithm,
        });
    }
    let valid = jsonwebtoken::crypto::verify(
        parsed.signature_b64,
        parsed.signing_input.as_bytes(),
        &key.decoding_key,
        to_jsonwebtoken(key.algorithm),
    )
    .map_err(|_| KeyFileError::BadSignature)?;
    if !valid {
        return Err(KeyFileError::BadSignature);
    }
    let claims = KeyFileClaims::from_json(&parsed.payload)?;
    if claims.iss != key.provider {
        return Err(KeyFileError::IssuerMismatch {
            iss: claims.iss,
            expected: key.provider.clone(),
        });
    }
    check_binding(&claims, server)?;
    Ok(VerifiedKeyFile {
        digest: digest(&compact),
        compact,
        kid,
        claims,
    })
}

fn check_binding(claims: &KeyFileClaims, server: &ServerBinding) -> Result<(), KeyFileError> {
    if claims.server.id != server.id {
        return Err(KeyFileError::WrongServer {
            found: claims.server.id.clone(),
            ours: server.id.clone(),
        });
    }
    let key = STANDARD
        .decode(claims.server.key.as_bytes())
        .map_err(|_| KeyFileError::ServerKeyMismatch)?;
    if key != server.spki_der {
        return Err(KeyFileError::ServerKeyMismatch);
    }
    Ok(())
}

/// Checks a term (`nbf`, `exp`) against `now` with [`TERM_LEEWAY_SECS`] of leeway
/// ([`seatkeep_device::keyfile::check_term`], with this module's error).
pub fn check_term(nbf: Option<i64>, exp: Option<i64>, now: i64) -> Result<(), KeyFileError> {
    Ok(format::check_term(nbf, exp, now)?)
}

fn to_jsonwebtoken(alg: jws::JwsAlgorithm) -> jsonwebtoken::Algorithm {
    match alg {
        jws::JwsAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        jws::JwsAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        jws::JwsAlgorithm::PS256 => jsonwebtoken::Algorithm::PS256,
    }
}

/// The server binding claim for a server public key.
pub fn server_claim(spki_der: &[u8]) -> claims::ServerClaim {
    claims::ServerClaim::for_key(spki_der)
}

/// Provider side: validates the claims and signs them into an armored key file.
pub fn issue(claims: &KeyFileClaims, key: &SigningKey, kid: &str) -> Result<String, KeyFileError> {
    claims.validate()?;
    let compact = key.sign_jws(KEY_FILE_TYP, kid, claims)?;
    Ok(armor(&compact))
}
