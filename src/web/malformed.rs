//! Malformed and broken requests, logged without flooding the log: actix-http reports each
//! one at ERROR with no client address (a log flood on demand). Its h1 lines are kept out of
//! the log output (`init_logging`), this layer tallies them per client address instead, and
//! [`flush`] (a job, every second) writes one WARN line per address and minute with a count.
//! Never a body: only actix-http's one-line reason.
//!
//! The address comes from the connection's task: `on_connect` runs in the task that then
//! drives the connection, so its task id names the peer for whatever that task logs.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use tokio::task::Id;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// One line per address within this time.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tallied separately; beyond, they share one tally (an address spray must not
/// grow memory).
const MAX_PEERS: usize = 1024;
/// The actix-http module whose lines this module takes over.
pub const ACTIX_H1_TARGET: &str = "actix_http::h1";

/// Peer address of each connection task.
static PEERS: LazyLock<Mutex<HashMap<Id, IpAddr>>> = LazyLock::new(Default::default);
/// Malformed requests per address (`None`: unknown or beyond [`MAX_PEERS`]).
static TALLY: LazyLock<Mutex<HashMap<Option<IpAddr>, Tally>>> = LazyLock::new(Default::default);

#[derive(Debug)]
struct Tally {
    /// Not yet in the log.
    count: u64,
    reason: String,
    /// When the last line for this address was written; `None`: never.
    logged: Option<Instant>,
}

/// Removes a connection's entry from [`PEERS`] when the connection ends.
struct PeerEntry(Id);

impl Drop for PeerEntry {
    fn drop(&mut self) {
        PEERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// The TCP stream under a connection's I/O object (plain or TLS), as `on_connect` gets it.
pub fn tcp_stream(io: &dyn Any) -> Option<&TcpStream> {
    if let Some(tcp) = io.downcast_ref::<TcpStream>() {
        Some(tcp)
    } else {
        io.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
            .map(|tls| tls.get_ref().0)
    }
}

/// `HttpServer::on_connect`: remembers the peer of the connection's task.
pub fn on_connect(io: &dyn Any, ext: &mut Extensions) {
    let peer = tcp_stream(io).and_then(|tcp| tcp.peer_addr().ok());
    if let (Some(peer), Some(task)) = (peer, tokio::task::try_id()) {
        PEERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task, peer.ip());
        ext.insert(PeerEntry(task));
    }
}

/// The tracing layer that tallies actix-http's h1 lines.
pub fn layer<S: Subscriber>() -> impl Layer<S> {
    Tallier
}

struct Tallier;

impl<S: Subscriber> Layer<S> for Tallier {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > Level::WARN || !meta.target().starts_with(ACTIX_H1_TARGET) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let peer = tokio::task::try_id().and_then(|task| {
            PEERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&task)
                .copied()
        });
        record(peer, message.0);
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

fn record(peer: Option<IpAddr>, reason: String) {
    let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    let key = if tally.len() < MAX_PEERS || tally.contains_key(&peer) {
        peer
    } else {
        None
    };
    let entry = tally.entry(key).or_insert_with(|| Tally {
        count: 0,
        reason: String::new(),
        logged: None,
    });
    entry.count += 1;
    entry.reason = reason;
}

/// Writes the due lines: an address's first malformed request at once, then at most one
/// line a minute with the count since the last; forgets addresses quiet for a minute.
pub fn flush() {
    let now = Instant::now();
    let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    tally.retain(|peer, entry| {
        let due = entry
            .logged
            .is_none_or(|at| now.duration_since(at) >= WINDOW);
        if !due {
            return true;
        }
        if entry.count == 0 {
            return false;
        }
        let client = peer.map_or_else(|| "other".to_owned(), |ip| ip.to_string());
        tracing::warn!(
            target: "seatkeep::malformed",
            %client,
            count = entry.count,
            last_reason = %entry.reason,
            "malformed or broken requests (counted per address, one line a minute)"
        );
        entry.count = 0;
        entry.logged = Some(now);
        true
    });
}
