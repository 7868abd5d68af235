//! Offline files (DESIGN §11): what an air-gapped device writes for an admin to carry to
//! Seatkeep, and what it reads back.
//!
//! A request file holds one compact JWS per line: packet requests exactly as §10.3, and
//! activation requests self-signed by the device key in their `jwk` header. The response
//! file holds the current key file, device keys, packets, a time token, and a signed error
//! for each line that failed. Both sides read the files with these functions.

use serde::{Deserialize, Serialize};

use crate::armor::{self, ArmorError, Label};
use crate::device_jwk::DeviceJwk;
use crate::jws::{self, DeviceSignedError, JwsAlgorithm};
use crate::meter::wire::PACKET_REQUEST_TYP;

/// `typ` of an activation request line.
pub const ACTIVATION_REQUEST_TYP: &str = "seatkeep-activation-request+jwt";
/// `typ` of an error line in a response.
pub const OFFLINE_ERROR_TYP: &str = "seatkeep-offline-error+jwt";
/// Largest request file.
pub const MAX_REQUEST_FILE_BYTES: usize = 16 * 1024;
/// Most lines in a request file.
pub const MAX_REQUEST_LINES: usize = 100;

/// The key file an activation request proves the device holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFileRef {
    pub lic: String,
    pub seq: i64,
    /// Lowercase hex SHA-256 of the key file's compact JWS (armor and line breaks removed).
    pub sha256: String,
}

impl KeyFileRef {
    /// The reference to a key file, from its text (armored or bare).
    pub fn of(key_file_text: &str, lic: &str, seq: i64) -> Result<Self, ArmorError> {
        let compact = armor::dearmor(Label::KeyFile, key_file_text.as_bytes())?;
        Ok(Self {
            lic: lic.to_owned(),
            seq,
            sha256: crate::sha256_hex(compact.as_bytes()),
        })
    }
}

/// The claims of an activation request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRequestClaims {
    /// The device id.
    pub iss: String,
    /// The server id.
    pub aud: String,
    /// Request id (16–64 of `[A-Za-z0-9_-]`).
    pub jti: String,
    pub iat: i64,
    /// 128 random bits, base64url.
    pub nonce: String,
    /// The user name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<serde_json::Value>,
    pub key_file: KeyFileRef,
}

/// The header of a self-signed line: the signing key travels in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SelfSignedHeader {
    alg: String,
    typ: String,
    jwk: DeviceJwk,
}

/// Signs an activation request with the device key, which goes in the `jwk` header (for a
/// metered license it is the device's `device_jwk`).
pub fn sign_activation_request(
    key: &ed25519_dalek::SigningKey,
    claims: &ActivationRequestClaims,
) -> String {
    use ed25519_dalek::Signer as _;
    let header = SelfSignedHeader {
        alg: JwsAlgorithm::EdDSA.as_str().to_owned(),
        typ: ACTIVATION_REQUEST_TYP.to_owned(),
        jwk: DeviceJwk::from_key(&key.verifying_key()),
    };
    // Serializing these plain structs cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let input = format!("{}.{}", jws::b64url(&header), jws::b64url(&payload));
    jws::assemble(&input, &key.sign(input.as_bytes()).to_bytes())
}

/// Verifies an activation request with the key in its own header (which proves only that
/// the sender holds that key; the key file reference proves it holds the key file).
pub fn verify_activation_request(
    token: &str,
) -> Result<(ActivationRequestClaims, DeviceJwk), LineError> {
    let header_part = token.split('.').next().unwrap_or_default();
    let header: SelfSignedHeader = base64_json(header_part)
        .ok_or_else(|| LineError::Invalid("the header must carry alg, typ and jwk".into()))?;
    let payload = jws::verify_ed25519(
        token,
        &header.jwk,
        ACTIVATION_REQUEST_TYP,
        MAX_REQUEST_FILE_BYTES,
    )
    .map_err(|e| match e {
        DeviceSignedError::Malformed(why) => LineError::Invalid(why),
        DeviceSignedError::BadSignature => {
            LineError::Invalid("not signed by the key in its jwk header".into())
        }
    })?;
    let claims: ActivationRequestClaims =
        serde_json::from_slice(&payload).map_err(|e| LineError::Invalid(format!("claims: {e}")))?;
    if !jws::is_token_id(&claims.jti, crate::meter::wire::MAX_REQUEST_ID_LEN) {
        return Err(LineError::Invalid(
            "jti must be 16 to 64 characters of A-Z a-z 0-9 - _".into(),
        ));
    }
    if !crate::meter::wire::is_nonce(&claims.nonce) {
        return Err(LineError::Invalid(
            "nonce must be 128 bits, base64url".into(),
        ));
    }
    Ok((claims, header.jwk))
}

fn base64_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claims of an error line: which request failed, its stable code, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineErrorClaims {
    /// The failed line's `jti` (or its line number, `line:N`, when it had none).
    pub req: String,
    pub code: String,
    pub detail: String,
}

/// What a request line is, by its `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Activation,
    Packets,
}

/// Why one line of a request file cannot be fulfilled (the others still are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not a JWS of a known `typ`, or one that does not verify.
    Invalid(String),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// Why a whole request file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFileError {
    /// 413 `request_too_large`: over 16 KiB or 100 lines.
    TooLarge(String),
    /// 400 `invalid_request_file`: bad armor.
    Armor(ArmorError),
}

impl std::fmt::Display for RequestFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(why) => write!(f, "request file too large: {why}"),
            Self::Armor(e) => write!(f, "not a request file: {e}"),
        }
    }
}

impl std::error::Error for RequestFileError {}

/// One line of a request file: the compact JWS, and its kind or why it has none.
pub type RequestLine = (String, Result<RequestKind, LineError>);

/// The lines of a request file, each with its kind (or why it has none).
pub fn read_request_file(bytes: &[u8]) -> Result<Vec<RequestLine>, RequestFileError> {
    if bytes.len() > MAX_REQUEST_FILE_BYTES {
        return Err(RequestFileError::TooLarge(format!(
            "{} bytes (limit {MAX_REQUEST_FILE_BYTES})",
            bytes.len()
        )));
    }
    let lines = armor::dearmor_lines(Label::Request, bytes).map_err(RequestFileError::Armor)?;
    if lines.len() > MAX_REQUEST_LINES {
        return Err(RequestFileError::TooLarge(format!(
            "{} lines (limit {MAX_REQUEST_LINES})",
            lines.len()
        )));
    }
    Ok(lines
        .into_iter()
        .map(|line| {
            let kind = request_kind(&line);
            (line, kind)
        })
        .collect())
}

fn request_kind(line: &str) -> Result<RequestKind, LineError> {
    let parsed = jws::parse_compact(line).map_err(|e| LineError::Invalid(e.to_string()))?;
    match parsed.header.typ.as_deref() {
        Some(ACTIVATION_REQUEST_TYP) => Ok(RequestKind::Activation),
        Some(PACKET_REQUEST_TYP) => Ok(RequestKind::Packets),
        other => Err(LineError::Invalid(format!(
            "typ {other:?} is neither {ACTIVATION_REQUEST_TYP} nor {PACKET_REQUEST_TYP}"
        ))),
    }
}

/// Writes a request file.
pub fn request_file<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    armor::armor_lines(Label::Request, lines)
}

/// Writes a response file.
pub fn response_file<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    armor::armor_lines(Label::Response, lines)
}

/// What a response line is, by its `typ` (the device verifies each as it applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    KeyFile,
    DeviceKey,
    Packet,
    Time,
    Error,
    /// A `typ` this version does not know: skipped.
    Unknown,
}

/// The lines of a response file with their kinds.
pub fn read_response_file(bytes: &[u8]) -> Result<Vec<(String, ResponseKind)>, ArmorError> {
    let lines = armor::dearmor_lines(Label::Response, bytes)?;
    Ok(lines
        .into_iter()
        .map(|line| {
            let typ = jws::parse_compact(&line)
                .ok()
                .and_then(|parsed| parsed.header.typ);
            let kind = match typ.as_deref() {
                Some(crate::KEY_FILE_TYP) => ResponseKind::KeyFile,
                Some(crate::DEVICE_KEY_TYP) => ResponseKind::DeviceKey,
                Some(crate::meter::wire::PACKET_TYP) => ResponseKind::Packet,
                Some(crate::meter::wire::TIME_TYP) => ResponseKind::Time,
                Some(OFFLINE_ERROR_TYP) => ResponseKind::Error,
                _ => ResponseKind::Unknown,
            };
            (line, kind)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ActivationRequestClaims {
        ActivationRequestClaims {
            iss: "handheld-7".into(),
            aud: "a".repeat(64),
            jti: "req_0123456789abcdef".into(),
            iat: 1_780_000_000,
            nonce: jws::b64url(&[5; 16]),
            name: "Ada".into(),
            device_info: None,
            key_file: KeyFileRef {
                lic: "LIC-1".into(),
                seq: 1,
                sha256: "0".repeat(64),
            },
        }
    }

    #[test]
    fn activation_request_verifies_with_its_own_key_only() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let token = sign_activation_request(&key, &claims());
        let (read, jwk) = verify_activation_request(&token).unwrap();
        assert_eq!(read, claims());
        assert_eq!(jwk, DeviceJwk::from_key(&key.verifying_key()));
        // Another key's signature on the same header and claims does not verify.
        let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let forged = sign_activation_request(&other, &claims());
        let (head, _) = token.rsplit_once('.').unwrap();
        let (_, signature) = forged.rsplit_once('.').unwrap();
        assert!(verify_activation_request(&format!("{head}.{signature}")).is_err());
    }

    #[test]
    fn request_file_limits_and_kinds() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let token = sign_activation_request(&key, &claims());
        let file = request_file([token.as_str(), "not.a.jws"]);
        let lines = read_request_file(file.as_bytes()).unwrap();
        assert_eq!(lines[0].1, Ok(RequestKind::Activation));
        assert!(lines[1].1.is_err());
        let big = vec![b'a'; MAX_REQUEST_FILE_BYTES + 1];
        assert!(matches!(
            read_request_file(&big),
            Err(RequestFileError::TooLarge(_))
        ));
        let many = request_file(std::iter::repeat_n("a.b.c", MAX_REQUEST_LINES + 1));
        assert!(matches!(
            read_request_file(many.as_bytes()),
            Err(RequestFileError::TooLarge(_))
        ));
        assert!(matches!(
            read_request_file(b"garbage"),
            Err(RequestFileError::Armor(_))
        ));
    }
}
