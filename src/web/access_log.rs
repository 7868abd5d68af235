//! One log line per request: request id, method, path, status and duration. The id is also
//! returned in `X-Request-Id` so a device's report can be matched to the server log.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// Random per process, so ids from several instances do not collide.
static PROCESS_PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A new request id: process prefix and sequence number.
fn request_id() -> String {
    format!(
        "{:08x}-{:x}",
        *PROCESS_PREFIX,
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// Middleware (`middleware::from_fn`) that logs each request once it is answered.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request_id();
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let mut response = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        target: "seatkeep::access",
        request_id = %id,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}
