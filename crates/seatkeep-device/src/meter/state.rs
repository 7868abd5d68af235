//! The device's usage state (DESIGN §10.5) and its sealed file form.
//!
//! Amounts are kept in *ticks*: a `device_hour` unit is 60 ticks (a minute each), a
//! `device_day` unit one tick, so `applied = used + balance + lapsed` holds exactly.
//!
//! The file is the state's JSON, a line break, and the hex HMAC-SHA256 of that JSON keyed
//! from the device's private key: a product cannot be given more balance by editing it.
//! A copy of an *older* file carries a valid HMAC, so every save also raises `writes`, and
//! the store keeps the highest value apart from the file ([`StateStore`](super::StateStore)):
//! a state whose `writes` is below it was restored from a backup, and locks.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::meter::Unit;
use crate::meter::wire::ReportedState;

/// Version of the state's JSON.
pub const STATE_VERSION: u32 = 1;
/// Pending request ids kept; the oldest is dropped beyond this.
pub const MAX_PENDING: usize = 8;

/// Units of one applied packet not yet used, lapsing at `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// The packet's `seq`.
    pub seq: i64,
    /// Ticks left.
    pub left: i64,
    /// The packet's `exp`, unix seconds.
    pub exp: i64,
}

/// A packet request sent and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub jti: String,
    pub nonce: String,
    /// Trusted time it was made, unix seconds.
    pub at: i64,
}

/// Everything the device keeps about its usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageState {
    pub version: u32,
    /// The seat this state belongs to: a state file copied from another device does not fit.
    pub device: String,
    pub lic: String,
    pub seat: String,
    pub unit: Unit,
    /// Highest packet `seq` applied.
    pub last_seq: i64,
    /// Ticks applied, used and lapsed in all.
    pub applied: i64,
    pub used: i64,
    pub lapsed: i64,
    /// Applied packets with units left, earliest `exp` first.
    pub buckets: Vec<Bucket>,
    pub pending: Vec<PendingRequest>,
    /// `hw`: the highest trusted time seen, unix seconds.
    pub high_water: i64,
    /// `device_day`: the UTC day (days since 1970) last charged.
    pub last_day: Option<i64>,
    /// The license was revoked (the server said so); locked for good.
    #[serde(default)]
    pub revoked: bool,
    /// Saves so far; see the module comment.
    pub writes: u64,
}

impl UsageState {
    /// The state of a device that has applied nothing yet.
    pub fn new(device: &str, lic: &str, seat: &str, unit: Unit) -> Self {
        Self {
            version: STATE_VERSION,
            device: device.to_owned(),
            lic: lic.to_owned(),
            seat: seat.to_owned(),
            unit,
            last_seq: 0,
            applied: 0,
            used: 0,
            lapsed: 0,
            buckets: Vec::new(),
            pending: Vec::new(),
            high_water: 0,
            last_day: None,
            revoked: false,
            writes: 0,
        }
    }

    /// Ticks left in all buckets.
    pub fn balance(&self) -> i64 {
        self.buckets.iter().map(|b| b.left).sum()
    }

    /// What a request reports, in whole units.
    pub fn reported(&self) -> ReportedState {
        let per = self.unit.ticks_per_unit();
        ReportedState {
            last_seq: self.last_seq,
            used: (self.used + per - 1) / per,
            balance: self.balance() / per,
        }
    }

    /// Moves the units of buckets expired at `now` to `lapsed`.
    pub fn lapse(&mut self, now: i64) -> bool {
        let before = self.buckets.len();
        let lapsed: i64 = self
            .buckets
            .iter()
            .filter(|b| b.exp <= now)
            .map(|b| b.left)
            .sum();
        self.buckets.retain(|b| b.exp > now);
        self.lapsed += lapsed;
        self.buckets.len() != before
    }

    /// Spends up to `ticks` from the buckets that expire first; returns what was spent.
    pub fn spend(&mut self, ticks: i64) -> i64 {
        let mut owed = ticks;
        for bucket in &mut self.buckets {
            let take = owed.min(bucket.left);
            bucket.left -= take;
            owed -= take;
            if owed == 0 {
                break;
            }
        }
        self.buckets.retain(|b| b.left > 0);
        let spent = ticks - owed;
        self.used += spent;
        spent
    }

    /// Adds a packet's units as a bucket, kept in order of expiry.
    pub fn add_bucket(&mut self, seq: i64, ticks: i64, exp: i64) {
        self.applied += ticks;
        let at = self.buckets.partition_point(|b| b.exp <= exp);
        self.buckets.insert(
            at,
            Bucket {
                seq,
                left: ticks,
                exp,
            },
        );
    }

    /// Records a request as pending, dropping the oldest beyond [`MAX_PENDING`].
    pub fn add_pending(&mut self, request: PendingRequest) {
        self.pending.push(request);
        let extra = self.pending.len().saturating_sub(MAX_PENDING);
        self.pending.drain(..extra);
    }
}

/// Why a state file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateFileError {
    /// Not a state file, or not one this version reads.
    Malformed(String),
    /// The HMAC does not match: the file was edited, or sealed by another device key.
    Tampered,
}

impl std::fmt::Display for StateFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "unreadable usage state: {why}"),
            Self::Tampered => f.write_str("the usage state was altered (its HMAC does not match)"),
        }
    }
}

impl std::error::Error for StateFileError {}

/// The state key: derived from the device's private key, so only this device seals.
fn state_mac(key: &ed25519_dalek::SigningKey) -> Hmac<Sha256> {
    let mut derive = Sha256::new();
    derive.update(b"seatkeep-device-state-v1\0");
    derive.update(key.to_bytes());
    let secret = derive.finalize();
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(&secret).unwrap_or_else(|_| unreachable!())
}

/// The file form of a state: its JSON, `\n`, the hex HMAC of the JSON.
pub fn seal(state: &UsageState, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    // Serializing this plain struct cannot fail.
    let json = serde_json::to_vec(state).unwrap_or_default();
    let mut mac = state_mac(key);
    mac.update(&json);
    let tag = mac.finalize().into_bytes();
    let mut out = json;
    out.push(b'\n');
    for byte in tag {
        out.extend_from_slice(format!("{byte:02x}").as_bytes());
    }
    out
}

/// Opens a sealed state, checking its HMAC in constant time before reading it.
pub fn open(bytes: &[u8], key: &ed25519_dalek::SigningKey) -> Result<UsageState, StateFileError> {
    let split = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .ok_or_else(|| StateFileError::Malformed("no HMAC line".into()))?;
    let (json, tag_hex) = (&bytes[..split], &bytes[split + 1..]);
    let tag = decode_hex(tag_hex).ok_or(StateFileError::Tampered)?;
    let mut mac = state_mac(key);
    mac.update(json);
    mac.verify_slice(&tag)
        .map_err(|_| StateFileError::Tampered)?;
    let state: UsageState =
        serde_json::from_slice(json).map_err(|e| StateFileError::Malformed(e.to_string()))?;
    if state.version != STATE_VERSION {
        return Err(StateFileError::Malformed(format!(
            "version {} (this library reads {STATE_VERSION})",
            state.version
        )));
    }
    Ok(state)
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sealed_state_opens_with_its_key_only() {
        let mut state = UsageState::new("dev-1", "lic", "st_1", Unit::DeviceHour);
        state.add_bucket(1, 60 * 24, 2_000_000_000);
        let sealed = seal(&state, &key(1));
        assert_eq!(open(&sealed, &key(1)).unwrap(), state);
        assert_eq!(open(&sealed, &key(2)), Err(StateFileError::Tampered));
        // One byte of the balance changed: the HMAC no longer matches.
        let text = String::from_utf8(sealed.clone()).unwrap();
        let edited = text.replacen("\"left\":1440", "\"left\":9440", 1);
        assert_ne!(edited, text);
        assert_eq!(
            open(edited.as_bytes(), &key(1)),
            Err(StateFileError::Tampered)
        );
        assert!(matches!(
            open(b"garbage", &key(1)),
            Err(StateFileError::Malformed(_))
        ));
    }

    #[test]
    fn spends_from_the_earliest_expiry_and_lapses() {
        let mut state = UsageState::new("d", "l", "s", Unit::DeviceDay);
        state.add_bucket(1, 5, 300);
        state.add_bucket(2, 5, 200);
        assert_eq!(state.spend(7), 7);
        assert_eq!(
            state.buckets,
            vec![Bucket {
                seq: 1,
                left: 3,
                exp: 300
            }]
        );
        assert!(state.lapse(300));
        assert_eq!((state.used, state.lapsed, state.balance()), (7, 3, 0));
        assert_eq!(state.spend(1), 0);
        assert_eq!(state.applied, state.used + state.balance() + state.lapsed);
    }

    #[test]
    fn reports_whole_units() {
        let mut state = UsageState::new("d", "l", "s", Unit::DeviceHour);
        state.add_bucket(1, 120, 1_000);
        state.spend(61);
        state.last_seq = 1;
        let reported = state.reported();
        assert_eq!((reported.used, reported.balance), (2, 0));
    }
}
