//! Liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`).
//! Metrics name every license and its seat counts, so they answer loopback clients only,
//! or anyone presenting the bearer token of `metrics.token_file`.
//!
//! "Loopback" means a client on this host talking to the server directly. A reverse proxy
//! on the same host makes every client a loopback peer, so without the token a request is
//! refused when it carries a forwarding header (`Forwarded`, `X-Forwarded-For`,
//! `X-Real-IP`: whoever set it, the request is on someone else's behalf, and a header from a
//! peer outside `server.trusted_proxies` cannot be told from a forged one), and when its
//! peer is one of `server.trusted_proxies` (a proxy forwards others even when it adds no
//! header). What is left is the client address the rate limit uses
//! ([`super::rate::request_client_ip`]), which must be loopback.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use super::rate::{RateLimiter, request_client_ip};
use crate::app::App;

/// Headers that say a request is forwarded on someone else's behalf.
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Who may read `/metrics`.
#[derive(Clone)]
pub struct MetricsAccess {
    token: Option<String>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl MetricsAccess {
    /// Loopback clients only, plus holders of `token` when there is one.
    pub fn new(token: Option<String>) -> Self {
        Self { token }
    }

    fn allows(&self, req: &HttpRequest) -> bool {
        self.direct_loopback(req) || self.has_token(req)
    }

    /// A client on this host, not forwarded by a proxy.
    fn direct_loopback(&self, req: &HttpRequest) -> bool {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return false;
        };
        if FORWARDING_HEADERS
            .iter()
            .any(|h| req.headers().contains_key(*h))
        {
            return false;
        }
        let trusted = req
            .app_data::<web::Data<RateLimiter>>()
            .map_or(&[][..], |limiter| limiter.trusted());
        if trusted.iter().any(|c| c.contains(peer)) {
            return false;
        }
        request_client_ip(req).is_some_and(|ip| ip.is_loopback())
    }

    fn has_token(&self, req: &HttpRequest) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(get_health))
        .route("/readyz", web::get().to(get_ready))
        .route("/metrics", web::get().to(get_metrics));
}

/// The process is up.
async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The database answers and every migration is applied.
async fn get_ready(app: web::Data<App>) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    web::block(move || app.db.ready())
        .await?
        .map_err(ApiError::NotReady)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

/// Prometheus text exposition.
async fn get_metrics(
    req: HttpRequest,
    app: web::Data<App>,
    access: web::Data<MetricsAccess>,
) -> Result<HttpResponse, ApiError> {
    if !access.allows(&req) {
        return Err(ApiError::Forbidden(
            "metrics are served to clients on this host that are not forwarded by a proxy, or with the bearer token of metrics.token_file",
        ));
    }
    let app = app.into_inner();
    let body = web::block(move || crate::metrics::render(&app)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn from(ip: &str) -> TestRequest {
        TestRequest::default().peer_addr(format!("{ip}:40000").parse().unwrap())
    }

    #[test]
    fn metrics_are_for_loopback_or_the_token() {
        let open = MetricsAccess::new(None);
        assert!(open.allows(&from("127.0.0.1").to_http_request()));
        assert!(open.allows(&from("[::1]").to_http_request()));
        assert!(!open.allows(&from("10.1.2.3").to_http_request()));
        let guarded = MetricsAccess::new(Some("s3cret-token-0123456789".into()));
        assert!(!guarded.allows(&from("10.1.2.3").to_http_request()));
        let wrong = from("10.1.2.3").insert_header((AUTHORIZATION, "Bearer nope"));
        assert!(!guarded.allows(&wrong.to_http_request()));
        let right =
            from("10.1.2.3").insert_header((AUTHORIZATION, "Bearer s3cret-token-0123456789"));
        assert!(guarded.allows(&right.to_http_request()));
    }

    #[test]
    fn forwarded_loopback_requests_need_the_token() {
        let guarded = MetricsAccess::new(Some("s3cret-token-0123456789".into()));
        for header in FORWARDING_HEADERS {
            let req = from("127.0.0.1").insert_header((header, "127.0.0.1"));
            assert!(!guarded.allows(&req.to_http_request()), "{header}");
            let req = from("127.0.0.1")
                .insert_header((header, "10.1.2.3"))
                .insert_header((AUTHORIZATION, "Bearer s3cret-token-0123456789"));
            assert!(guarded.allows(&req.to_http_request()), "{header}");
        }
        // The peer is a trusted proxy: whoever it forwards, loopback is not enough.
        let limiter = web::Data::new(RateLimiter::new(
            0,
            0,
            vec!["127.0.0.1/32".parse().unwrap()],
        ));
        let req = from("127.0.0.1").app_data(limiter.clone());
        assert!(!guarded.allows(&req.to_http_request()));
        let req = from("127.0.0.2").app_data(limiter);
        assert!(guarded.allows(&req.to_http_request()));
    }
}
