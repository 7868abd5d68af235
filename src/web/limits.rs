//! Limits that keep one slow or greedy client from holding the server: a deadline for the
//! request body, caps on open connections and on requests in progress per client address,
//! and the process's descriptor limit.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage as _, ResponseError};
use futures_core::Stream;

use super::errors::ApiError;

/// What the middlewares of this module enforce; shared by all workers.
#[derive(Debug)]
pub struct Limits {
    body_timeout: Duration,
    per_client: usize,
    in_progress: Mutex<HashMap<IpAddr, usize>>,
}

impl Limits {
    pub fn new(body_timeout: Duration, per_client: usize) -> Self {
        Self {
            body_timeout,
            per_client,
            in_progress: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more request from `ip`, or `None` when it has `per_client` already.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(ip).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            limits: Arc::clone(self),
            ip,
        })
    }
}

/// Open connections per client address (`server.max_connections_per_client`), counted from
/// the moment a connection is accepted, so idle connections and unfinished heads count too.
/// IPv6 addresses are grouped by /64 (one host usually has a whole /64). Peers in
/// `server.trusted_proxies` are not capped: all their clients share their address.
#[derive(Debug)]
pub struct ConnectionCap {
    per_client: usize,
    trusted: Vec<super::rate::Cidr>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionCap {
    pub fn new(per_client: usize, trusted: Vec<super::rate::Cidr>) -> Self {
        Self {
            per_client,
            trusted,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// `HttpServer::on_connect`: counts the connection for its address while it lives (the
    /// count is held in the connection's extensions); a connection over the cap is shut down
    /// at once (`shutdown(2)` on the socket: actix-http reads the end of the stream and drops
    /// the connection before reading anything).
    pub fn on_connect(
        self: &Arc<Self>,
        io: &dyn std::any::Any,
        ext: &mut actix_web::dev::Extensions,
    ) {
        let Some(tcp) = super::malformed::tcp_stream(io) else {
            return;
        };
        let Ok(peer) = tcp.peer_addr() else {
            return;
        };
        if self.trusted.iter().any(|c| c.contains(peer.ip())) {
            return;
        }
        let (slot, over) = self.open(client_group(peer.ip()));
        ext.insert(slot);
        if over {
            if let Err(e) = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Both) {
                tracing::debug!(error = %e, "cannot shut down a connection over the per-client cap");
            }
            tracing::debug!(client = %peer.ip(), "connection over server.max_connections_per_client closed");
        }
    }

    /// Counts one more connection of `group`; `true` when that is more than the cap.
    fn open(self: &Arc<Self>, group: IpAddr) -> (ConnectionSlot, bool) {
        let mut map = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(group).or_insert(0);
        *count += 1;
        let over = *count > self.per_client;
        (
            ConnectionSlot {
                cap: Arc::clone(self),
                group,
            },
            over,
        )
    }
}

/// The address a connection is counted under: IPv4 as is, IPv6 by its /64.
pub fn client_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// One open connection; dropped with the connection.
struct ConnectionSlot {
    cap: Arc<ConnectionCap>,
    group: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.cap.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.group);
            }
        }
    }
}

/// One request in progress; dropping it frees the slot.
struct ClientSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self
            .limits
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Keeps the map as small as the set of clients with a request in flight.
                map.remove(&self.ip);
            }
        }
    }
}

/// Middleware: a client address with `max_requests_per_client` requests in progress gets
/// 429 for the next one, and that connection is closed. The address is the peer's, or the
/// forwarded one behind a trusted proxy (`rate::client_ip`).
pub async fn limit_per_client(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, Unread>>, Error> {
    let limits = req.app_data::<Data<Limits>>().cloned();
    let (Some(limits), Some(peer)) = (limits, req.peer_addr()) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let client = req
        .app_data::<Data<super::rate::RateLimiter>>()
        .and_then(|rate| super::rate::client_ip(&req, rate.trusted()))
        .unwrap_or(peer.ip());
    let Some(_slot) = limits.into_inner().acquire(client) else {
        // Held so that actix-http closes the connection rather than drain a body (see
        // `body_deadline`).
        let payload = req.take_payload();
        let response = req.into_response(ApiError::ClientBusy.error_response());
        return Ok(response
            .map_body(|_, body| Unread {
                body: BoxBody::new(body),
                _payload: payload,
            })
            .map_into_right_body());
    };
    Ok(next.call(req).await?.map_into_left_body())
}

/// Middleware: the body must arrive within `server.body_timeout` of the head, whichever
/// extractor reads it. A late body ends the payload stream with a timeout error, and the
/// answer is 408 with the connection closed, whatever the handler made of that error.
///
/// A body left unread (late, refused early, or never asked for) stays held by the response
/// until it is sent: actix-http would otherwise keep reading a dropped chunked body to reuse
/// the connection, and a chunked body that never ends would hold it forever. Held, it makes
/// actix-http close the connection after the answer.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let timeout = req.app_data::<Data<Limits>>().map(|l| l.body_timeout);
    let payload = req.take_payload();
    let (Some(timeout), false) = (timeout, matches!(payload, Payload::None)) else {
        req.set_payload(payload);
        return Ok(next
            .call(req)
            .await?
            .map_into_left_body()
            .map_into_left_body());
    };
    let shared = Rc::new(Shared::default());
    let deadline = Deadline {
        inner: Some(payload),
        sleep: Box::pin(tokio::time::sleep(timeout)),
        finished: false,
        shared: Rc::clone(&shared),
    };
    req.set_payload(Payload::from(
        Box::pin(deadline) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let result = next.call(req).await;
    let response = if shared.expired.get() {
        let late = ApiError::BodyTimeout(timeout);
        match result {
            Ok(response) => {
                let (http_req, _) = response.into_parts();
                ServiceResponse::new(http_req, late.error_response()).map_into_right_body()
            }
            Err(_) => return Err(late.into()),
        }
    } else {
        result?.map_into_left_body()
    };
    Ok(match shared.unread.take() {
        None => response.map_into_left_body(),
        Some(payload) => response
            .map_body(|_, body| Unread {
                body: BoxBody::new(body),
                _payload: payload,
            })
            .map_into_right_body(),
    })
}

/// What a request's payload stream tells its middleware.
#[derive(Default)]
struct Shared {
    expired: Cell<bool>,
    /// The payload, when the stream was dropped before its end.
    unread: Cell<Option<Payload>>,
}

/// The error a late body ends with; [`is_body_timeout`] recognises it.
fn timeout_error() -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "request body not received in time",
    ))
}

/// Whether a payload error is the body deadline's.
pub fn is_body_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// A payload stream that fails once its deadline has passed.
struct Deadline {
    inner: Option<Payload>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    finished: bool,
    shared: Rc<Shared>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut().filter(|_| !this.shared.expired.get()) else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_next(cx) {
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.shared.expired.set(true);
                    Poll::Ready(Some(Err(timeout_error())))
                } else {
                    Poll::Pending
                }
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            ready => ready,
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.unread.set(self.inner.take());
        }
    }
}

/// A response body that keeps the unread request payload alive until it is sent.
pub struct Unread {
    body: BoxBody,
    _payload: Payload,
}

impl MessageBody for Unread {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Raises the soft descriptor limit to the hard one and logs both, and returns the
/// `max_connections` to use: the setting, clamped to three quarters of the (raised) soft
/// limit so that pool connections, files and accept churn always find a descriptor. A
/// clamp is logged at WARN with both figures.
pub fn raise_fd_limit(max_connections: usize) -> usize {
    let (soft, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return max_connections;
        }
    };
    let raised = if soft < hard {
        match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                soft
            }
        }
    } else {
        soft
    };
    let allowed = clamp_connections(max_connections, raised);
    tracing::info!(
        soft_was = soft,
        soft = raised,
        hard,
        max_connections = allowed,
        "open-file limit"
    );
    if allowed < max_connections {
        tracing::warn!(
            configured = max_connections,
            max_connections = allowed,
            limit = raised,
            "server.max_connections is over three quarters of the open-file limit: serving at most {allowed} connections (raise LimitNOFILE= or lower the setting)"
        );
    }
    allowed
}

/// `max_connections`, at most three quarters of the descriptor limit `fd_limit` (at least 1).
fn clamp_connections(max_connections: usize, fd_limit: u64) -> usize {
    let room = usize::try_from(fd_limit / 4 * 3)
        .unwrap_or(usize::MAX)
        .max(1);
    max_connections.min(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_is_clamped_to_three_quarters_of_the_limit() {
        assert_eq!(clamp_connections(4096, 1024), 768);
        assert_eq!(clamp_connections(4096, 1_048_576), 4096);
        assert_eq!(clamp_connections(700, 1024), 700);
        assert_eq!(clamp_connections(10, 0), 1);
    }

    #[test]
    fn connections_are_grouped_by_v4_address_and_v6_slash_64() {
        let g = |s: &str| client_group(s.parse().unwrap());
        assert_eq!(g("10.1.2.3"), g("10.1.2.3"));
        assert_ne!(g("10.1.2.3"), g("10.1.2.4"));
        assert_eq!(g("2001:db8:1:2::1"), g("2001:db8:1:2:ffff::9"));
        assert_ne!(g("2001:db8:1:2::1"), g("2001:db8:1:3::1"));
        assert_eq!(g("::ffff:10.1.2.3"), g("10.1.2.3"));
    }

    #[test]
    fn the_cap_counts_open_connections_and_gives_them_back() {
        let cap = Arc::new(ConnectionCap::new(2, Vec::new()));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (a, over_a) = cap.open(ip);
        let (b, over_b) = cap.open(ip);
        let (c, over_c) = cap.open(ip);
        assert!(!over_a && !over_b && over_c);
        drop((a, c));
        let (_d, over_d) = cap.open(ip);
        assert!(!over_d);
        drop(b);
        assert_eq!(cap.open.lock().unwrap().get(&ip), Some(&1));
    }
}
