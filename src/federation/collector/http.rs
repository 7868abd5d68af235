//! `seatkeep provider collect --listen`: the collector's HTTP receiver. Any path takes a
//! `POST` of one batch (`application/jose`) and answers 200 with the signed ack, or a
//! problem (4xx: refused, nothing stored; 5xx: our storage failed).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::Collector;
use crate::federation::wire::MAX_TOKEN_BYTES;

/// Runs the receiver on `listen` until SIGINT/SIGTERM; `on_bound` hears the bound address
/// (port 0 picks a free one).
pub fn run(
    collector: Collector,
    listen: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let collector = web::Data::from(Arc::new(collector));
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(collector.clone())
                .app_data(web::PayloadConfig::new(MAX_TOKEN_BYTES))
                .default_service(web::to(receive))
        })
        .workers(2)
        .bind(listen)?;
        if let Some(bound) = server.addrs().first() {
            on_bound(*bound);
        }
        server.run().await
    })
}

async fn receive(
    req: actix_web::HttpRequest,
    body: web::Bytes,
    collector: web::Data<Collector>,
) -> HttpResponse {
    if req.method() != actix_web::http::Method::POST {
        return problem(StatusCode::METHOD_NOT_ALLOWED, "POST a batch".into());
    }
    let Ok(token) = String::from_utf8(body.to_vec()) else {
        return problem(StatusCode::BAD_REQUEST, "the body is not text".into());
    };
    let received = web::block(move || collector.receive(&token)).await;
    match received {
        Ok(Ok(receipt)) => {
            tracing::info!(
                server = %receipt.server,
                license = %receipt.lic,
                stored = receipt.stored,
                acked = receipt.acked,
                gap = receipt.gap,
                "batch received"
            );
            HttpResponse::Ok()
                .content_type("application/jose")
                .body(receipt.ack)
        }
        Ok(Err(e)) if e.is_refusal() => {
            tracing::warn!(error = %e, "batch refused");
            problem(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "batch not stored");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the batch was not stored".into(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "batch not stored");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the batch was not stored".into(),
            )
        }
    }
}

fn problem(status: StatusCode, detail: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(serde_json::json!({
            "type": "about:blank",
            "status": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("error"),
            "detail": detail,
        }))
}
