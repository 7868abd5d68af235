//! The pusher: a job of every `serve` that sends each license's pending batches to the key
//! file's `federation.url` and applies the acks. One instance pushes a license at a time
//! (the lease in `federation_state`); a failure waits 30 s, doubling to 1 h, with jitter.
//! HTTP runs on a small runtime of the pass's own, never inside a write transaction.

use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;

use super::batch::{self, SignedBatch};
use super::{FederationError, ack, state};
use crate::app::App;
use crate::config::FederationConfig;
use crate::db::schema::{federation_state, licenses};
use crate::jobs::{Job, JobError};
use seatkeep_device::keyfile::Federation;

/// Largest answer read from a provider: an ack is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Batches sent to one license per pass, so one busy license does not starve the others.
const MAX_ROUNDS: usize = 20;
/// First wait after a failure, and the longest.
const BACKOFF_FIRST_SECS: i64 = 30;
const BACKOFF_MAX_SECS: i64 = 3600;

/// What a push of one license did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Pushed {
    /// Nothing was pending.
    UpToDate { acked: i64 },
    /// Batches went out; the provider acknowledged up to `acked`.
    Delivered { sent: i64, acked: i64 },
    /// Another instance holds the lease, or the backoff is not over.
    Waiting,
    /// The push failed; it is retried after the backoff.
    Failed { error: String },
}

/// The pusher job.
#[derive(Debug)]
pub struct Pusher {
    owner: String,
    interval: Duration,
}

impl Pusher {
    pub fn new(config: &FederationConfig) -> Self {
        Self {
            owner: lease_owner(),
            interval: config.interval,
        }
    }
}

/// A name for this process's leases, unique across instances and restarts.
pub fn lease_owner() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        crate::jws::b64url(&rand::random::<[u8; 9]>())
    )
}

impl Job for Pusher {
    fn name(&self) -> &'static str {
        "federation_push"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn run(&self, app: &App) -> Result<(), JobError> {
        for (lic, pushed) in push_all(app, &self.owner, false)? {
            match pushed {
                Pushed::Failed { error } => {
                    tracing::warn!(license = %lic, %error, "federation push failed");
                }
                Pushed::Delivered { sent, acked } => {
                    tracing::info!(license = %lic, sent, acked, "federation events delivered");
                }
                Pushed::UpToDate { .. } | Pushed::Waiting => {}
            }
        }
        Ok(())
    }
}

/// Pushes every license with a federation URL (`force`: ignore the backoff, as `federation
/// flush` does). Blocking.
pub fn push_all(
    app: &App,
    owner: &str,
    force: bool,
) -> Result<Vec<(String, Pushed)>, FederationError> {
    let targets: Vec<(String, Option<String>, i64, Option<i64>)> = licenses::table
        .left_join(federation_state::table)
        .filter(licenses::federation_url.is_not_null())
        .select((
            licenses::id,
            licenses::federation_url,
            licenses::change_seq,
            federation_state::acked_seq.nullable(),
        ))
        .order(licenses::id.asc())
        .load(&mut *app.db.conn()?)?;
    if targets
        .iter()
        .all(|(_, _, last, acked)| acked.unwrap_or(0) >= *last)
    {
        return Ok(targets
            .into_iter()
            .map(|(lic, _, _, acked)| {
                (
                    lic,
                    Pushed::UpToDate {
                        acked: acked.unwrap_or(0),
                    },
                )
            })
            .collect());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FederationError::Push {
            url: String::new(),
            reason: format!("cannot start the HTTP runtime: {e}"),
        })?;
    let ca_file = &app.config.federation.ca_file;
    let ca_file = (!ca_file.as_os_str().is_empty()).then(|| app.config.resolve(ca_file));
    let client = client(&app.config.federation, ca_file.as_ref())?;
    let mut out = Vec::with_capacity(targets.len());
    for (lic, url, last, acked) in targets {
        let Some(url) = url else { continue };
        let acked = acked.unwrap_or(0);
        let pushed = if acked >= last {
            Pushed::UpToDate { acked }
        } else {
            push_license(app, &runtime, &client, owner, &lic, &url, force)?
        };
        out.push((lic, pushed));
    }
    Ok(out)
}

fn push_license(
    app: &App,
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    owner: &str,
    lic: &str,
    url: &str,
    force: bool,
) -> Result<Pushed, FederationError> {
    let now = app.clock.now();
    let timeout = i64::try_from(app.config.federation.timeout.as_secs()).unwrap_or(i64::MAX);
    // Long enough for every round of this pass; a crashed holder's lease simply runs out.
    let until = now.saturating_add(timeout.saturating_mul(MAX_ROUNDS as i64 + 1));
    if !state::take_lease(&app.db, lic, owner, now, until, force)? {
        return Ok(Pushed::Waiting);
    }
    let outcome = send_pending(app, runtime, client, lic, url);
    state::release_lease(&app.db, lic, owner)?;
    match outcome {
        Ok((sent, acked)) => Ok(Pushed::Delivered { sent, acked }),
        Err(FederationError::Db(e)) => Err(FederationError::Db(e)),
        Err(e) => {
            let error = e.to_string();
            state::record_failure(&app.db, lic, &error, app.clock.now(), backoff)?;
            Ok(Pushed::Failed { error })
        }
    }
}

/// Sends batches until the provider holds everything (or [`MAX_ROUNDS`]); returns the
/// events sent and the last acknowledged seq.
fn send_pending(
    app: &App,
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    lic: &str,
    url: &str,
) -> Result<(i64, i64), FederationError> {
    let refuse = |reason: String| FederationError::Push {
        url: url.to_owned(),
        reason,
    };
    let target = Federation {
        url: url.to_owned(),
        grace: None,
        user_data: false,
    };
    if let Some(problem) = target.url_problem() {
        return Err(refuse(problem.to_owned()));
    }
    let (mut sent, mut acked) = (0, 0);
    for _ in 0..MAX_ROUNDS {
        let Some(next) = batch::pending(app, lic, 1)?.into_iter().next() else {
            break;
        };
        let answer = runtime.block_on(post(client, url, &next))?;
        let applied = ack::apply(app, &answer, Some(lic)).map_err(|e| refuse(e.to_string()))?;
        sent += next.last - next.first + 1;
        if applied.acked < next.first {
            // No progress: the provider did not take the batch. (An ack below what it once
            // acknowledged changes nothing here: delivered stays delivered.)
            return Err(refuse(format!(
                "the provider did not take events from seq {}: it acknowledges {}",
                next.first, applied.acked
            )));
        }
        acked = applied.acked;
    }
    Ok((sent, acked))
}

/// POSTs one batch; the answer's body (the ack, not yet verified).
async fn post(
    client: &reqwest::Client,
    url: &str,
    batch: &SignedBatch,
) -> Result<String, FederationError> {
    let fail = |reason: String| FederationError::Push {
        url: url.to_owned(),
        reason,
    };
    let mut response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/jose")
        .body(batch.token.clone())
        .send()
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(error_chain(&e)))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(fail(format!("answer larger than {MAX_ANSWER_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&body);
        return Err(fail(format!(
            "answered {status}: {}",
            crate::notify::render::one_line(&text)
        )));
    }
    String::from_utf8(body).map_err(|_| fail("the answer is not text".into()))
}

/// The HTTP client: rustls with certificate verification (system roots plus `ca_file`), no
/// redirects (a redirect could lead to plain http), the configured timeout.
fn client(
    config: &FederationConfig,
    ca_file: Option<&PathBuf>,
) -> Result<reqwest::Client, FederationError> {
    let setup = |reason: String| FederationError::Push {
        url: String::new(),
        reason,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("seatkeep/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| setup(format!("federation.ca_file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| setup(format!("federation.ca_file {}: {e}", path.display())))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| setup(error_chain(&e)))
}

/// Seconds to wait after the `attempts`-th failure in a row: 30 s doubling to 1 h, plus up
/// to a quarter more at random so instances and licenses do not retry in step.
pub fn backoff(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let base = BACKOFF_FIRST_SECS
        .saturating_mul(2_i64.saturating_pow(exponent))
        .min(BACKOFF_MAX_SECS);
    base + rand::random_range(0..=base / 4)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour_with_jitter() {
        for (attempts, base) in [(1, 30), (2, 60), (3, 120), (8, 3600), (50, 3600)] {
            let wait = backoff(attempts);
            assert!(
                (base..=base + base / 4).contains(&wait),
                "{attempts}: {wait}"
            );
        }
    }
}
