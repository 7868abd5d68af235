//! The console's one stylesheet, compiled in, and the headers every console answer carries.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};

/// The stylesheet (no build step; no CDN).
const STYLESHEET: &str = include_str!("../../templates/console/console.css");

/// `Content-Security-Policy` etc. on every console response. `DefaultHeaders` adds each
/// only when the handler did not set it, so the stylesheet keeps its own `Cache-Control`.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'",
        ))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
}

/// `GET /console/static/console-1.css` (templates/console/base.html links it; the version
/// in the name lets browsers cache it for a day without asking).
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400, immutable"))
        .body(STYLESHEET)
}

/// Registers the stylesheet route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/console-1.css", web::get().to(stylesheet));
}
