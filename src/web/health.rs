//! Liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`).

use actix_web::{HttpResponse, web};

use super::errors::ApiError;
use crate::app::App;

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
async fn get_metrics(app: web::Data<App>) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let body = web::block(move || crate::metrics::render(&app)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body))
}
