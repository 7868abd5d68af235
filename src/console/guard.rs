//! Who may use a route: every handler asks here first, so roles hold on the server whatever
//! the pages show.

use actix_web::{HttpRequest, web};

use super::csrf;
use super::session::{self, Session};
use super::{ConsoleError, blocking};
use crate::admins::Role;
use crate::app::App;

/// The request's live session with at least `role`, for reading.
pub async fn viewer(
    req: &HttpRequest,
    app: &web::Data<App>,
    role: Role,
) -> Result<Session, ConsoleError> {
    let value = session::cookie_value(req).ok_or(ConsoleError::LoginRequired)?;
    let app = app.clone().into_inner();
    let session = blocking(move || session::load(&app, &value))
        .await?
        .ok_or(ConsoleError::LoginRequired)?;
    if !session.role.includes(role) {
        return Err(ConsoleError::Forbidden(session.role.as_str()));
    }
    Ok(session)
}

/// Like [`viewer`], for a state change: also the origin and the form's CSRF token.
pub async fn actor(
    req: &HttpRequest,
    app: &web::Data<App>,
    role: Role,
    csrf_token: &str,
) -> Result<Session, ConsoleError> {
    // Another site's POST is refused before anything is looked up.
    csrf::check_origin(req, &app.config.public_url())?;
    let session = viewer(req, app, role).await?;
    csrf::check(req, &app.config.public_url(), &session, csrf_token)?;
    Ok(session)
}
