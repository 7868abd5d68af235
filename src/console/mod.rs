//! The web console for license admins (`/console`, DESIGN §5): server-rendered askama pages,
//! database sessions, CSRF tokens, login throttling and roles. Every action calls the same
//! library function as the CLI, with actor `admin:NAME`. Errors become HTML pages in
//! `web/errors.rs`, the one mapping of errors to statuses.

pub mod assets;
pub mod csrf;
pub mod download;
pub mod guard;
pub mod pages;
pub mod session;
pub mod throttle;
pub mod view;

use actix_web::{HttpResponse, web};
use seatkeep_device::ProblemCode;

use crate::admins::AdminError;
use crate::db::DbError;
use crate::licenses::ImportError;
use crate::seats::SeatError;

/// Why a console request failed; each becomes an HTML page with its status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No valid session: the browser is sent to the login page.
    #[error("please sign in")]
    LoginRequired,
    /// The signed-in role may not do this.
    #[error("your role ({0}) may not do this")]
    Forbidden(&'static str),
    /// A state change without the session's CSRF token or from another origin.
    #[error(
        "this form is out of date or was sent from another site; reload the page and try again"
    )]
    Csrf,
    /// No such license, seat, admin or page.
    #[error("{0}")]
    NotFound(String),
    /// A form field is missing, too long or of the wrong type.
    #[error("{0}")]
    BadRequest(String),
    /// A domain refusal (a seat not active, an unknown admin, a stale key file…): its
    /// stable code decides the status, as in the device API.
    #[error("{message}")]
    Refused { code: ProblemCode, message: String },
    /// An upload over the limit.
    #[error("the upload is larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

crate::query_errors_into!(ConsoleError);

impl ConsoleError {
    /// The stable code, which decides the status (web/errors.rs).
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::LoginRequired | Self::Forbidden(_) | Self::Csrf => ProblemCode::Forbidden,
            Self::NotFound(_) => ProblemCode::NotFound,
            Self::BadRequest(_) => ProblemCode::InvalidRequest,
            Self::Refused { code, .. } => *code,
            Self::TooLarge(_) => ProblemCode::RequestTooLarge,
            Self::Db(e) => e.code(),
            Self::Internal(_) => ProblemCode::InternalError,
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(format!("template: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for ConsoleError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl ConsoleError {
    /// A domain refusal with its code and message.
    fn refused(code: ProblemCode, message: String) -> Self {
        match code {
            ProblemCode::InternalError => Self::Internal(message),
            code => Self::Refused { code, message },
        }
    }
}

impl From<AdminError> for ConsoleError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Db(db) => Self::Db(db),
            other => Self::refused(other.code(), other.to_string()),
        }
    }
}

impl From<SeatError> for ConsoleError {
    fn from(e: SeatError) -> Self {
        match e {
            SeatError::Db(db) => Self::Db(db),
            other => Self::refused(other.code(), other.to_string()),
        }
    }
}

impl From<crate::meter::MeterError> for ConsoleError {
    fn from(e: crate::meter::MeterError) -> Self {
        match e {
            crate::meter::MeterError::Seat(seat) => seat.into(),
            other => Self::refused(other.code(), other.to_string()),
        }
    }
}

impl From<crate::offline::OfflineError> for ConsoleError {
    fn from(e: crate::offline::OfflineError) -> Self {
        use crate::offline::OfflineError;
        match e {
            OfflineError::Db(db) => Self::Db(db),
            other => Self::refused(other.code(), other.to_string()),
        }
    }
}

impl From<ImportError> for ConsoleError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Db(db) => Self::Db(db),
            other => Self::refused(other.code(), other.to_string()),
        }
    }
}

/// Runs blocking work (database, Argon2) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ConsoleError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ConsoleError> + Send + 'static,
{
    web::block(f).await?
}

/// Registers `/` (a redirect) and every `/console` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { view::redirect("/console") }))
        .service(
            web::scope("/console")
                .wrap(actix_web::middleware::from_fn(pages::refuse_control_in_url))
                .wrap(assets::security_headers())
                .configure(pages::configure)
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ConsoleError::NotFound("no such page".into()))
                })),
        );
}
