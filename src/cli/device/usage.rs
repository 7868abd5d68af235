//! `device usage status|tick|request`: the reference client's metered side. It is the
//! device crate's [`Meter`] over the saved activation, with its sealed state kept beside it
//! (`FILE.meter`, written atomically, and the save counter in `FILE.meter.anchor`), plus the
//! packet request over HTTP. Each run is a new session of the product: a `device_hour` tick
//! charges the next minute in advance, so every `tick` costs one minute.

use std::path::{Path, PathBuf};
use std::time::Instant;

use seatkeep_device::meter::wire::PacketsAnswer;
use seatkeep_device::meter::{Clocks, Enforcement, Meter, StateStore};
use seatkeep_device::{ProviderKey, verify_device_key};
use serde::Serialize;

use super::ClientError;
use super::files::load_saved;
use super::http::{activations_url_with, build_client, refusal};

/// The state beside a saved activation.
struct FileStore {
    state: PathBuf,
    anchor: PathBuf,
}

impl FileStore {
    fn beside(saved: &Path) -> Self {
        let name = |suffix: &str| {
            let mut path = saved.as_os_str().to_owned();
            path.push(suffix);
            PathBuf::from(path)
        };
        Self {
            state: name(".meter"),
            anchor: name(".meter.anchor"),
        }
    }
}

fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes through a temporary file and a rename, so a crash leaves the old or the new.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl StateStore for FileStore {
    type Error = std::io::Error;
    fn load(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        read_optional(&self.state)
    }
    fn save(&mut self, sealed: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.state, sealed)
    }
    fn load_anchor(&mut self) -> std::io::Result<u64> {
        let text = read_optional(&self.anchor)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&text).trim().parse().unwrap_or(0))
    }
    fn save_anchor(&mut self, writes: u64) -> std::io::Result<()> {
        write_atomically(&self.anchor, writes.to_string().as_bytes())
    }
}

/// What the commands print.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    pub seat: String,
    /// `active`, `low`, or `locked:REASON`.
    pub enforcement: String,
    pub unit: String,
    /// Units left (whole units).
    pub balance: i64,
    /// Units used in all.
    pub used: i64,
    /// Highest packet applied.
    pub last_seq: i64,
    /// `request`: the packets the answer carried and the pool figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<seatkeep_device::meter::wire::PoolFigures>,
}

/// What a command does with the opened meter.
pub enum Action {
    Status,
    Tick,
    /// `units` `None`: the key file's default packet size.
    Request {
        units: Option<i64>,
        partial: bool,
    },
}

/// Where the saved activation is and how to reach the server.
pub struct UsageOptions {
    pub saved: PathBuf,
    pub provider_key: PathBuf,
    pub server: Option<String>,
    pub ca: Option<PathBuf>,
}

fn meter_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Setup(format!("usage state: {e}"))
}

/// Opens the meter over the verified chain and runs `action`.
pub async fn run(opts: &UsageOptions, action: Action) -> Result<UsageReport, ClientError> {
    let started = Instant::now();
    let clocks = || Clocks {
        wall: crate::clock::default_source().now(),
        mono_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let (answer, state) = load_saved(&opts.saved)?;
    let bad = |reason: &str| ClientError::SavedActivation {
        path: opts.saved.clone(),
        reason: reason.to_owned(),
    };
    let key = state
        .signing_key(&opts.saved)?
        .ok_or_else(|| bad("has no device key: a metered seat needs one"))?;
    let device_id = state
        .device_id
        .clone()
        .ok_or_else(|| bad("does not say the device id"))?;
    let pem =
        crate::cli::read_file(&opts.provider_key).map_err(|e| ClientError::Setup(e.to_string()))?;
    let provider = ProviderKey::from_pem(&pem).map_err(meter_error)?;
    let verified = verify_device_key(
        &provider,
        &answer.key_file,
        &answer.device_key,
        &device_id,
        None,
        clocks().wall,
    )
    .map_err(meter_error)?;
    let mut meter =
        Meter::open(&verified, key, FileStore::beside(&opts.saved)).map_err(meter_error)?;
    let (mut applied, mut pool) = (None, None);
    let enforcement = match action {
        Action::Status => meter.login(clocks()).map_err(meter_error)?,
        Action::Tick => meter.tick(clocks()).map_err(meter_error)?,
        Action::Request { units, partial } => {
            let units = units.unwrap_or_else(|| {
                verified
                    .key_file_claims
                    .meter
                    .as_ref()
                    .map_or(24, |m| m.packet.default)
            });
            let token = meter
                .request(units, partial, rand::random(), clocks())
                .map_err(meter_error)?;
            let server = opts
                .server
                .clone()
                .or(state.server.clone())
                .ok_or_else(|| bad("does not say the server: pass --server"))?;
            let answer = send(&server, opts.ca.as_deref(), &answer.seat, token).await?;
            let report = meter.apply_answer(&answer, clocks()).map_err(meter_error)?;
            if let Some(Err(e)) = report.packets.iter().find(|r| r.is_err()) {
                return Err(meter_error(e));
            }
            applied = Some(report.packets.len());
            pool = Some(answer.pool);
            meter.status(clocks())
        }
    };
    let reported = meter.state().reported();
    Ok(UsageReport {
        seat: answer.seat,
        enforcement: match enforcement {
            Enforcement::Active => "active".into(),
            Enforcement::Low => "low".into(),
            Enforcement::Locked(reason) => format!("locked:{reason:?}"),
        },
        unit: meter.state().unit.as_str().to_owned(),
        balance: reported.balance,
        used: reported.used,
        last_seq: reported.last_seq,
        applied,
        pool,
    })
}

/// POSTs the packet request (`application/jose`) and reads the answer.
async fn send(
    server: &str,
    ca: Option<&Path>,
    seat: &str,
    token: String,
) -> Result<PacketsAnswer, ClientError> {
    let url = activations_url_with(server, &format!("/{seat}/packets"))?;
    let client = build_client(ca)?;
    let request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/jose")
        .body(token);
    let (status, answer) = super::http::send(request, &url).await?;
    if !status.is_success() {
        return Err(refusal(
            status,
            &answer.bytes,
            answer.retry_after,
            url.as_str(),
        ));
    }
    serde_json::from_slice(&answer.bytes).map_err(|e| ClientError::BadResponse {
        url: url.to_string(),
        reason: format!("not a packets answer: {e}"),
    })
}
