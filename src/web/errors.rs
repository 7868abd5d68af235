//! The one place errors become HTTP: RFC 9457 problem details with the stable codes of
//! DESIGN §5. 5xx causes are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

use crate::db::DbError;
use crate::keyfile::KeyFileError;
use crate::seats::SeatError;

/// `Retry-After` for a database outage, in seconds.
const UNAVAILABLE_RETRY_SECS: i64 = 5;

/// An error on its way to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A seat operation was refused or failed.
    #[error(transparent)]
    Seat(#[from] SeatError),
    /// The request body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the cap.
    #[error("request body too large (limit {0} bytes)")]
    TooLarge(usize),
    /// The database is unreachable or not migrated.
    #[error("{0}")]
    NotReady(DbError),
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// A worker thread failed.
    #[error("internal error")]
    Internal(String),
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Status, code and extra members of a problem.
struct Problem {
    status: StatusCode,
    code: &'static str,
    extra: Map<String, Value>,
    retry_after: Option<i64>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            extra: Map::new(),
            retry_after: None,
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

fn key_file_problem(e: &KeyFileError) -> Problem {
    match e {
        KeyFileError::Expired { exp } => {
            Problem::new(StatusCode::FORBIDDEN, "license_expired").with("expired_at", json!(exp))
        }
        KeyFileError::NotYetValid { nbf } => {
            Problem::new(StatusCode::FORBIDDEN, "license_not_yet_valid")
                .with("not_before", json!(nbf))
        }
        _ => Problem::new(StatusCode::BAD_REQUEST, "invalid_key_file"),
    }
}

fn db_problem(e: &DbError) -> Problem {
    if e.is_unavailable() {
        // Outages are usually short: tell devices when to try again.
        Problem {
            retry_after: Some(UNAVAILABLE_RETRY_SECS),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    } else {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            Self::Seat(e) => match e {
                SeatError::InvalidField { field, .. } => {
                    Problem::new(StatusCode::BAD_REQUEST, "invalid_request")
                        .with("field", json!(field))
                }
                SeatError::KeyFile(k) => key_file_problem(k),
                SeatError::UnknownLicense(lic) => {
                    Problem::new(StatusCode::NOT_FOUND, "unknown_license")
                        .with("license", json!(lic))
                }
                SeatError::UnknownSeat(_) => Problem::new(StatusCode::NOT_FOUND, "unknown_seat"),
                SeatError::LicenseRevoked(_) => {
                    Problem::new(StatusCode::FORBIDDEN, "license_revoked")
                }
                SeatError::SeatsExhausted {
                    license,
                    seats,
                    in_use,
                } => Problem::new(StatusCode::CONFLICT, "seats_exhausted")
                    .with("license", json!(license))
                    .with("seats", json!(seats))
                    .with("in_use", json!(in_use)),
                SeatError::SeatNotActive { state, .. } => {
                    Problem::new(StatusCode::CONFLICT, "seat_not_active")
                        .with("state", json!(state))
                }
                SeatError::ReissueRequired { seat, .. } => {
                    Problem::new(StatusCode::CONFLICT, "reissue_required").with("seat", json!(seat))
                }
                SeatError::ReissueLimitReached {
                    limit, retry_after, ..
                } => Problem {
                    retry_after: Some(*retry_after),
                    ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "reissue_limit_reached")
                        .with("limit", json!(limit))
                },
                SeatError::ReturnLimitReached {
                    limit, retry_after, ..
                } => Problem {
                    retry_after: Some(*retry_after),
                    ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "return_limit_reached")
                        .with("limit", json!(limit))
                },
                SeatError::InvalidReturnToken => {
                    Problem::new(StatusCode::UNAUTHORIZED, "invalid_return_token")
                }
                SeatError::ClockUntrusted(_) => {
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "clock_untrusted")
                }
                SeatError::Signing(_) => {
                    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
                }
                SeatError::Db(d) => db_problem(d),
            },
            Self::BadRequest(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_request"),
            Self::TooLarge(_) => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
            Self::NotReady(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::NotFound => Problem::new(StatusCode::NOT_FOUND, "not_found"),
            Self::Internal(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let detail = if problem.status.is_server_error() && problem.code != "clock_untrusted" {
            tracing::error!(error = %self, code = problem.code, "request failed");
            match problem.code {
                "unavailable" | "not_ready" => {
                    "the database is not reachable; try again shortly".to_owned()
                }
                _ => "internal error; the server log has the cause".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:seatkeep:problem:{}", problem.code)),
        );
        body.insert(
            "title".into(),
            json!(problem.status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(problem.status.as_u16()));
        body.insert("code".into(), json!(problem.code));
        body.insert("detail".into(), json!(detail));
        if let Some(seconds) = problem.retry_after {
            body.insert("retry_after".into(), json!(seconds));
        }
        body.extend(problem.extra);
        let mut response = HttpResponse::build(problem.status);
        response.insert_header((CONTENT_TYPE, "application/problem+json"));
        if let Some(seconds) = problem.retry_after {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        response.body(Value::Object(body).to_string())
    }
}

/// Turns the JSON extractor's errors into problems (413 for size, 400 otherwise).
pub fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::TooLarge(limit),
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::TooLarge(limit),
        E::ContentType => ApiError::BadRequest("Content-Type must be application/json".into()),
        E::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        other => ApiError::BadRequest(format!("invalid request body: {other}")),
    };
    api.into()
}

/// Turns path-parameter errors into problems.
pub fn path_error(err: actix_web::error::PathError) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path: {err}")).into()
}
