//! The device API's request rate per client address: a token bucket per address
//! (`server.rate_limit_per_second`, `server.rate_limit_burst`; 0 = off), answering 429
//! `rate_limited` with `Retry-After` when a bucket is empty. Per instance: each process
//! keeps its own buckets. The client address is the TCP peer, or, when the peer is one of
//! `server.trusted_proxies`, the nearest address in `X-Forwarded-For` that is not a proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, ResponseError as _};

use super::errors::ApiError;

/// Buckets kept before idle full ones are swept.
const SWEEP_AT: usize = 10_000;

/// A CIDR block (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not an address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix must be 0 to {max}"))?
        };
        Ok(Self { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, prefix: u8| -> u128 {
            if prefix == 0 {
                0
            } else {
                (u128::MAX << (bits - u32::from(prefix))) & (u128::MAX >> (128 - bits))
            }
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = mask(32, self.prefix);
                u128::from(u32::from(n)) & m == u128::from(u32::from(a)) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = mask(128, self.prefix);
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

/// The client's address: the peer, or behind a trusted proxy the nearest untrusted address
/// of `X-Forwarded-For` (each proxy appends the address it saw, so the right end is ours).
pub fn client_ip(req: &ServiceRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    client_ip_from(req.peer_addr()?.ip(), req.headers(), trusted)
}

/// [`client_ip`] of a handler's request (the console's sign-in throttling).
pub fn request_client_ip(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    let trusted = req
        .app_data::<actix_web::web::Data<RateLimiter>>()
        .map_or(&[][..], |limiter| limiter.trusted());
    client_ip_from(req.peer_addr()?.ip(), req.headers(), trusted)
}

fn client_ip_from(
    peer: IpAddr,
    headers: &actix_web::http::header::HeaderMap,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    if !trusted.iter().any(|c| c.contains(peer)) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in forwarded.into_iter().rev() {
        let Some(hop) = hop else { break };
        client = hop;
        if !trusted.iter().any(|c| c.contains(hop)) {
            break;
        }
    }
    Some(client)
}

/// Token buckets by client address, shared by the workers.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    trusted: Vec<Cidr>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_second == 0` turns the limit off.
    pub fn new(per_second: u32, burst: u32, trusted: Vec<Cidr>) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            trusted,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn trusted(&self) -> &[Cidr] {
        &self.trusted
    }

    /// Takes a token for `ip`; `Err(seconds)` until the next one when there is none.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), i64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= SWEEP_AT {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.per_second).ceil();
            Err((wait as i64).max(1))
        }
    }
}

/// Middleware on the device API (`/api/v1/`).
pub async fn limit_rate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, Error> {
    let limiter = req.app_data::<Data<RateLimiter>>().cloned();
    if let Some(limiter) = limiter.filter(|_| req.path().starts_with("/api/v1/"))
        && let Some(ip) = client_ip(&req, limiter.trusted())
        && let Err(seconds) = limiter.take(ip, Instant::now())
    {
        let response = ApiError::RateLimited(seconds).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn bucket_refills_at_its_rate() {
        let limiter = RateLimiter::new(10, 3, Vec::new());
        let ip = "192.0.2.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(ip, start).is_ok());
        }
        assert_eq!(limiter.take(ip, start), Err(1));
        assert!(
            limiter
                .take(ip, start + std::time::Duration::from_millis(150))
                .is_ok()
        );
        assert!(RateLimiter::new(0, 0, Vec::new()).take(ip, start).is_ok());
    }
}
