//! Errors of the device API: RFC 9457 problem details (`application/problem+json`) with a
//! stable `code` (DESIGN §5, §11). Products branch on the code, never on `detail` text.

use serde::{Deserialize, Serialize};

/// Prefix of a problem's `type` URI; the code follows it.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:seatkeep:problem:";

macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)+) => {
        /// Every stable `code` the server sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemCode {
            $($(#[$doc])* $variant,)+
        }

        impl ProblemCode {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The code as it appears in `code` and after [`PROBLEM_TYPE_PREFIX`].
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }
        }
    };
}

problem_codes! {
    /// 400 (413 for the size): malformed JSON, a bad field, a body too large.
    InvalidRequest = "invalid_request",
    /// 400: armor, JWS, signature, alg, claims or server binding of the key file wrong.
    InvalidKeyFile = "invalid_key_file",
    /// 404: a valid key file whose license was never imported on this server.
    UnknownLicense = "unknown_license",
    /// 404: no such seat.
    UnknownSeat = "unknown_seat",
    /// 403: the license's term is over.
    LicenseExpired = "license_expired",
    /// 403: the license's term has not started.
    LicenseNotYetValid = "license_not_yet_valid",
    /// 403: the provider revoked the license.
    LicenseRevoked = "license_revoked",
    /// 409: all seats in use; the body says `seats` and `in_use`.
    SeatsExhausted = "seats_exhausted",
    /// 409: reissue or return of a retired or returned seat.
    SeatNotActive = "seat_not_active",
    /// 409: the device holds a seat under another user name; use reissue.
    ReissueRequired = "reissue_required",
    /// 429 with `Retry-After`: too many name changes in 365 days.
    ReissueLimitReached = "reissue_limit_reached",
    /// 429 with `Retry-After`: too many returns in 365 days.
    ReturnLimitReached = "return_limit_reached",
    /// 429 with `Retry-After`.
    RateLimited = "rate_limited",
    /// 408: the request body did not arrive within the server's body timeout; the
    /// connection is closed.
    RequestTimeout = "request_timeout",
    /// 401: wrong return token.
    InvalidReturnToken = "invalid_return_token",
    /// 401: a device proof that does not verify with the seat's key, is stale or replayed.
    InvalidDeviceProof = "invalid_device_proof",
    /// 503: the server clock went back past its tolerance; nothing is signed until fixed.
    ClockUntrusted = "clock_untrusted",
    /// 503: federation events unacknowledged past the license's grace; new seats wait.
    FederationOverdue = "federation_overdue",
    /// 503 with `Retry-After`: the database is unreachable.
    Unavailable = "unavailable",
    /// 503: the server is not ready (database not reachable or not migrated).
    NotReady = "not_ready",
    /// 404: no such endpoint.
    NotFound = "not_found",
    /// 403: this client may not use this endpoint (`/metrics` off loopback without its token).
    Forbidden = "forbidden",
    /// 500: the server log has the cause.
    InternalError = "internal_error",
    /// 400, metered: bad packet request JWS, claims or `aud`.
    InvalidPacketRequest = "invalid_packet_request",
    /// 400, metered: `amt` outside the key file's `packet.min..max`.
    AmountOutOfRange = "amount_out_of_range",
    /// 401, metered: the request does not verify with the device's registered key.
    InvalidDeviceSignature = "invalid_device_signature",
    /// 403, metered: a packet request for a license that is not `metered`.
    MeterNotEnabled = "meter_not_enabled",
    /// 409, metered: the usage pool is spent; the body says `units`, `issued`, `available`.
    UsageExhausted = "usage_exhausted",
    /// 409: the same device id with another device key (cloned image or reinstall).
    DeviceKeyMismatch = "device_key_mismatch",
    /// 409, metered: the reported state went backwards or spent more than was issued.
    DeviceStateInvalid = "device_state_invalid",
    /// 422: a known request id with a different body.
    RequestIdReused = "request_id_reused",
    /// 413, offline: a request file over 16 KiB or 100 lines.
    RequestTooLarge = "request_too_large",
    /// 400, offline: the request file's armor is wrong.
    InvalidRequestFile = "invalid_request_file",
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this version does not know (a newer server, or not a Seatkeep code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode(pub String);

impl std::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown problem code '{}'", self.0)
    }
}

impl std::error::Error for UnknownCode {}

impl std::str::FromStr for ProblemCode {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_owned()))
    }
}

/// A problem details body as the server sends it. Only `code` is required, so a problem from
/// a newer server still reads; extension members (`seats`, `in_use`, `license`, `field`,
/// `limit`, ...) are in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:seatkeep:problem:<code>`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_uri: Option<String>,
    /// The HTTP status's reason phrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The stable code; [`Problem::known_code`] parses it.
    pub code: String,
    /// One line for people; 5xx answers never carry the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Seconds to wait before trying again, also sent as `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Every other member.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// The code, when this version knows it.
    pub fn known_code(&self) -> Option<ProblemCode> {
        self.code.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in ProblemCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(code.as_str().parse::<ProblemCode>(), Ok(code));
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        assert_eq!(
            "seat_exhausted".parse::<ProblemCode>(),
            Err(UnknownCode("seat_exhausted".into()))
        );
    }

    #[test]
    fn reads_a_server_problem() {
        let body = r#"{"type":"urn:seatkeep:problem:seats_exhausted","title":"Conflict",
            "status":409,"code":"seats_exhausted","detail":"all 5 seats of license LIC-1 are in use",
            "license":"LIC-1","seats":5,"in_use":5}"#;
        let problem: Problem = serde_json::from_str(body).unwrap();
        assert_eq!(problem.known_code(), Some(ProblemCode::SeatsExhausted));
        assert_eq!(problem.status, Some(409));
        assert_eq!(problem.extra["in_use"], 5);
        assert_eq!(
            problem.type_uri.as_deref(),
            Some("urn:seatkeep:problem:seats_exhausted")
        );
        let newer: Problem = serde_json::from_str(r#"{"code":"brand_new"}"#).unwrap();
        assert_eq!(newer.known_code(), None);
        assert!(serde_json::from_str::<Problem>(r#"{"detail":"x"}"#).is_err());
    }
}
