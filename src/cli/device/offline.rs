//! `device offline-request | offline-apply` (DESIGN §11): the reference client's side of
//! offline files, for a device that cannot reach Seatkeep. The request is written to a file
//! an admin carries to `seatkeep offline fulfil`; the response file carried back is applied
//! here. Formats are the device crate's ([`seatkeep_device::offline`]).
//!
//! An offline activation keeps the device key pair in the saved file at once (as `device
//! activate` does), with the key file but no device key yet: `offline-apply` completes it.

use std::path::{Path, PathBuf};

use seatkeep_device::meter::Applied;
use seatkeep_device::offline::{
    self, ActivationRequestClaims, KeyFileRef, OfflineErrorClaims, ResponseKind,
};
use seatkeep_device::{KeyFileClaims, ProviderKey, VerifiedDevice, jws, verify_device_key};
use serde::Serialize;

use super::ClientError;
use super::files::{DeviceState, read_bytes, read_text, saved_json, write_private_json};
use super::usage::{self, meter_error, wall_now};

fn file_error(path: &Path, reason: impl Into<String>) -> ClientError {
    ClientError::OfflineFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What an `offline-request` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RequestWritten {
    /// The request's `jti`.
    pub request: String,
    pub out: PathBuf,
    /// The saved file that `offline-apply` completes or updates.
    pub saved: PathBuf,
}

/// What `offline-request --activate` needs.
#[derive(Debug, Clone)]
pub struct ActivateRequest {
    pub key_file: PathBuf,
    pub device_id: String,
    pub user: String,
    pub saved: PathBuf,
    pub out: PathBuf,
}

/// Writes an activation request signed by the device key, which is made (or taken from an
/// earlier request for the same device in `saved`) and kept in `saved`, mode 0600.
pub fn request_activation(opts: &ActivateRequest) -> Result<RequestWritten, ClientError> {
    let key_file_text = read_text(&opts.key_file, "cannot read key file")?;
    let claims =
        key_file_claims(&key_file_text).map_err(|reason| file_error(&opts.key_file, reason))?;
    let key_file = KeyFileRef::of(&key_file_text, &claims.lic, claims.seq)
        .map_err(|e| file_error(&opts.key_file, e.to_string()))?;
    let state = DeviceState {
        server: None,
        device_id: Some(opts.device_id.clone()),
        device_secret_key: Some(device_secret(&opts.saved, &opts.device_id)),
    };
    let key = state
        .signing_key(&opts.saved)?
        .ok_or_else(|| file_error(&opts.saved, "no device key"))?;
    let mut random = [0u8; 32];
    rand::fill(&mut random[..]);
    let request = ActivationRequestClaims {
        iss: opts.device_id.clone(),
        // The key file names the server it is bound to: that is the audience.
        aud: claims.server.id.clone(),
        jti: jws::b64url(&random[..16]),
        iat: wall_now(),
        nonce: jws::b64url(&random[16..]),
        name: opts.user.clone(),
        device_info: None,
        key_file,
    };
    let token = offline::sign_activation_request(&key, &request);
    // The pending saved file: the key pair and the key file, no seat yet. A file that
    // already holds this device's seat is kept as it is (the same key signed the request).
    if !holds_seat(&opts.saved, &opts.device_id) {
        let pending = serde_json::json!({ "key_file": key_file_text });
        write_private_json(&opts.saved, &saved_json(&pending, &state)?)?;
    }
    write_request(&opts.out, &token)?;
    Ok(RequestWritten {
        request: request.jti,
        out: opts.out.clone(),
        saved: opts.saved.clone(),
    })
}

/// Whether `saved` is a complete activation of `device_id`.
fn holds_seat(saved: &Path, device_id: &str) -> bool {
    super::files::load_saved(saved)
        .is_ok_and(|(_, state)| state.device_id.as_deref() == Some(device_id))
}

/// The key file's claims, read without verifying: the device only names the file it holds,
/// the server checks it.
fn key_file_claims(text: &str) -> Result<KeyFileClaims, String> {
    let compact = seatkeep_device::keyfile::dearmor(text.as_bytes()).map_err(|e| e.to_string())?;
    let parsed = jws::parse_compact(&compact).map_err(|e| e.to_string())?;
    KeyFileClaims::from_json(&parsed.payload).map_err(|e| e.to_string())
}

/// The device key seed kept in `saved` for `device_id` (a pending or complete file), or a
/// new one: asking again must not change the key the server will register.
fn device_secret(saved: &Path, device_id: &str) -> String {
    read_text(saved, "cannot read saved activation")
        .ok()
        .and_then(|text| serde_json::from_str::<DeviceState>(&text).ok())
        .filter(|state| state.device_id.as_deref() == Some(device_id))
        .and_then(|state| state.device_secret_key)
        .unwrap_or_else(|| jws::b64url(&rand::random::<[u8; 32]>()))
}

/// Writes a packet request for `units` from the saved metered activation; the meter keeps it
/// pending (as for HTTP), so a lost response file costs nothing: the next request is
/// answered with the packets issued for this one.
pub fn request_packets(
    saved: &Path,
    provider_key: &Path,
    units: i64,
    partial: bool,
    out: &Path,
) -> Result<RequestWritten, ClientError> {
    let mut opened = usage::open(saved, provider_key)?;
    let (token, jti) = usage::pending_request(&mut opened, saved, units, partial)?;
    write_request(out, &token)?;
    Ok(RequestWritten {
        request: jti,
        out: out.to_path_buf(),
        saved: saved.to_path_buf(),
    })
}

fn write_request(out: &Path, token: &str) -> Result<(), ClientError> {
    std::fs::write(out, offline::request_file([token])).map_err(|source| ClientError::Io {
        action: "cannot write",
        path: out.to_path_buf(),
        source,
    })
}

/// One response line and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct LineApplied {
    pub line: usize,
    /// `key_file`, `device_key`, `packet`, `time`, `error`, `unknown`.
    pub kind: &'static str,
    pub outcome: String,
    /// The stable code of an error line, or of a packet the library refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Applies a response file to the saved activation: a device key for this device completes
/// (or renews) it, packets and the time token go to its meter.
pub fn apply(
    response: &Path,
    saved: &Path,
    provider_key: &Path,
) -> Result<Vec<LineApplied>, ClientError> {
    let bytes = read_bytes(response, "cannot read response file")?;
    let lines = offline::read_response_file(&bytes)
        .map_err(|e| file_error(response, format!("not a response file: {e}")))?;
    let provider_pem = read_bytes(provider_key, "cannot read provider key")?;
    let provider = ProviderKey::from_pem(&provider_pem)
        .map_err(|e| file_error(provider_key, e.to_string()))?;
    let text = read_text(saved, "cannot read saved activation")?;
    let mut current: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ClientError::SavedActivation {
            path: saved.to_path_buf(),
            reason: e.to_string(),
        })?;
    let state: DeviceState =
        serde_json::from_value(current.clone()).map_err(|e| ClientError::SavedActivation {
            path: saved.to_path_buf(),
            reason: e.to_string(),
        })?;
    let device_id = state
        .device_id
        .clone()
        .ok_or_else(|| ClientError::SavedActivation {
            path: saved.to_path_buf(),
            reason: "it does not say which device it is for".into(),
        })?;
    let mut report = Vec::with_capacity(lines.len());
    let key_files: Vec<&str> = lines
        .iter()
        .filter(|(_, kind)| *kind == ResponseKind::KeyFile)
        .map(|(line, _)| line.as_str())
        .collect();
    // Key files and device keys first: the meter opens on the activation they complete.
    for (index, (line, kind)) in lines.iter().enumerate() {
        let entry = |kind, outcome: String, code| LineApplied {
            line: index + 1,
            kind,
            outcome,
            code,
        };
        match kind {
            ResponseKind::KeyFile => report.push(entry(
                "key_file",
                "the license's current key file".into(),
                None,
            )),
            ResponseKind::DeviceKey => {
                let outcome =
                    match adopt_device_key(&provider, &mut current, line, &key_files, &device_id) {
                        Ok(verified) => format!(
                            "seat {} for device {}, user {:?}, key generation {}",
                            verified.seat, verified.device, verified.user, verified.generation
                        ),
                        Err(why) => format!("not taken: {why}"),
                    };
                report.push(entry("device_key", outcome, None));
            }
            ResponseKind::Error => {
                let claims = error_claims(line);
                report.push(entry(
                    "error",
                    claims.as_ref().map_or_else(
                        || "an error line that does not read".to_owned(),
                        |c| format!("request {} refused: {}", c.req, c.detail),
                    ),
                    claims.map(|c| c.code),
                ));
            }
            ResponseKind::Unknown => {
                report.push(entry("unknown", "unknown line, skipped".into(), None));
            }
            ResponseKind::Packet | ResponseKind::Time => {}
        }
    }
    if report
        .iter()
        .any(|r| r.kind == "device_key" && r.outcome.starts_with("seat "))
    {
        write_private_json(saved, &saved_json(&current, &state)?)?;
    }
    apply_meter_lines(&lines, saved, provider_key, &mut report)?;
    report.sort_by_key(|r| r.line);
    Ok(report)
}

/// Takes a device key into the saved activation when it verifies for this device with the
/// provider key and one of the response's key files (or the one kept).
fn adopt_device_key(
    provider: &ProviderKey,
    current: &mut serde_json::Value,
    device_key: &str,
    key_files: &[&str],
    device_id: &str,
) -> Result<VerifiedDevice, String> {
    let kept = current
        .get("key_file")
        .and_then(|k| k.as_str())
        .map(str::to_owned);
    let mut last_error = "no key file to verify it with".to_owned();
    for key_file in key_files.iter().copied().chain(kept.as_deref()) {
        match verify_device_key(provider, key_file, device_key, device_id, None, wall_now()) {
            Ok(verified) => {
                let answer = seatkeep_device::api::ActivationAnswer {
                    seat: verified.seat.clone(),
                    device_key: device_key.to_owned(),
                    key_file: key_file.to_owned(),
                    state: "active".into(),
                    expires_at: verified.expires_at,
                    return_token: None,
                    overage: current
                        .get("overage")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false),
                    generation: verified.generation,
                };
                let value = serde_json::to_value(&answer).map_err(|e| e.to_string())?;
                if let (Some(object), serde_json::Value::Object(fields)) =
                    (current.as_object_mut(), value)
                {
                    object.extend(fields);
                }
                return Ok(verified);
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(last_error)
}

/// An error line's claims. Read without verifying: it only explains a refusal and grants
/// nothing, so a forged one can at most show a wrong reason.
fn error_claims(line: &str) -> Option<OfflineErrorClaims> {
    let parsed = jws::parse_compact(line).ok()?;
    serde_json::from_slice(&parsed.payload).ok()
}

/// Applies the time token, then the packets, through the meter (which verifies each with the
/// server key from the key file).
fn apply_meter_lines(
    lines: &[(String, ResponseKind)],
    saved: &Path,
    provider_key: &Path,
    report: &mut Vec<LineApplied>,
) -> Result<(), ClientError> {
    let wanted = |k: &ResponseKind| matches!(k, ResponseKind::Packet | ResponseKind::Time);
    if !lines.iter().any(|(_, kind)| wanted(kind)) {
        return Ok(());
    }
    let mut opened = usage::open(saved, provider_key)?;
    let per_unit = opened.meter.state().unit.ticks_per_unit() as f64;
    let unit = opened.meter.state().unit.as_str();
    // The time token first, so the packets are checked against a synced clock.
    for (index, (line, kind)) in lines.iter().enumerate() {
        if *kind != ResponseKind::Time {
            continue;
        }
        let synced = opened
            .meter
            .apply_time(line, opened.clocks())
            .map_err(|e| meter_error(saved, e))?;
        report.push(LineApplied {
            line: index + 1,
            kind: "time",
            outcome: if synced {
                "clock synced"
            } else {
                "not synced (not for a pending request)"
            }
            .into(),
            code: None,
        });
    }
    for (index, (line, kind)) in lines.iter().enumerate() {
        if *kind != ResponseKind::Packet {
            continue;
        }
        let applied = opened
            .meter
            .apply_packet(line, opened.clocks())
            .map_err(|e| meter_error(saved, e))?;
        let (outcome, code) = match applied {
            Ok(Applied::New { seq, ticks }) => (
                format!("packet {seq}: {} {unit} applied", ticks as f64 / per_unit),
                None,
            ),
            Ok(Applied::Already { seq }) => (format!("packet {seq}: applied before"), None),
            Err(e) => (format!("packet refused: {e}"), Some(e.code().to_string())),
        };
        report.push(LineApplied {
            line: index + 1,
            kind: "packet",
            outcome,
            code,
        });
    }
    Ok(())
}
