//! The JSON bodies of the device API (`/api/v1`, DESIGN §5), as the server reads and writes
//! them and as a device client sends and reads them. Unknown members are ignored both ways,
//! so either side may be newer.

use serde::{Deserialize, Serialize};

use crate::device_jwk::DeviceJwk;

/// Path of the activation endpoint below the server's base URL.
pub const ACTIVATIONS_PATH: &str = "/api/v1/activations";

/// Body of `POST /api/v1/activations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationBody {
    /// The key file's text, armored or the bare compact JWS; any version of an imported
    /// license proves possession.
    pub key_file: String,
    /// 1–128 characters of `[A-Za-z0-9._:-]`.
    pub device_id: String,
    /// 0–64 Unicode scalar values, no control characters; empty only for `single_device`.
    pub user_name: String,
    /// A JSON object describing the device (at most 4 KiB serialized), kept with the seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<serde_json::Value>,
    /// The public half of a key pair the device made and keeps ([`crate::device_jwk`]).
    /// A seat created with one is changed only with proofs signed by it, and a repeat
    /// activation must carry the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_jwk: Option<DeviceJwk>,
}

/// Answer to an activation (201 new seat, 200 the same device again) and to a reissue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationAnswer {
    /// Seat id.
    pub seat: String,
    /// The signed device key (compact JWS).
    pub device_key: String,
    /// The license's current key file, so the device holds the whole chain.
    pub key_file: String,
    /// Seat state: `active`.
    #[serde(default)]
    pub state: String,
    /// The license's end of term, unix seconds; null means perpetual.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Proof of possession for reissue and return of a seat without a `device_jwk`; keep it
    /// secret. Only in the 201 that created the seat, never in a later answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_token: Option<String>,
    /// Granted under the overage allowance (beyond the seats bought).
    #[serde(default)]
    pub overage: bool,
    /// Device key generation (1, +1 per reissue).
    #[serde(default)]
    pub generation: i64,
}

/// Answer to `GET /api/v1/activations/{seat}` and to a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatStatus {
    /// Seat id.
    pub seat: String,
    /// `active`, `retired`, `returned` or `revoked`.
    pub state: String,
    /// License id.
    pub license: String,
    /// Device id.
    pub device_id: String,
    /// Device key generation.
    pub generation: i64,
    /// Last change, unix seconds.
    pub updated_at: i64,
}

/// Body of `POST /api/v1/activations/{seat}/reissue`: a name change, limited by the
/// license's `reissue_limit`. Exactly one of `return_token` (a seat without a device key)
/// and `proof` (a seat with one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReissueBody {
    /// The token from the 201 that created the seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_token: Option<String>,
    /// A [`crate::proof`] with `action: "reissue"` and the new `user_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The new user name.
    pub user_name: String,
}

/// Body of `POST /api/v1/activations/{seat}/return`, limited by the license's `return_limit`.
/// Exactly one of `return_token` and `proof`, as for a reissue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnBody {
    /// The token from the 201 that created the seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_token: Option<String>,
    /// A [`crate::proof`] with `action: "return"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// Body of `POST /api/v1/keys/lookup`: a user's active keys on a device, after a reinstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupBody {
    /// The key file's text, armored or bare.
    pub key_file: String,
    /// Device id.
    pub device_id: String,
    /// Only this user's keys are returned.
    pub user_name: String,
}

/// Answer to `POST /api/v1/keys/lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupAnswer {
    /// One entry per active seat of that user on the device under the key file's license.
    pub keys: Vec<StoredKey>,
}

/// One active device key, as the key repository returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Seat id.
    pub seat: String,
    /// The signed device key.
    pub device_key: String,
    /// Device key generation.
    pub generation: i64,
    /// User name on the seat.
    pub user_name: String,
    /// License id.
    pub license: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_body_without_device_info() {
        let body = ActivationBody {
            key_file: "k".into(),
            device_id: "d".into(),
            user_name: "u".into(),
            device_info: None,
            device_jwk: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"key_file":"k","device_id":"d","user_name":"u"}"#
        );
        let parsed: ActivationBody =
            serde_json::from_str(r#"{"key_file":"k","device_id":"d","user_name":"u","x":1}"#)
                .unwrap();
        assert_eq!(parsed, body);
        assert!(serde_json::from_str::<ActivationBody>(r#"{"key_file":"k"}"#).is_err());
    }

    #[test]
    fn answer_keeps_its_member_order_and_nulls() {
        let answer = ActivationAnswer {
            seat: "s".into(),
            device_key: "d".into(),
            key_file: "k".into(),
            state: "active".into(),
            expires_at: None,
            return_token: Some("t".into()),
            overage: false,
            generation: 1,
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"seat":"s","device_key":"d","key_file":"k","state":"active","expires_at":null,"return_token":"t","overage":false,"generation":1}"#
        );
        // Only seat, device_key and key_file are required of a saved answer.
        let minimal: ActivationAnswer =
            serde_json::from_str(r#"{"seat":"s","device_key":"d","key_file":"k"}"#).unwrap();
        assert_eq!(minimal.return_token, None);
        assert_eq!(minimal.generation, 0);
    }
}
