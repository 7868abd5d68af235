//! `device activate` over HTTP: one `POST /api/v1/activations` round trip with the device
//! crate's wire types, the answer saved to a 0600 JSON file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use seatkeep_device::api::{ACTIVATIONS_PATH, ActivationBody};
use seatkeep_device::problem::Problem;
use serde::Serialize;

use super::ClientError;
use super::files::{SavedActivation, read_bytes, read_text, write_private_json};

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

/// Activates a seat: sends the key file, device id and user name to the server, saves the
/// answer (mode 0600: it holds the return token) and returns the seat and its state.
///
/// Needs a rustls crypto provider; if none is installed yet, aws-lc-rs is installed.
pub async fn activate(opts: &ActivateOptions) -> Result<ActivationOutcome, ClientError> {
    let key_file = read_text(&opts.key_file, "cannot read key file")?;
    let url = activations_url(&opts.server)?;
    let client = build_client(opts.ca.as_deref())?;
    let request = ActivationBody {
        key_file,
        device_id: opts.device_id.clone(),
        user_name: opts.user.clone(),
        device_info: None,
    };
    let http_error = |source| ClientError::Http {
        url: url.to_string(),
        source,
    };
    let response = client
        .post(url.clone())
        .json(&request)
        .send()
        .await
        .map_err(http_error)?;
    let status = response.status();
    let retry_after = retry_after(&response);
    let body = read_body(response, url.as_str()).await?;
    if status != reqwest::StatusCode::OK && status != reqwest::StatusCode::CREATED {
        return Err(refusal(status, &body, retry_after, url.as_str()));
    }
    let (saved, value) = parse_activation(&body, url.as_str())?;
    let out = opts.out_path();
    write_private_json(&out, &value)?;
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

/// `{server}/api/v1/activations`, refusing anything but http(s).
fn activations_url(server: &str) -> Result<reqwest::Url, ClientError> {
    let bad = |reason: String| ClientError::BadUrl {
        url: server.to_owned(),
        reason,
    };
    let base = server.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{ACTIVATIONS_PATH}"))
        .map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("use http://HOST[:PORT] or https://HOST[:PORT]".into()));
    }
    Ok(url)
}

/// An HTTP client with the request timeout and, with `ca`, extra trusted roots.
fn build_client(ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
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
fn refusal(
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
fn parse_activation(
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
