//! The load: C keep-alive connections on one current-thread runtime share a list of device
//! numbers; each takes the next one, sends the pre-built activation with that device id and
//! records the answer and its latency. A phase stops when the list is used up or its
//! wall-clock cap has passed (requests in flight are always finished and counted).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

use crate::error::{BenchError, Context, Result};
use crate::http::Connection;

/// Digits of the device number inside a device id.
const DIGITS: usize = 8;
/// A request that takes longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Error messages kept per phase (the rest are only counted).
const KEPT_ERRORS: usize = 5;

/// `POST /api/v1/activations` bytes with a slot for the device number.
pub struct ActivationTemplate {
    bytes: Vec<u8>,
    digits_at: usize,
}

impl ActivationTemplate {
    /// The request for devices `{prefix}NNNNNNNN` of the license of `key_file`.
    pub fn new(addr: SocketAddr, key_file: &str, prefix: &str) -> Result<Self> {
        let key_file = serde_json::to_string(key_file).context("encode key file")?;
        let head = format!("{{\"key_file\":{key_file},\"device_id\":\"{prefix}");
        let tail = "\",\"user_name\":\"Bench User\"}";
        let body_len = head.len() + DIGITS + tail.len();
        let mut bytes = format!(
            "POST /api/v1/activations HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n{head}"
        )
        .into_bytes();
        let digits_at = bytes.len();
        bytes.extend_from_slice(&[b'0'; DIGITS]);
        bytes.extend_from_slice(tail.as_bytes());
        Ok(Self { bytes, digits_at })
    }

    /// Writes the request for device `n` into `out`.
    fn write(&self, n: u32, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        let mut n = n;
        for slot in out[self.digits_at..self.digits_at + DIGITS]
            .iter_mut()
            .rev()
        {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
}

/// The requests of a phase, by device number.
pub enum Requests {
    /// One activation template, the device number written into it.
    Template(ActivationTemplate),
    /// Requests built before the phase (signed ones), the device number their index.
    Prebuilt(Vec<Vec<u8>>),
}

impl Requests {
    fn write(&self, n: u32, out: &mut Vec<u8>) {
        match self {
            Self::Template(template) => template.write(n, out),
            Self::Prebuilt(requests) => {
                out.clear();
                if let Some(request) = requests.get(n as usize) {
                    out.extend_from_slice(request);
                }
            }
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Self::Template(template) => template.bytes.len(),
            Self::Prebuilt(requests) => requests.iter().map(Vec::len).max().unwrap_or(0),
        }
    }
}

impl From<ActivationTemplate> for Requests {
    fn from(template: ActivationTemplate) -> Self {
        Self::Template(template)
    }
}

/// One phase of load.
pub struct Phase {
    /// Name in the report.
    pub name: &'static str,
    pub template: Requests,
    /// Device numbers, in the order they are sent.
    pub devices: Vec<u32>,
    pub time_cap: Duration,
}

/// What happened in a phase.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Time from the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of every answered request, in microseconds.
    pub latencies_us: Vec<u32>,
    /// 201 answers: seats granted.
    pub created: u64,
    /// 200 answers: the device's existing seat.
    pub existing: u64,
    /// 409 `seats_exhausted` answers.
    pub exhausted: u64,
    /// Any other status, by code.
    pub other: BTreeMap<u16, u64>,
    /// Requests without an answer (connection or timeout errors).
    pub errors: u64,
    /// The first few unexpected answers and errors.
    pub messages: Vec<String>,
    /// Device numbers that got a 201.
    pub granted: Vec<u32>,
    /// The wall-clock cap stopped the phase before every device was sent.
    pub capped: bool,
    /// CPU seconds the server used during the phase.
    pub server_cpu: f64,
    /// CPU seconds the load generator used during the phase.
    pub client_cpu: f64,
}

impl Outcome {
    /// Answered requests.
    pub fn answered(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    fn note(&mut self, message: String) {
        if self.messages.len() < KEPT_ERRORS {
            self.messages.push(message);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        self.created += other.created;
        self.existing += other.existing;
        self.exhausted += other.exhausted;
        for (status, count) in other.other {
            *self.other.entry(status).or_default() += count;
        }
        self.errors += other.errors;
        for message in other.messages {
            self.note(message);
        }
        self.granted.extend(other.granted);
        self.capped |= other.capped;
    }
}

/// Runs a phase over `connections` connections to `addr`.
pub async fn run(addr: SocketAddr, connections: usize, phase: Phase) -> Result<Outcome> {
    let phase = Arc::new(phase);
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let conn = Connection::open(addr).await?;
        workers.push(tokio::spawn(worker(
            conn,
            addr,
            Arc::clone(&phase),
            Arc::clone(&next),
            Arc::clone(&barrier),
        )));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut outcome = Outcome::default();
    for handle in workers {
        outcome.merge(handle.await.context("load worker failed")?);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

async fn worker(
    conn: Connection,
    addr: SocketAddr,
    phase: Arc<Phase>,
    next: Arc<AtomicUsize>,
    barrier: Arc<Barrier>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut conn = Some(conn);
    let mut request = Vec::with_capacity(phase.template.capacity());
    barrier.wait().await;
    let deadline = Instant::now() + phase.time_cap;
    loop {
        if Instant::now() >= deadline {
            outcome.capped = next.load(Ordering::Relaxed) < phase.devices.len();
            break;
        }
        let Some(&device) = phase.devices.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        phase.template.write(device, &mut request);
        let open = match conn.take() {
            Some(open) => Ok(open),
            None => Connection::open(addr).await,
        };
        let mut open = match open {
            Ok(open) => open,
            Err(e) => {
                outcome.errors += 1;
                outcome.note(e.to_string());
                continue;
            }
        };
        let started = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, open.send(&request)).await {
            Ok(Ok(response)) => {
                let micros = started.elapsed().as_micros();
                outcome
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                let close = response.close;
                classify(&mut outcome, device, response.status, response.body);
                if !close {
                    conn = Some(open);
                }
            }
            Ok(Err(e)) => {
                outcome.errors += 1;
                outcome.note(format!("{}: {e}", phase.name));
            }
            Err(_) => {
                outcome.errors += 1;
                outcome.note(format!(
                    "{}: no answer within {REQUEST_TIMEOUT:?}",
                    phase.name
                ));
            }
        }
    }
    outcome
}

fn classify(outcome: &mut Outcome, device: u32, status: u16, body: &[u8]) {
    match status {
        201 => {
            outcome.created += 1;
            outcome.granted.push(device);
        }
        200 => outcome.existing += 1,
        409 if contains(body, b"\"seats_exhausted\"") => outcome.exhausted += 1,
        _ => {
            *outcome.other.entry(status).or_default() += 1;
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            outcome.note(format!("HTTP {status}: {snippet}"));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits until `GET /readyz` answers 200.
pub async fn wait_ready(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let request = crate::http::get_request(addr, "/readyz");
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match Connection::open(addr).await {
            Ok(mut conn) => match conn.send(&request).await {
                Ok(response) if response.status == 200 => return Ok(()),
                Ok(response) => last = format!("HTTP {}", response.status),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::new(format!(
        "server not ready after {}s: {last}",
        timeout.as_secs()
    )))
}

/// Latency percentiles and throughput of a phase.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Summary {
    /// Answered requests.
    pub requests: u64,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    /// Answers per second.
    pub per_second: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Server CPU time per answered request, microseconds.
    pub server_cpu_us_per_request: f64,
    /// Cores the server kept busy on average.
    pub server_cores_busy: f64,
    /// Load generator CPU time per answered request, microseconds.
    pub client_cpu_us_per_request: f64,
}

impl Outcome {
    /// Throughput and percentiles (nearest rank).
    pub fn summary(&self) -> Summary {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let pick = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            f64::from(sorted[rank - 1]) / 1000.0
        };
        let seconds = self.elapsed.as_secs_f64();
        let per_request = |cpu: f64| {
            if self.answered() == 0 {
                0.0
            } else {
                cpu * 1e6 / self.answered() as f64
            }
        };
        Summary {
            requests: self.answered(),
            seconds,
            per_second: if seconds > 0.0 {
                self.answered() as f64 / seconds
            } else {
                0.0
            },
            p50_ms: pick(0.50),
            p95_ms: pick(0.95),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
            server_cpu_us_per_request: per_request(self.server_cpu),
            server_cores_busy: if seconds > 0.0 {
                self.server_cpu / seconds
            } else {
                0.0
            },
            client_cpu_us_per_request: per_request(self.client_cpu),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_number_fills_the_slot() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let template = ActivationTemplate::new(addr, "KF\n", "dev-").unwrap();
        let mut out = Vec::new();
        template.write(42, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(body.contains("\"device_id\":\"dev-00000042\""), "{body}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["key_file"], "KF\n");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let outcome = Outcome {
            latencies_us: (1..=100).map(|ms| ms * 1000).collect(),
            elapsed: Duration::from_secs(2),
            ..Outcome::default()
        };
        let s = outcome.summary();
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(s.per_second, 50.0);
    }
}
