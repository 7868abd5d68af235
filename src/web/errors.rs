//! The one place errors become HTTP: RFC 9457 problem details with the stable codes of
//! DESIGN §5. 5xx causes are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use seatkeep_device::ProblemCode;
use seatkeep_device::problem::PROBLEM_TYPE_PREFIX;
use serde_json::{Map, Value, json};

use crate::console::ConsoleError;
use crate::db::DbError;
use crate::keyfile::KeyFileError;
use crate::meter::MeterError;
use crate::seats::SeatError;

/// `Retry-After` for a database outage, in seconds.
const UNAVAILABLE_RETRY_SECS: i64 = 5;
/// `Retry-After` for a client over its requests in progress: one finishes soon.
const BUSY_RETRY_SECS: i64 = 1;

/// An error on its way to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A seat operation was refused or failed.
    #[error(transparent)]
    Seat(#[from] SeatError),
    /// A packet request was refused or failed.
    #[error(transparent)]
    Meter(#[from] MeterError),
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
    /// This client may not use this endpoint.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A worker thread failed.
    #[error("internal error")]
    Internal(String),
    /// The body did not arrive in time; the connection is closed.
    #[error("the request body did not arrive within {}s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// This client address has as many requests in progress as it may; the connection is
    /// closed.
    #[error("too many requests in progress from this address")]
    ClientBusy,
    /// This client address is over its request rate; retry after that many seconds.
    #[error("too many requests from this address; retry in {0} s")]
    RateLimited(i64),
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Status, code and extra members of a problem.
struct Problem {
    status: StatusCode,
    code: ProblemCode,
    extra: Map<String, Value>,
    retry_after: Option<i64>,
}

impl Problem {
    fn new(status: StatusCode, code: ProblemCode) -> Self {
        Self {
            status,
            code,
            extra: Map::new(),
            retry_after: None,
        }
    }

    fn add(&mut self, key: &str, value: Value) {
        self.extra.insert(key.to_owned(), value);
    }
}

/// The one table from stable code to HTTP status (DESIGN §5). Exhaustive, so a new code
/// cannot be added without deciding its status.
pub fn status_for(code: ProblemCode) -> StatusCode {
    use ProblemCode as C;
    match code {
        C::InvalidRequest
        | C::InvalidKeyFile
        | C::InvalidPacketRequest
        | C::AmountOutOfRange
        | C::InvalidRequestFile => StatusCode::BAD_REQUEST,
        C::InvalidReturnToken | C::InvalidDeviceProof | C::InvalidDeviceSignature => {
            StatusCode::UNAUTHORIZED
        }
        C::LicenseExpired
        | C::LicenseNotYetValid
        | C::LicenseRevoked
        | C::MeterNotEnabled
        | C::Forbidden => StatusCode::FORBIDDEN,
        C::UnknownLicense | C::UnknownSeat | C::NotFound => StatusCode::NOT_FOUND,
        C::SeatsExhausted
        | C::SeatNotActive
        | C::ReissueRequired
        | C::UsageExhausted
        | C::DeviceKeyMismatch
        | C::DeviceStateInvalid => StatusCode::CONFLICT,
        C::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::RequestIdReused => StatusCode::UNPROCESSABLE_ENTITY,
        C::ReissueLimitReached | C::ReturnLimitReached | C::RateLimited => {
            StatusCode::TOO_MANY_REQUESTS
        }
        C::ClockUntrusted | C::FederationOverdue | C::Unavailable | C::NotReady => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The members a seat refusal adds to its problem, and its `Retry-After`.
fn seat_extras(e: &SeatError, problem: &mut Problem) {
    match e {
        SeatError::InvalidField { field, .. } => problem.add("field", json!(field)),
        SeatError::KeyFile(KeyFileError::Expired { exp }) => {
            problem.add("expired_at", json!(exp));
        }
        SeatError::KeyFile(KeyFileError::NotYetValid { nbf }) => {
            problem.add("not_before", json!(nbf));
        }
        SeatError::UnknownLicense(lic) => problem.add("license", json!(lic)),
        SeatError::SeatsExhausted {
            license,
            seats,
            in_use,
        } => {
            problem.add("license", json!(license));
            problem.add("seats", json!(seats));
            problem.add("in_use", json!(in_use));
        }
        SeatError::SeatNotActive { state, .. } => problem.add("state", json!(state)),
        SeatError::ReissueLimitReached {
            limit, retry_after, ..
        }
        | SeatError::ReturnLimitReached {
            limit, retry_after, ..
        } => {
            problem.add("limit", json!(limit));
            problem.retry_after = Some(*retry_after);
        }
        SeatError::TooManyFailures { retry_after, .. } => {
            problem.retry_after = Some(*retry_after);
        }
        SeatError::Db(d) => db_extras(d, problem),
        _ => {}
    }
}

/// The members a packet refusal adds to its problem.
fn meter_extras(e: &MeterError, problem: &mut Problem) {
    match e {
        MeterError::UsageExhausted {
            license,
            units,
            issued,
            available,
        } => {
            problem.add("license", json!(license));
            problem.add("units", json!(units));
            problem.add("issued", json!(issued));
            problem.add("available", json!(available));
        }
        MeterError::AmountOutOfRange { amt, min, max } => {
            problem.add("amt", json!(amt));
            problem.add("min", json!(min));
            problem.add("max", json!(max));
        }
        MeterError::DeviceStateInvalid(reason) => problem.add("reason", json!(reason)),
        _ => {}
    }
}

fn db_extras(e: &DbError, problem: &mut Problem) {
    if e.is_unavailable() {
        // Outages are usually short: tell devices when to try again.
        problem.retry_after = Some(UNAVAILABLE_RETRY_SECS);
    }
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Seat(e) => e.code(),
            Self::Meter(e) => e.code(),
            Self::BadRequest(_) | Self::TooLarge(_) => ProblemCode::InvalidRequest,
            Self::NotReady(_) => ProblemCode::NotReady,
            Self::NotFound => ProblemCode::NotFound,
            Self::Forbidden(_) => ProblemCode::Forbidden,
            Self::Internal(_) => ProblemCode::InternalError,
            Self::BodyTimeout(_) => ProblemCode::RequestTimeout,
            Self::ClientBusy | Self::RateLimited(_) => ProblemCode::RateLimited,
        }
    }

    fn problem(&self) -> Problem {
        let code = self.code();
        let status = match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => status_for(code),
        };
        let mut problem = Problem::new(status, code);
        match self {
            Self::Seat(e) => seat_extras(e, &mut problem),
            Self::Meter(MeterError::Seat(e)) => seat_extras(e, &mut problem),
            Self::Meter(e) => meter_extras(e, &mut problem),
            Self::ClientBusy => problem.retry_after = Some(BUSY_RETRY_SECS),
            Self::RateLimited(seconds) => problem.retry_after = Some(*seconds),
            _ => {}
        }
        problem
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.problem().status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let code = problem.code.as_str();
        let detail =
            if problem.status.is_server_error() && problem.code != ProblemCode::ClockUntrusted {
                tracing::error!(error = %self, code, "request failed");
                match problem.code {
                    ProblemCode::Unavailable | ProblemCode::NotReady => {
                        "the database is not reachable; try again shortly".to_owned()
                    }
                    _ => "internal error; the server log has the cause".to_owned(),
                }
            } else {
                self.to_string()
            };
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{PROBLEM_TYPE_PREFIX}{code}")));
        body.insert(
            "title".into(),
            json!(problem.status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(problem.status.as_u16()));
        body.insert("code".into(), json!(code));
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
        if matches!(self, Self::BodyTimeout(_) | Self::ClientBusy) {
            // The connection is what the client holds: give it back.
            response.force_close();
        }
        response.body(Value::Object(body).to_string())
    }
}

/// Turns the JSON extractor's errors into problems (413 for size, 408 for a late body, 400
/// otherwise).
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    limit: usize,
    timeout: std::time::Duration,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::TooLarge(limit),
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::TooLarge(limit),
        E::Payload(e) if super::limits::is_body_timeout(e) => ApiError::BodyTimeout(timeout),
        E::ContentType => ApiError::BadRequest("Content-Type must be application/json".into()),
        E::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        other => ApiError::BadRequest(format!("invalid request body: {other}")),
    };
    api.into()
}

/// Turns path-parameter errors into problems. The only path parameter is a seat id, and
/// one that does not even decode (e.g. `%FF`) names no seat: 404, as for any unknown id.
pub fn path_error(_err: actix_web::error::PathError) -> actix_web::Error {
    ApiError::Seat(SeatError::UnknownSeat("(not UTF-8)".into())).into()
}

/// Console errors are HTML pages; the status comes from the same table as the API's.
impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        status_for(self.code())
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self, ConsoleError::LoginRequired) {
            return crate::console::view::redirect("/console/login");
        }
        let status = self.status_code();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "console request failed");
            "Something went wrong on the server; the server log has the cause.".to_owned()
        } else {
            self.to_string()
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let mut response =
            crate::console::view::html(status, crate::console::view::error_html(title, &message));
        if matches!(self, ConsoleError::TooLarge(_)) {
            // The rest of the upload is not read: close rather than drain it.
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        response
    }
}
