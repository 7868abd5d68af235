//! `device usage status | tick | request`: the reference client's metered side (DESIGN
//! §10.5), the device library's [`Meter`] over files next to the saved activation:
//! `FILE.usage` (the sealed state, replaced atomically) and `FILE.usage-anchor` (the save
//! counter, kept apart so a restored old state file locks the meter). Each command is one run
//! of the product: `tick` pays the run's first minute (`device_hour`) or the day
//! (`device_day`), so a restart costs a fresh minute, as the library intends.

use std::path::{Path, PathBuf};
use std::time::Instant;

use seatkeep_device::meter::wire::PacketsAnswer;
use seatkeep_device::meter::{
    Applied, Clocks, Enforcement, LockReason, Meter, MeterError, StateStore,
};
use seatkeep_device::{ProviderKey, verify_device_key};

use super::ClientError;
use super::files::{load_saved, read_bytes, write_private};
use super::http::{activations_url_with, build_client, refusal, send_jose};

/// The wall clock, unix seconds.
pub(super) fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The usage state's files beside the saved activation.
pub struct FileStore {
    state: PathBuf,
    anchor: PathBuf,
}

impl FileStore {
    /// The store of the saved activation at `saved`.
    pub fn beside(saved: &Path) -> Self {
        let with = |suffix: &str| {
            let mut name = saved.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            state: with(".usage"),
            anchor: with(".usage-anchor"),
        }
    }

    fn read(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl StateStore for FileStore {
    type Error = std::io::Error;

    fn load(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        Self::read(&self.state)
    }

    fn save(&mut self, sealed: &[u8]) -> std::io::Result<()> {
        write_private(&self.state, sealed)
    }

    fn load_anchor(&mut self) -> std::io::Result<u64> {
        let Some(bytes) = Self::read(&self.anchor)? else {
            return Ok(0);
        };
        // A damaged anchor must not reset to 0 (that would accept an old state file).
        String::from_utf8_lossy(&bytes).trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a save counter", self.anchor.display()),
            )
        })
    }

    fn save_anchor(&mut self, writes: u64) -> std::io::Result<()> {
        write_private(&self.anchor, writes.to_string().as_bytes())
    }
}

/// A saved metered activation and its meter, opened for one command.
pub struct Opened {
    pub meter: Meter<FileStore>,
    pub seat: String,
    pub server: Option<String>,
    /// Units per packet by default, from the key file.
    pub default_units: i64,
    started: Instant,
}

impl Opened {
    /// The clocks now: the system's wall clock and the time since this command began.
    pub fn clocks(&self) -> Clocks {
        Clocks {
            wall: wall_now(),
            mono_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

pub(super) fn meter_error(saved: &Path, e: MeterError<std::io::Error>) -> ClientError {
    match e {
        MeterError::NotMetered(reason) => ClientError::SavedActivation {
            path: saved.to_path_buf(),
            reason,
        },
        MeterError::Store(source) => ClientError::Io {
            action: "cannot keep the usage state of",
            path: saved.to_path_buf(),
            source,
        },
    }
}

/// Verifies the saved activation with the provider key (the chain provider → key file →
/// device key) and opens its meter with the device's own key.
pub fn open(saved: &Path, provider_key: &Path) -> Result<Opened, ClientError> {
    let started = Instant::now();
    let (answer, state) = load_saved(saved)?;
    let not_metered = |reason: &str| ClientError::SavedActivation {
        path: saved.to_path_buf(),
        reason: reason.to_owned(),
    };
    let key = state
        .signing_key(saved)?
        .ok_or_else(|| not_metered("it has no device key (metered seats need one)"))?;
    let device_id = state
        .device_id
        .clone()
        .ok_or_else(|| not_metered("it does not say which device it is for"))?;
    let provider_pem = read_bytes(provider_key, "cannot read provider key")?;
    let provider =
        ProviderKey::from_pem(&provider_pem).map_err(|e| ClientError::DeviceKeyInput {
            path: provider_key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let verified = verify_device_key(
        &provider,
        &answer.key_file,
        &answer.device_key,
        &device_id,
        None,
        wall_now(),
    )
    .map_err(|e| not_metered(&format!("it does not verify: {e}")))?;
    let default_units = verified
        .key_file_claims
        .meter
        .as_ref()
        .map_or(24, |m| m.packet.default);
    let meter =
        Meter::open(&verified, key, FileStore::beside(saved)).map_err(|e| meter_error(saved, e))?;
    Ok(Opened {
        meter,
        seat: answer.seat,
        server: state.server,
        default_units,
        started,
    })
}

/// What `device usage status` shows (units; the state counts ticks).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageReport {
    pub seat: String,
    pub unit: &'static str,
    /// `active`, `low`, or `locked: REASON`.
    pub enforcement: String,
    pub balance_units: f64,
    pub used_units: f64,
    pub lapsed_units: f64,
    pub last_packet: i64,
    pub pending_requests: usize,
    pub high_water: i64,
}

/// The stable word of an enforcement state.
pub fn enforcement_word(e: Enforcement) -> String {
    match e {
        Enforcement::Active => "active".into(),
        Enforcement::Low => "low".into(),
        Enforcement::Locked(reason) => format!(
            "locked: {}",
            match reason {
                LockReason::NoBalance => "no_balance",
                LockReason::ClockWoundBack => "clock_wound_back",
                LockReason::StateTampered => "state_tampered",
                LockReason::LicenseExpired => "license_expired",
                LockReason::Revoked => "revoked",
            }
        ),
    }
}

/// The report of an opened meter in the enforcement state `e`.
pub fn report(opened: &Opened, e: Enforcement) -> UsageReport {
    let state = opened.meter.state();
    let per_unit = state.unit.ticks_per_unit() as f64;
    UsageReport {
        seat: opened.seat.clone(),
        unit: state.unit.as_str(),
        enforcement: enforcement_word(e),
        balance_units: state.balance() as f64 / per_unit,
        used_units: state.used as f64 / per_unit,
        lapsed_units: state.lapsed as f64 / per_unit,
        last_packet: state.last_seq,
        pending_requests: state.pending.len(),
        high_water: state.high_water,
    }
}

/// One run of the product: pays what it owes now and says what is allowed.
pub fn tick(opened: &mut Opened, saved: &Path) -> Result<Enforcement, ClientError> {
    let now = opened.clocks();
    opened.meter.login(now).map_err(|e| meter_error(saved, e))
}

/// What `device usage request` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestOutcome {
    /// 201: new packets; 200: the answer to a request the server knew.
    pub status: u16,
    /// Packets newly applied (seq, units).
    pub applied: Vec<(i64, f64)>,
    /// Packets applied before.
    pub already: Vec<i64>,
    /// Packets refused by the library, with the code.
    pub refused: Vec<String>,
    pub time_synced: bool,
    /// The license's pool after the request.
    pub pool_units: i64,
    pub pool_issued: i64,
    pub usage: UsageReport,
}

/// Asks the server for `units` (0: report and sync time only) and applies the answer.
pub async fn request(
    opened: &mut Opened,
    saved: &Path,
    units: i64,
    partial: bool,
    server: Option<&str>,
    ca: Option<&Path>,
) -> Result<RequestOutcome, ClientError> {
    let server = server
        .map(str::to_owned)
        .or_else(|| opened.server.clone())
        .ok_or_else(|| ClientError::SavedActivation {
            path: saved.to_path_buf(),
            reason: "no server saved: pass --server".into(),
        })?;
    let url = activations_url_with(&server, &format!("/{}/packets", opened.seat))?;
    let (token, _) = pending_request(opened, saved, units, partial)?;
    let client = build_client(ca)?;
    let (status, answer) = send_jose(&client, &url, token).await?;
    if !matches!(status.as_u16(), 200 | 201) {
        if answer_is_revocation(&answer.bytes) {
            opened
                .meter
                .mark_revoked()
                .map_err(|e| meter_error(saved, e))?;
        }
        return Err(refusal(
            status,
            &answer.bytes,
            answer.retry_after,
            url.as_str(),
        ));
    }
    let parsed: PacketsAnswer =
        serde_json::from_slice(&answer.bytes).map_err(|e| ClientError::BadResponse {
            url: url.to_string(),
            reason: format!("not a packets answer: {e}"),
        })?;
    let applied = opened
        .meter
        .apply_answer(&parsed, opened.clocks())
        .map_err(|e| meter_error(saved, e))?;
    let per_unit = opened.meter.state().unit.ticks_per_unit() as f64;
    let mut outcome = RequestOutcome {
        status: status.as_u16(),
        applied: Vec::new(),
        already: Vec::new(),
        refused: Vec::new(),
        time_synced: applied.time_synced,
        pool_units: parsed.pool.units,
        pool_issued: parsed.pool.issued,
        usage: report(opened, opened.meter.status(opened.clocks())),
    };
    for result in applied.packets {
        match result {
            Ok(Applied::New { seq, ticks }) => outcome.applied.push((seq, ticks as f64 / per_unit)),
            Ok(Applied::Already { seq }) => outcome.already.push(seq),
            Err(e) => outcome.refused.push(format!("{}: {e}", e.code())),
        }
    }
    Ok(outcome)
}

/// A signed packet request for `units` and its `jti`, stored as pending before it is sent
/// (the library saves it; over HTTP or in an offline file). If the answer is lost, the next
/// request gets the packets issued for this one again: the server answers packets the
/// device has not applied (at most two) instead of issuing more.
pub fn pending_request(
    opened: &mut Opened,
    saved: &Path,
    units: i64,
    partial: bool,
) -> Result<(String, String), ClientError> {
    let mut random = [0u8; 32];
    rand::fill(&mut random[..]);
    let token = opened
        .meter
        .request(units, partial, random, opened.clocks())
        .map_err(|e| meter_error(saved, e))?;
    Ok((token, seatkeep_device::jws::b64url(&random[..16])))
}

/// Whether a refusal says the license was revoked (the meter then locks for good).
fn answer_is_revocation(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .is_some_and(|code| code == "license_revoked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_replaces_state_and_keeps_the_anchor_apart() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let saved = dir.path().join("scanner.device.json");
        let mut store = FileStore::beside(&saved);
        assert_eq!(store.load()?, None);
        assert_eq!(store.load_anchor()?, 0);
        store.save(b"sealed-1")?;
        store.save_anchor(1)?;
        store.save(b"sealed-2")?;
        store.save_anchor(2)?;
        assert_eq!(store.load()?.as_deref(), Some(&b"sealed-2"[..]));
        assert_eq!(store.load_anchor()?, 2);
        assert!(dir.path().join("scanner.device.json.usage").is_file());
        assert!(
            dir.path()
                .join("scanner.device.json.usage-anchor")
                .is_file()
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 2);
        // A damaged anchor is an error, never a fresh 0 that would accept an old state.
        std::fs::write(dir.path().join("scanner.device.json.usage-anchor"), "x")?;
        assert!(store.load_anchor().is_err());
        Ok(())
    }
}
