//! `device activate` over HTTP: one `POST /api/v1/activations` round trip with the device
//! crate's wire types, the answer saved to a 0600 JSON file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use seatkeep_device::api::{ACTIVATIONS_PATH, ActivationBody};
use seatkeep_device::problem::Problem;
use serde::Serialize;

use super::ClientError;
use super::files::{
    DeviceState, SavedActivation, load_saved, read_bytes, read_text, saved_json, write_private_json,
};

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from the server.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// What `seatkeep device activate` needs.
#[derive(Debug, Clone)]
pub struct ActivateOptions {
    /// Base URL of the Seatkeep server, e.g. `https://seatkeep.corp.example`.
    pub server: String,
    /// The license's key file (armored or bare).
    pub key_file: PathBuf,
    /// Device id.
    pub device_id: String,
    /// User name.
    pub user: String,
    /// Where to save the answer; default `./<device_id>.device.json`.
    pub out: Option<PathBuf>,
    /// Extra PEM root certificate(s) trusted for HTTPS.
    pub ca: Option<PathBuf>,
    /// Register a device key pair (the default): reissue and return then need a proof signed
    /// by it, so nobody who only knows this device's id can change its seat.
    pub device_key: bool,
}

impl ActivateOptions {
    /// Where the answer is saved: `out`, or `./<device_id>.device.json`.
    pub fn out_path(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.device.json", self.device_id)))
    }
}

/// The result of a successful activation.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationOutcome {
    /// Seat id.
    pub seat: String,
    /// Seat state (`active`).
    pub state: String,
    /// True when a new seat was taken (HTTP 201), false for the same device again (HTTP 200).
    pub created: bool,
    /// Device key generation.
    pub generation: i64,
    /// End of the license term.
    pub expires_at: Option<i64>,
    /// Granted under the overage allowance.
    pub overage: bool,
    /// Where the answer was saved.
    pub saved_to: PathBuf,
}

/// Activates a seat: sends the key file, device id, user name and (by default) the public
/// half of the device's own key, saves the answer with the key (mode 0600) and returns the
/// seat and its state. The key is saved (with the key file, no seat yet) before the request
/// is sent, so a retry after a lost answer sends the same key. A device key saved by an earlier activation of the same device in the
/// same file is used again: a repeat activation must carry the key the seat was made with.
///
/// Needs a rustls crypto provider; if none is installed yet, aws-lc-rs is installed.
pub async fn activate(opts: &ActivateOptions) -> Result<ActivationOutcome, ClientError> {
    let key_file = read_text(&opts.key_file, "cannot read key file")?;
    let url = activations_url(&opts.server)?;
    let client = build_client(opts.ca.as_deref())?;
    let out = opts.out_path();
    let state = DeviceState {
        server: Some(opts.server.clone()),
        device_id: Some(opts.device_id.clone()),
        device_secret_key: if opts.device_key {
            Some(device_secret(&out, &opts.device_id)?)
        } else {
            None
        },
    };
    let device_jwk = state
        .signing_key(&out)?
        .map(|key| seatkeep_device::DeviceJwk::from_key(&key.verifying_key()));
    // The key pair is saved before the request: if the answer is lost the seat exists with
    // this key, and only this key can take it up again (another is 409
    // device_key_mismatch). A file holding a complete activation stays as it is (for this
    // device it holds this key already).
    let fresh = !out.exists();
    if state.device_secret_key.is_some() && load_saved(&out).is_err() {
        let pending = serde_json::json!({ "key_file": key_file });
        write_private_json(&out, &saved_json(&pending, &state)?)?;
    }
    let request = ActivationBody {
        key_file,
        device_id: opts.device_id.clone(),
        user_name: opts.user.clone(),
        device_info: None,
        device_jwk,
    };
    let (status, body) = send_json(&client, &url, &request).await?;
    if status != reqwest::StatusCode::OK && status != reqwest::StatusCode::CREATED {
        // A refusal (4xx) took no seat: a pending file this run made goes again. A 5xx (a
        // proxy's 502, a commit that failed late) or a timeout may have taken one, and one
        // left by an earlier run whose answer was lost may too: those stay.
        let refused = status.is_client_error() && status != reqwest::StatusCode::REQUEST_TIMEOUT;
        if fresh
            && refused
            && out.exists()
            && let Err(e) = std::fs::remove_file(&out)
        {
            tracing::debug!(error = %e, path = %out.display(), "cannot remove the pending activation");
        }
        return Err(refusal(status, &body.bytes, body.retry_after, url.as_str()));
    }
    let (saved, value) = parse_activation(&body.bytes, url.as_str())?;
    // A repeat answer carries no return token: keep the one from the 201.
    let mut value = value;
    if saved.return_token.is_none()
        && let Ok((previous, _)) = load_saved(&out)
        && previous.seat == saved.seat
        && let (Some(token), Some(object)) = (previous.return_token, value.as_object_mut())
    {
        object.insert("return_token".into(), token.into());
    }
    write_private_json(&out, &saved_json(&value, &state)?)?;
    Ok(ActivationOutcome {
        seat: saved.seat,
        state: saved.state,
        created: status == reqwest::StatusCode::CREATED,
        generation: saved.generation,
        expires_at: saved.expires_at,
        overage: saved.overage,
        saved_to: out,
    })
}

/// The device key seed saved for `device_id` in `out` (a complete activation, or the
/// pending file of an activation whose answer never came), or a new one.
fn device_secret(out: &Path, device_id: &str) -> Result<String, ClientError> {
    if let Ok(text) = read_text(out, "cannot read saved activation")
        && let Ok(state) = serde_json::from_str::<DeviceState>(&text)
        && state.device_id.as_deref() == Some(device_id)
        && let Some(secret) = state.device_secret_key
    {
        return Ok(secret);
    }
    Ok(seatkeep_device::jws::b64url(&rand::random::<[u8; 32]>()))
}

/// An answer's status, body and `Retry-After`.
pub(super) struct Answer {
    pub bytes: Vec<u8>,
    pub retry_after: Option<u64>,
}

/// POSTs `body` as JSON to `url` and reads the answer (capped).
pub(super) async fn send_json<T: Serialize>(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: &T,
) -> Result<(reqwest::StatusCode, Answer), ClientError> {
    send(client.post(url.clone()).json(body), url).await
}

/// POSTs a compact JWS (`application/jose`, DESIGN §10.3) to `url` and reads the answer.
pub(super) async fn send_jose(
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: String,
) -> Result<(reqwest::StatusCode, Answer), ClientError> {
    let request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/jose")
        .body(token);
    send(request, url).await
}

/// Sends a request and reads the status, capped body and `Retry-After` of its answer.
async fn send(
    request: reqwest::RequestBuilder,
    url: &reqwest::Url,
) -> Result<(reqwest::StatusCode, Answer), ClientError> {
    let response = request.send().await.map_err(|source| ClientError::Http {
        url: url.to_string(),
        source,
    })?;
    let status = response.status();
    let retry_after = retry_after(&response);
    let bytes = read_body(response, url.as_str()).await?;
    Ok((status, Answer { bytes, retry_after }))
}

/// `{server}/api/v1/activations`, refusing anything but http(s).
pub(super) fn activations_url(server: &str) -> Result<reqwest::Url, ClientError> {
    activations_url_with(server, "")
}

/// `{server}/api/v1/activations{suffix}`, refusing anything but http(s).
pub(super) fn activations_url_with(
    server: &str,
    suffix: &str,
) -> Result<reqwest::Url, ClientError> {
    let bad = |reason: String| ClientError::BadUrl {
        url: server.to_owned(),
        reason,
    };
    let base = server.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{ACTIVATIONS_PATH}{suffix}"))
        .map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("use http://HOST[:PORT] or https://HOST[:PORT]".into()));
    }
    Ok(url)
}

/// An HTTP client with the request timeout and, with `ca`, extra trusted roots.
pub(super) fn build_client(ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    // The binary installs aws-lc-rs at start; this covers library callers that did not.
    // An error only means a provider is already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("seatkeep-device/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca {
        for cert in read_ca(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ClientError::Setup(error_chain(&e)))
}

/// The certificates of a PEM bundle; at least one.
fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem_bytes = read_bytes(path, "cannot read --ca")?;
    let ca_error = |reason: String| ClientError::Ca {
        path: path.to_path_buf(),
        reason,
    };
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem_bytes).map_err(|e| ca_error(error_chain(&e)))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// `Retry-After` in seconds, when the server sent one.
fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the answer body, refusing more than [`MAX_RESPONSE_BYTES`].
async fn read_body(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| ClientError::Http {
        url: url.to_owned(),
        source,
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::BadResponse {
                url: url.to_owned(),
                reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A non-success answer as an error: the problem's code and detail, or the raw status.
pub(super) fn refusal(
    status: reqwest::StatusCode,
    body: &[u8],
    retry_after: Option<u64>,
    url: &str,
) -> ClientError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => ClientError::Refused {
            status: status.as_u16(),
            detail: problem
                .detail
                .or(problem.title)
                .unwrap_or_else(|| status.to_string()),
            code: problem.code,
            retry_after,
        },
        Err(_) => ClientError::BadResponse {
            url: url.to_owned(),
            reason: format!(
                "HTTP {status} without a problem+json body: {}",
                snippet(body)
            ),
        },
    }
}

/// The success answer, as typed fields and as the JSON value saved verbatim.
pub(super) fn parse_activation(
    body: &[u8],
    url: &str,
) -> Result<(SavedActivation, serde_json::Value), ClientError> {
    let bad = |reason: String| ClientError::BadResponse {
        url: url.to_owned(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("not JSON ({e}): {}", snippet(body))))?;
    let saved: SavedActivation = serde_json::from_value(value.clone())
        .map_err(|e| bad(format!("not an activation: {e}")))?;
    if saved.device_key.is_empty() || saved.key_file.is_empty() {
        return Err(bad("the activation has no device key or key file".into()));
    }
    Ok((saved, value))
}

/// The start of a body for error messages, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None if line.is_empty() => "(empty body)".into(),
        None => line,
    }
}

/// The causes of an HTTP error, without reqwest's "error sending request for url" preamble.
pub(super) fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    if error.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cause = error.source();
    while let Some(err) = cause {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = err.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}
