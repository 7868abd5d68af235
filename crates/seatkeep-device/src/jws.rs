//! Compact JWS (RFC 7515) framing shared by key files, device keys and every later token.
//!
//! This module only splits, decodes and assembles the three dot-separated parts; it never
//! chooses a key or an algorithm. Callers pin both before they look at the signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Why a compact JWS could not be taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwsError {
    /// Not three non-empty base64url parts separated by dots.
    Shape,
    /// A part (`header`, `payload` or `signature`) is not valid unpadded base64url.
    Base64(&'static str),
    /// The protected header is not the JSON object we expect.
    Header(String),
}

impl std::fmt::Display for JwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shape => {
                f.write_str("not a compact JWS (expected three base64url parts separated by '.')")
            }
            Self::Base64(part) => write!(f, "the JWS {part} is not valid base64url"),
            Self::Header(reason) => write!(f, "the JWS header is not valid JSON: {reason}"),
        }
    }
}

impl std::error::Error for JwsError {}

/// The signature algorithms Seatkeep signs and verifies with. Everything else is refused.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
}

impl JwsAlgorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }

    /// True for the RSA algorithms.
    pub fn is_rsa(self) -> bool {
        !matches!(self, Self::EdDSA)
    }
}

impl std::fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JwsAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(Self::EdDSA),
            "RS256" => Ok(Self::RS256),
            "PS256" => Ok(Self::PS256),
            other => Err(format!(
                "unsupported algorithm '{other}' (use EdDSA, RS256 or PS256)"
            )),
        }
    }
}

/// The protected header fields Seatkeep reads. Unknown header fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JwsHeader {
    /// Signature algorithm named by the token; only ever compared to a pinned value.
    pub alg: String,
    /// Media type of the token, e.g. `seatkeep-keyfile+jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// A compact JWS split into its parts, signature not yet verified.
#[derive(Debug, Clone)]
pub struct CompactJws<'a> {
    /// Decoded protected header.
    pub header: JwsHeader,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The signature part as it appears in the token (base64url).
    pub signature_b64: &'a str,
    /// Decoded signature bytes.
    pub signature: Vec<u8>,
    /// Decoded payload bytes (JSON claims, not yet parsed).
    pub payload: Vec<u8>,
}

fn is_b64url(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, JwsError> {
    if part.is_empty() || !is_b64url(part) {
        return Err(JwsError::Base64(what));
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Base64(what))
}

/// Splits and decodes a compact JWS. The token must be exactly three non-empty parts.
pub fn parse_compact(token: &str) -> Result<CompactJws<'_>, JwsError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Shape);
    };
    let header_bytes = decode_part(header_b64, "header")?;
    let payload = decode_part(payload_b64, "payload")?;
    let signature = decode_part(signature_b64, "signature")?;
    let header: JwsHeader =
        serde_json::from_slice(&header_bytes).map_err(|e| JwsError::Header(e.to_string()))?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(CompactJws {
        header,
        signing_input,
        signature_b64,
        signature,
        payload,
    })
}

/// Encodes bytes as unpadded base64url.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds `base64url(header) "." base64url(payload)`, the input to sign.
pub fn signing_input(header: &JwsHeader, payload_json: &[u8]) -> Result<String, serde_json::Error> {
    let header_json = serde_json::to_vec(header)?;
    Ok(format!("{}.{}", b64url(&header_json), b64url(payload_json)))
}

/// Appends the signature to a signing input, giving the compact JWS.
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64url(signature))
}

/// Signs `claims` as a compact JWS with the device's Ed25519 key: `alg` EdDSA, the given
/// `typ`, `kid` = the key's RFC 7638 thumbprint. Used for every token a device signs.
pub fn sign_ed25519(key: &ed25519_dalek::SigningKey, typ: &str, claims: &impl Serialize) -> String {
    use ed25519_dalek::Signer as _;
    let header = JwsHeader {
        alg: JwsAlgorithm::EdDSA.as_str().to_owned(),
        typ: Some(typ.to_owned()),
        kid: Some(crate::DeviceJwk::from_key(&key.verifying_key()).thumbprint()),
    };
    // Serializing plain claim structs cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let input = signing_input(&header, &payload).unwrap_or_default();
    assemble(&input, &key.sign(input.as_bytes()).to_bytes())
}

/// Why a device-signed token was refused by [`verify_ed25519`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSignedError {
    /// Too long, not a compact JWS, or the wrong `typ` or `alg`.
    Malformed(String),
    /// The signature does not verify with the registered key.
    BadSignature,
}

/// Verifies a token a device signed with the key registered for it (never a key the token
/// names): size, `typ`, `alg` = EdDSA, then the signature (strict: no malleable signatures).
/// Returns the payload, not yet parsed.
pub fn verify_ed25519(
    token: &str,
    registered: &crate::DeviceJwk,
    typ: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, DeviceSignedError> {
    if token.len() > max_bytes {
        return Err(DeviceSignedError::Malformed(format!(
            "longer than {max_bytes} bytes"
        )));
    }
    let parsed = parse_compact(token).map_err(|e| DeviceSignedError::Malformed(e.to_string()))?;
    if parsed.header.typ.as_deref() != Some(typ) {
        return Err(DeviceSignedError::Malformed(format!("typ must be {typ}")));
    }
    if parsed.header.alg != JwsAlgorithm::EdDSA.as_str() {
        return Err(DeviceSignedError::Malformed("alg must be EdDSA".into()));
    }
    let key = registered
        .verifying_key()
        .map_err(|_| DeviceSignedError::BadSignature)?;
    let signature = ed25519_dalek::Signature::from_slice(&parsed.signature)
        .map_err(|_| DeviceSignedError::BadSignature)?;
    key.verify_strict(parsed.signing_input.as_bytes(), &signature)
        .map_err(|_| DeviceSignedError::BadSignature)?;
    Ok(parsed.payload)
}

/// True for 16–`max` characters of `[A-Za-z0-9_-]`: the shape of request and proof ids.
pub fn is_token_id(value: &str, max: usize) -> bool {
    (16..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let header = JwsHeader {
            alg: "EdDSA".into(),
            typ: Some("x".into()),
            kid: None,
        };
        let input = signing_input(&header, br#"{"a":1}"#).unwrap();
        let token = assemble(&input, b"sig");
        let parsed = parse_compact(&token).unwrap();
        assert_eq!(parsed.header, header);
        assert_eq!(parsed.payload, br#"{"a":1}"#);
        assert_eq!(parsed.signature, b"sig");
        assert_eq!(parsed.signing_input, input);
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(parse_compact("a.b").unwrap_err(), JwsError::Shape);
        assert_eq!(parse_compact("a.b.c.d").unwrap_err(), JwsError::Shape);
        assert_eq!(
            parse_compact("eyJhbGciOiJub25lIn0.e30.").unwrap_err(),
            JwsError::Base64("signature")
        );
        assert_eq!(
            parse_compact("eyJhbGciOiJub25lIn0.e3=0.AA").unwrap_err(),
            JwsError::Base64("payload")
        );
    }
}
