//! The metered formats (DESIGN §10.3, §10.4): the packet request a device signs with its
//! initialization key, the packet and time token the server signs, and the answer that
//! carries them. The server parses and builds them with these same types.

use serde::{Deserialize, Serialize};

use crate::device_jwk::DeviceJwk;
use crate::device_key::{Confirmation, DeviceKeyProduct};
use crate::jws::{self, DeviceSignedError};
use crate::meter::Unit;

/// `typ` of a packet request.
pub const PACKET_REQUEST_TYP: &str = "seatkeep-packet-request+jwt";
/// `typ` of a provisioning packet.
pub const PACKET_TYP: &str = "seatkeep-packet+jwt";
/// `typ` of a time token.
pub const TIME_TYP: &str = "seatkeep-time+jwt";
/// Largest packet request (the device API's body cap).
pub const MAX_PACKET_REQUEST_BYTES: usize = 16 * 1024;
/// Largest packet or time token a device reads.
pub const MAX_PACKET_BYTES: usize = 16 * 1024;
/// A time token is valid this long after its `iat`.
pub const TIME_TOKEN_TTL_SECS: i64 = 60;
/// Issued packets a device may hold unapplied; further requests get those back.
pub const MAX_UNAPPLIED_PACKETS: i64 = 2;
/// Longest request id (`jti`).
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// What the device reports with every request: `used` and `balance` in whole units
/// (`used` rounded up, `balance` down, so a started minute of a `device_hour` counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedState {
    /// Highest packet `seq` applied (0 before the first).
    pub last_seq: i64,
    /// Units used in all.
    pub used: i64,
    /// Units left.
    pub balance: i64,
}

/// The claims of a packet request (§10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRequestClaims {
    /// The device id.
    pub iss: String,
    /// The server id.
    pub aud: String,
    pub lic: String,
    pub seat: String,
    /// The request id: stored on the device as pending before it is sent; the idempotency key.
    pub jti: String,
    pub iat: i64,
    /// 128 random bits, base64url; echoed in the packet and the time token.
    pub nonce: String,
    /// Units wanted; 0 reports state and asks for the time only.
    pub amt: i64,
    /// Accept less than `amt` when the pool is low.
    #[serde(default)]
    pub partial: bool,
    pub state: ReportedState,
}

/// A provisioning packet's claims (§10.4), signed by the server key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketClaims {
    /// The server id.
    pub iss: String,
    /// The device id.
    pub sub: String,
    /// The device's initialization key.
    pub cnf: Confirmation,
    pub lic: String,
    pub product: DeviceKeyProduct,
    pub seat: String,
    /// The packet's own id.
    pub jti: String,
    /// Per seat, gapless from 1.
    pub seq: i64,
    /// The request's `jti`.
    pub req: String,
    /// The request's `nonce`.
    pub nonce: String,
    /// Units granted.
    pub amt: i64,
    pub unit: Unit,
    pub iat: i64,
    /// `min(iat + packet_ttl, the license's exp)`: apply before, and the units lapse then.
    pub exp: i64,
}

/// A time token's claims (§10.4): the server's clock, for the request with that nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeClaims {
    /// The server id.
    pub iss: String,
    /// The device id.
    pub sub: String,
    /// The request's `nonce`.
    pub nonce: String,
    /// The server's time, unix seconds.
    pub iat: i64,
    /// `iat + 60`.
    pub exp: i64,
}

/// The pool figures in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFigures {
    pub units: i64,
    pub issued: i64,
}

/// The answer to a packet request: `{packets, time, pool}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketsAnswer {
    /// Compact JWS packets, in `seq` order (the new one, or the unapplied ones again).
    pub packets: Vec<String>,
    /// A compact JWS time token.
    pub time: String,
    pub pool: PoolFigures,
}

/// Signs a packet request with the device's initialization key (the device side).
pub fn sign_packet_request(
    key: &ed25519_dalek::SigningKey,
    claims: &PacketRequestClaims,
) -> String {
    jws::sign_ed25519(key, PACKET_REQUEST_TYP, claims)
}

/// What the server expects a packet request to say.
#[derive(Debug, Clone, Copy)]
pub struct RequestExpected<'a> {
    pub device_id: &'a str,
    pub server_id: &'a str,
    pub lic: &'a str,
    pub seat: &'a str,
}

/// Why a packet request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// 400 `invalid_packet_request`: not a JWS of the right shape, `typ`, `alg` or claims.
    Invalid(String),
    /// 401 `invalid_device_signature`: not signed by the seat's registered key.
    Signature,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "invalid packet request: {why}"),
            Self::Signature => {
                f.write_str("the packet request is not signed by this seat's device key")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Verifies a packet request with the key registered for the seat (never one the request
/// names) and checks its claims (the server side). `iat` is not checked against the clock:
/// an offline request file may be days old, and the `jti` makes a replay harmless.
pub fn verify_packet_request(
    token: &str,
    registered: &DeviceJwk,
    expected: &RequestExpected<'_>,
) -> Result<PacketRequestClaims, RequestError> {
    let payload = jws::verify_ed25519(
        token.trim(),
        registered,
        PACKET_REQUEST_TYP,
        MAX_PACKET_REQUEST_BYTES,
    )
    .map_err(|e| match e {
        DeviceSignedError::Malformed(why) => RequestError::Invalid(why),
        DeviceSignedError::BadSignature => RequestError::Signature,
    })?;
    let claims: PacketRequestClaims = serde_json::from_slice(&payload)
        .map_err(|e| RequestError::Invalid(format!("claims: {e}")))?;
    let checks = [
        ("iss", claims.iss == expected.device_id),
        ("aud", claims.aud == expected.server_id),
        ("lic", claims.lic == expected.lic),
        ("seat", claims.seat == expected.seat),
    ];
    if let Some((claim, _)) = checks.iter().find(|(_, ok)| !ok) {
        return Err(RequestError::Invalid(format!(
            "{claim} does not match this seat"
        )));
    }
    if !jws::is_token_id(&claims.jti, MAX_REQUEST_ID_LEN) {
        return Err(RequestError::Invalid(format!(
            "jti must be 16 to {MAX_REQUEST_ID_LEN} characters of A-Z a-z 0-9 - _"
        )));
    }
    if !is_nonce(&claims.nonce) {
        return Err(RequestError::Invalid(
            "nonce must be 128 bits, base64url (22 characters)".into(),
        ));
    }
    let state = claims.state;
    if claims.amt < 0 || state.last_seq < 0 || state.used < 0 || state.balance < 0 {
        return Err(RequestError::Invalid(
            "amt and the state figures must not be negative".into(),
        ));
    }
    Ok(claims)
}

/// 128 bits as unpadded base64url: 22 characters, the last carrying 2 bits.
pub fn is_nonce(value: &str) -> bool {
    use base64::Engine as _;
    value.len() == 22
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == 16)
}
