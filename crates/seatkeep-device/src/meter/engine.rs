//! The meter a product runs (DESIGN §10.5): the device's clock, its ticks and enforcement.
//! Applying what the server sends is in [`super::apply`].

use crate::device_jwk::DeviceJwk;
use crate::device_key::DeviceKeyProduct;
use crate::jws::b64url;
use crate::keys::PublicKey;
use crate::meter::Unit;
use crate::meter::state::{self, PendingRequest, StateFileError, UsageState};
use crate::meter::store::StateStore;
use crate::meter::wire::{self, PacketRequestClaims};
use crate::verify::{self, VerifiedDevice};

/// How far the wall clock may be behind the highest trusted time before the meter locks.
pub const CLOCK_TOLERANCE_SECS: i64 = 86_400;
/// A minute on the monotonic clock: what a `device_hour` tick charges in advance.
const MINUTE_MS: u64 = 60_000;
/// Seconds in a UTC day.
const DAY_SECS: i64 = 86_400;

/// The two clocks the caller reads: the wall clock (unix seconds, may be wrong or moved) and
/// a monotonic one (milliseconds from any start, e.g. `Instant` since the process began).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub wall: i64,
    pub mono_ms: u64,
}

/// Why the product must stop (all but requesting packets, applying answers, syncing time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockReason {
    NoBalance,
    ClockWoundBack,
    StateTampered,
    LicenseExpired,
    Revoked,
}

/// What the product may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    Active,
    /// Usable, but the balance is under the warning level: ask for more now.
    Low,
    Locked(LockReason),
}

/// Why the meter could not be set up or saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterError<E> {
    /// The device key is not for a metered seat bound to this device's key.
    NotMetered(String),
    /// The store failed.
    Store(E),
}

impl<E: std::fmt::Display> std::fmt::Display for MeterError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotMetered(why) => write!(f, "not a metered device key for this device: {why}"),
            Self::Store(e) => write!(f, "usage state store: {e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for MeterError<E> {}

/// What this run of the product knows and does not persist.
#[derive(Debug, Default)]
struct Session {
    /// `device_hour`: the monotonic time up to which this run has paid.
    paid_until_ms: Option<u64>,
    /// Requests sent in this run: nonce and monotonic send time (for time tokens).
    sent: Vec<(String, u64)>,
}

/// A metered device's usage meter.
pub struct Meter<S: StateStore> {
    pub(super) store: S,
    pub(super) key: ed25519_dalek::SigningKey,
    pub(super) jkt: String,
    pub(super) server: PublicKey,
    pub(super) server_id: String,
    pub(super) product: DeviceKeyProduct,
    license_exp: Option<i64>,
    low_water: i64,
    pub(super) state: UsageState,
    pub(super) tampered: bool,
    persisted_high_water: i64,
    session: Session,
}

impl<S: StateStore> Meter<S> {
    /// Opens the meter of a verified metered device key with the device's initialization key
    /// and its store. A state that was altered, restored from an older copy, deleted, or made
    /// for another seat opens locked (`StateTampered`).
    pub fn open(
        device: &VerifiedDevice,
        key: ed25519_dalek::SigningKey,
        mut store: S,
    ) -> Result<Self, MeterError<S::Error>> {
        let claims = &device.device_key_claims;
        let jkt = DeviceJwk::from_key(&key.verifying_key()).thumbprint();
        let unit = claims
            .meter
            .map(|m| m.unit)
            .ok_or_else(|| MeterError::NotMetered("the device key has no meter claim".into()))?;
        if claims.cnf.as_ref().map(|c| c.jkt.as_str()) != Some(jkt.as_str()) {
            return Err(MeterError::NotMetered(
                "the device key's cnf.jkt is not this device's key".into(),
            ));
        }
        let server = verify::server_key(&device.key_file_claims)
            .map_err(|e| MeterError::NotMetered(e.to_string()))?;
        let packet = device
            .key_file_claims
            .meter
            .as_ref()
            .map_or(24, |m| m.packet.default);
        let fresh = UsageState::new(&device.device, &device.license, &device.seat, unit);
        let anchor = store.load_anchor().map_err(MeterError::Store)?;
        let loaded = match store.load().map_err(MeterError::Store)? {
            None if anchor == 0 => Ok(fresh.clone()),
            None => Err(StateFileError::Tampered),
            Some(bytes) => state::open(&bytes, &key),
        };
        let (state, tampered) = match loaded {
            Ok(s)
                if s.writes >= anchor
                    && (s.device.as_str(), s.lic.as_str(), s.seat.as_str(), s.unit)
                        == (
                            fresh.device.as_str(),
                            fresh.lic.as_str(),
                            fresh.seat.as_str(),
                            unit,
                        ) =>
            {
                (s, false)
            }
            _ => (fresh, true),
        };
        Ok(Self {
            store,
            key,
            jkt,
            server,
            server_id: device.server_id.clone(),
            product: claims.product.clone(),
            license_exp: claims.exp,
            // Warn under a quarter of a default packet.
            low_water: (packet * unit.ticks_per_unit() / 4).max(1),
            persisted_high_water: state.high_water,
            state,
            tampered,
            session: Session::default(),
        })
    }

    /// The usage state (amounts in ticks, see [`UsageState`]).
    pub fn state(&self) -> &UsageState {
        &self.state
    }

    /// Gives back the store (e.g. to reopen after a simulated restart).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The best time the device has: the wall clock, never below the high-water mark.
    pub(super) fn trusted_now(&self, now: Clocks) -> i64 {
        now.wall.max(self.state.high_water)
    }

    fn wound_back(&self, now: Clocks) -> bool {
        now.wall < self.state.high_water - CLOCK_TOLERANCE_SECS
    }

    /// What the product may do now; changes nothing.
    pub fn status(&self, now: Clocks) -> Enforcement {
        let trusted = self.trusted_now(now);
        let locked = if self.tampered {
            Some(LockReason::StateTampered)
        } else if self.state.revoked {
            Some(LockReason::Revoked)
        } else if self.license_exp.is_some_and(|exp| exp <= trusted) {
            Some(LockReason::LicenseExpired)
        } else if self.wound_back(now) {
            Some(LockReason::ClockWoundBack)
        } else if self.state.balance() == 0 && !self.paid_for_now(now) {
            Some(LockReason::NoBalance)
        } else {
            None
        };
        match locked {
            Some(reason) => Enforcement::Locked(reason),
            None if self.state.balance() < self.low_water => Enforcement::Low,
            None => Enforcement::Active,
        }
    }

    /// Whether the current minute (`device_hour`) or day (`device_day`) is paid already.
    fn paid_for_now(&self, now: Clocks) -> bool {
        match self.state.unit {
            Unit::DeviceHour => self.session.paid_until_ms.is_some_and(|p| now.mono_ms < p),
            Unit::DeviceDay => self.state.last_day == Some(self.today(now)),
        }
    }

    fn today(&self, now: Clocks) -> i64 {
        self.trusted_now(now).div_euclid(DAY_SECS)
    }

    /// The product starts: a fresh run pays its first minute (`device_hour`) or the day if
    /// not yet paid (`device_day`). With no balance it is locked.
    pub fn login(&mut self, now: Clocks) -> Result<Enforcement, MeterError<S::Error>> {
        self.session.paid_until_ms = None;
        self.tick(now)
    }

    /// Call while the product runs (at least once a minute for `device_hour`): charges what
    /// is owed, raises the high-water mark, lapses expired packets, and says what is allowed.
    pub fn tick(&mut self, now: Clocks) -> Result<Enforcement, MeterError<S::Error>> {
        self.observe_clock(now);
        let mut dirty = self.state.lapse(self.trusted_now(now));
        match self.status(now) {
            Enforcement::Locked(reason) if reason != LockReason::NoBalance => {
                self.session.paid_until_ms = None;
            }
            _ => dirty |= self.charge(now),
        }
        if dirty || self.state.high_water >= self.persisted_high_water + 60 {
            self.save()?;
        }
        Ok(self.status(now))
    }

    /// Raises the high-water mark with the wall clock unless the clock went back too far.
    /// (Saved with the next change, or once it has risen a minute.)
    fn observe_clock(&mut self, now: Clocks) {
        if !self.wound_back(now) && now.wall > self.state.high_water {
            self.state.high_water = now.wall;
        }
    }

    /// Charges what this moment owes; true when the state changed.
    fn charge(&mut self, now: Clocks) -> bool {
        match self.state.unit {
            Unit::DeviceHour => {
                let paid = self.session.paid_until_ms;
                if paid.is_some_and(|p| now.mono_ms < p) {
                    return false;
                }
                // Minutes since the paid time ran out, plus the next one in advance.
                let owed = paid.map_or(1, |p| 1 + (now.mono_ms - p) / MINUTE_MS);
                let owed = i64::try_from(owed).unwrap_or(i64::MAX);
                let spent = self.state.spend(owed);
                self.session.paid_until_ms = if spent == owed {
                    Some(paid.unwrap_or(now.mono_ms) + (owed as u64) * MINUTE_MS)
                } else {
                    // Ran out: the next run after a new packet starts afresh, not in arrears.
                    None
                };
                spent > 0
            }
            Unit::DeviceDay => {
                let today = self.today(now);
                if self.state.last_day.is_some_and(|d| d >= today) {
                    return false;
                }
                if self.state.spend(1) == 1 {
                    self.state.last_day = Some(today);
                    return true;
                }
                false
            }
        }
    }

    /// Makes a packet request for `amt` units (0: report state and sync time only), stored
    /// as pending before it is returned for sending. `random` must be 32 bytes from the
    /// operating system's random source: request id and nonce.
    pub fn request(
        &mut self,
        amt: i64,
        partial: bool,
        random: [u8; 32],
        now: Clocks,
    ) -> Result<String, MeterError<S::Error>> {
        let (jti, nonce) = (b64url(&random[..16]), b64url(&random[16..]));
        let at = self.trusted_now(now);
        self.state.add_pending(PendingRequest {
            jti: jti.clone(),
            nonce: nonce.clone(),
            at,
        });
        self.session.sent.push((nonce.clone(), now.mono_ms));
        self.save()?;
        let claims = PacketRequestClaims {
            iss: self.state.device.clone(),
            aud: self.server_id.clone(),
            lic: self.state.lic.clone(),
            seat: self.state.seat.clone(),
            jti,
            iat: at,
            nonce,
            amt,
            partial,
            state: self.state.reported(),
        };
        Ok(wire::sign_packet_request(&self.key, &claims))
    }

    /// Whether a request with this nonce was sent by this run under a minute ago.
    pub(super) fn sent_recently(&self, nonce: &str, now: Clocks) -> bool {
        self.session
            .sent
            .iter()
            .any(|(n, at)| n == nonce && now.mono_ms.saturating_sub(*at) < MINUTE_MS)
    }

    /// The server said the license is revoked: locked for good.
    pub fn mark_revoked(&mut self) -> Result<(), MeterError<S::Error>> {
        self.state.revoked = true;
        self.save()
    }

    /// Persists the state (not a tampered one: that stays as found, for whoever looks).
    pub(super) fn save(&mut self) -> Result<(), MeterError<S::Error>> {
        if self.tampered {
            return Ok(());
        }
        self.state.writes += 1;
        let sealed = state::seal(&self.state, &self.key);
        self.store.save(&sealed).map_err(MeterError::Store)?;
        self.store
            .save_anchor(self.state.writes)
            .map_err(MeterError::Store)?;
        self.persisted_high_water = self.state.high_water;
        Ok(())
    }
}
