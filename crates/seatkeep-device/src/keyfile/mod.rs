//! Key files (`*.seatkey`, DESIGN §3): envelope, framing, claims and term, read the same way
//! by the Seatkeep server and by devices. The signature is the caller's: the server checks it
//! with the key pinned for `kid`, a device with its pinned provider key ([`crate::verify`]).

pub mod claims;

pub use claims::{
    Channel, Customer, Federation, KeyFileClaims, LicenseModel, Policy, Product, ServerClaim,
};

use crate::armor::{self, ArmorError, Label};
use crate::jws::{self, CompactJws, JwsError};

/// The `typ` header of every key file.
pub const KEY_FILE_TYP: &str = "seatkeep-keyfile+jwt";
/// Leeway on `nbf` and `exp`, in seconds, for clocks that are slightly off.
pub const TERM_LEEWAY_SECS: i64 = 60;

/// Why a key file cannot be read: envelope, framing, `typ` or claims. (Signature, trust and
/// server binding are checked by the caller, with its own errors.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileError {
    /// Over [`armor::MAX_ARMOR_BYTES`].
    TooLarge {
        /// Cap in bytes.
        limit: usize,
    },
    /// Not UTF-8 text.
    NotUtf8,
    /// Armor lines wrong.
    Armor(String),
    /// JWS framing wrong.
    Jws(JwsError),
    /// The `typ` header is not [`KEY_FILE_TYP`].
    Typ(Option<String>),
    /// Claims are not JSON of the right shape (a required claim missing, a wrong type).
    Claims(String),
    /// A claim breaks a rule of [`KeyFileClaims::validate`].
    InvalidClaim {
        /// Claim path, e.g. `policy.return_limit`.
        claim: &'static str,
        /// Rule broken.
        reason: String,
    },
}

impl std::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "key file too large (limit {limit} bytes)"),
            Self::NotUtf8 => f.write_str("key file is not UTF-8 text"),
            Self::Armor(reason) => write!(f, "key file armor: {reason}"),
            Self::Jws(e) => write!(f, "key file: {e}"),
            Self::Typ(found) => write!(f, "key file typ must be '{KEY_FILE_TYP}', found {found:?}"),
            Self::Claims(reason) => write!(f, "key file claims: {reason}"),
            Self::InvalidClaim { claim, reason } => write!(f, "key file claim {claim}: {reason}"),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Jws(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ArmorError> for KeyFileError {
    fn from(e: ArmorError) -> Self {
        match e {
            ArmorError::TooLarge { limit } => Self::TooLarge { limit },
            ArmorError::NotUtf8 => Self::NotUtf8,
            ArmorError::Malformed(reason) => Self::Armor(reason),
        }
    }
}

impl From<JwsError> for KeyFileError {
    fn from(e: JwsError) -> Self {
        Self::Jws(e)
    }
}

/// Takes the compact JWS out of a key file's bytes, armored or bare.
pub fn dearmor(bytes: &[u8]) -> Result<String, KeyFileError> {
    Ok(armor::dearmor(Label::KeyFile, bytes)?)
}

/// Wraps a compact JWS in key file armor, 64 characters a line.
pub fn armor(compact: &str) -> String {
    armor::armor(Label::KeyFile, compact)
}

/// Splits a key file's compact JWS and checks its `typ`; the signature is not checked yet.
pub fn parse(compact: &str) -> Result<CompactJws<'_>, KeyFileError> {
    let parsed = jws::parse_compact(compact)?;
    if parsed.header.typ.as_deref() != Some(KEY_FILE_TYP) {
        return Err(KeyFileError::Typ(parsed.header.typ.clone()));
    }
    Ok(parsed)
}

/// `sha256` of the compact JWS in lowercase hex: a key file's identity, armored or not.
pub fn digest(compact: &str) -> String {
    crate::sha256_hex(compact.as_bytes())
}

/// Why a term does not hold at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermError {
    /// `nbf` lies ahead.
    NotYetValid {
        /// Start of the term, unix seconds.
        nbf: i64,
    },
    /// `exp` has passed.
    Expired {
        /// End of the term, unix seconds.
        exp: i64,
    },
}

impl std::fmt::Display for TermError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotYetValid { nbf } => write!(f, "not valid before {nbf} (unix time)"),
            Self::Expired { exp } => write!(f, "expired at {exp} (unix time)"),
        }
    }
}

impl std::error::Error for TermError {}

/// Checks a term (`nbf`, `exp`, unix seconds; none = open) against `now` with
/// [`TERM_LEEWAY_SECS`] of leeway either side. `exp` itself is already outside the term.
pub fn check_term(nbf: Option<i64>, exp: Option<i64>, now: i64) -> Result<(), TermError> {
    if let Some(nbf) = nbf
        && now + TERM_LEEWAY_SECS < nbf
    {
        return Err(TermError::NotYetValid { nbf });
    }
    if let Some(exp) = exp
        && now - TERM_LEEWAY_SECS >= exp
    {
        return Err(TermError::Expired { exp });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_with_leeway() {
        assert_eq!(check_term(None, None, 0), Ok(()));
        assert_eq!(check_term(Some(1_000), Some(2_000), 1_500), Ok(()));
        assert_eq!(
            check_term(Some(1_000), None, 1_000 - TERM_LEEWAY_SECS),
            Ok(())
        );
        assert_eq!(
            check_term(Some(1_000), None, 1_000 - TERM_LEEWAY_SECS - 1),
            Err(TermError::NotYetValid { nbf: 1_000 })
        );
        assert_eq!(
            check_term(None, Some(2_000), 2_000 + TERM_LEEWAY_SECS - 1),
            Ok(())
        );
        assert_eq!(
            check_term(None, Some(2_000), 2_000 + TERM_LEEWAY_SECS),
            Err(TermError::Expired { exp: 2_000 })
        );
    }

    #[test]
    fn parse_checks_typ() {
        let header = jws::JwsHeader {
            alg: "EdDSA".into(),
            typ: Some("seatkeep-device+jwt".into()),
            kid: None,
        };
        let input = jws::signing_input(&header, b"{}").unwrap();
        let token = jws::assemble(&input, b"sig");
        assert_eq!(
            parse(&token).unwrap_err(),
            KeyFileError::Typ(Some("seatkeep-device+jwt".into()))
        );
        assert!(matches!(
            parse("a.b"),
            Err(KeyFileError::Jws(JwsError::Shape))
        ));
        assert_eq!(dearmor(armor("a.b.c").as_bytes()).unwrap(), "a.b.c");
        assert_eq!(
            dearmor(b"a b").unwrap_err().to_string(),
            "key file armor: a bare key file must be a single compact JWS without white space"
        );
    }
}
