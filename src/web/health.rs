//! Liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`).
//! Metrics name every license and its seat counts, so they answer loopback clients only,
//! or anyone presenting the bearer token of `metrics.token_file`.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use crate::app::App;

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
        if req.peer_addr().is_some_and(|a| a.ip().is_loopback()) {
            return true;
        }
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
            "metrics are served to loopback clients, or with the bearer token of metrics.token_file",
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
}
