//! Device keys (DESIGN §3): what the Seatkeep server signs for one device, user and seat.

use serde::{Deserialize, Serialize};

/// The `typ` header of every device key.
pub const DEVICE_KEY_TYP: &str = "seatkeep-device+jwt";
/// Largest device key read, in bytes; real ones are well under 2 KiB.
pub const MAX_DEVICE_KEY_BYTES: usize = 16 * 1024;

/// The claims of a device key. Signed with the server key; `kid` and `iss` are the server id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyClaims {
    /// Server id: `sha256(SPKI DER)` of the signing key, lowercase hex.
    pub iss: String,
    /// Device id.
    pub sub: String,
    /// User name; may be empty for `single_device`.
    pub name: String,
    /// License id, the key file's `lic`.
    pub lic: String,
    /// The product of the key file.
    pub product: DeviceKeyProduct,
    /// Seat id.
    pub seat: String,
    /// Generation: 1 at activation, +1 on every reissue.
    pub r#gen: i64,
    /// Issue time, unix seconds.
    pub iat: i64,
    /// The license's end of term, unix seconds; none means perpetual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// License model, as in the key file (`node_locked`, `single_device`, ...).
    pub model: String,
    /// The device's registered key (RFC 7800 `cnf` with its RFC 7638 thumbprint), when the
    /// device activated with a `device_jwk` (always for `metered`, DESIGN §10.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Metered licenses: what one unit buys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<DeviceKeyMeter>,
}

/// RFC 7800 confirmation claim: the key a token is bound to, by its RFC 7638 thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// The `meter` claim of a metered device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyMeter {
    pub unit: crate::meter::Unit,
}

/// The product in a device key: the key file's `product` without its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyProduct {
    /// Product id.
    pub id: String,
    /// Edition number.
    pub edition: i64,
}
