//! The console's pages, one module each, and their routes.

pub mod account;
pub mod admins;
pub mod audit;
pub mod charts;
pub mod dashboard;
pub mod import;
pub mod license;
pub mod license_actions;
pub mod login;
pub mod notifications;
pub mod offline;
pub mod seat;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::ConsoleError;

/// Largest urlencoded form the console takes (a pasted key file fits many times over).
const FORM_LIMIT: usize = 256 * 1024;

/// Registers the console routes (inside the `/console` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(FORM_LIMIT)
            .error_handler(|e, _| form_error(e.to_string())),
    )
    .app_data(web::QueryConfig::default().error_handler(|e, _| form_error(e.to_string())))
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ConsoleError::NotFound(format!("no such page: {e}")).into()),
    )
    .configure(super::assets::configure)
    .route("", web::get().to(dashboard::show))
    .route("/", web::get().to(dashboard::show))
    .route("/login", web::get().to(login::form))
    .route("/login", web::post().to(login::submit))
    .route("/logout", web::post().to(login::logout))
    .route("/licenses/{lic}", web::get().to(license::show))
    .route(
        "/licenses/{lic}/seats.export",
        web::get().to(license_actions::export_seats),
    )
    .route(
        "/licenses/{lic}/revoke",
        web::post().to(license_actions::revoke),
    )
    .route(
        "/licenses/{lic}/reinstate",
        web::post().to(license_actions::reinstate),
    )
    .route("/seats/{seat}", web::get().to(seat::show))
    .route("/seats/{seat}/retire", web::get().to(seat::confirm_retire))
    .route("/seats/{seat}/retire", web::post().to(seat::retire))
    .route("/import", web::get().to(import::form))
    .route("/import/preview", web::post().to(import::preview))
    .route("/import/confirm", web::post().to(import::confirm))
    .route("/offline", web::get().to(offline::form))
    .route("/offline", web::post().to(offline::fulfil))
    .route(
        "/offline/{sha256}/response",
        web::get().to(offline::download),
    )
    .route("/audit", web::get().to(audit::show))
    .route("/audit.csv", web::get().to(audit::csv))
    .route("/notifications", web::get().to(notifications::show))
    .route(
        "/notifications/{id}/retry",
        web::post().to(notifications::retry),
    )
    .route("/admins", web::get().to(admins::show))
    .route("/admins", web::post().to(admins::add))
    .route("/admins/{name}/role", web::post().to(admins::set_role))
    .route(
        "/admins/{name}/password",
        web::post().to(admins::reset_password),
    )
    .route("/admins/{name}/remove", web::post().to(admins::remove))
    .route("/account", web::get().to(account::show))
    .route(
        "/account/password",
        web::post().to(account::change_password),
    );
}

fn form_error(message: String) -> actix_web::Error {
    ConsoleError::BadRequest(format!("the form could not be read: {message}")).into()
}

/// A form field, trimmed, required and at most `max` characters.
pub fn field<'a>(name: &str, value: &'a str, max: usize) -> Result<&'a str, ConsoleError> {
    plain_text(name, value)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(ConsoleError::BadRequest(format!("{name} is required")));
    }
    if value.chars().count() > max {
        return Err(ConsoleError::BadRequest(format!(
            "{name} is longer than {max} characters"
        )));
    }
    Ok(value)
}

/// Whether text has a control character (NUL, which PostgreSQL cannot store in text, and
/// every other C0/C1 control): no license id, seat id, admin name or search has one. The one
/// check the console's edge makes, for path segments, query fields and form fields alike.
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// A form field that must be plain text: 400 before the database sees it.
pub fn plain_text(name: &str, value: &str) -> Result<(), ConsoleError> {
    if has_control(value) {
        return Err(ConsoleError::BadRequest(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(())
}

/// Middleware of the console scope: a path with a control character (after percent
/// decoding) is 404 and a query string with one is 400, before any handler, session lookup
/// or database call. Bytes that are not UTF-8 are left to the extractors (404 for a path
/// segment, 400 for a query field).
pub async fn refuse_control_in_url(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let decoded = |text: &str| {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(text).collect();
        has_control(&String::from_utf8_lossy(&bytes))
    };
    let refusal = if decoded(req.uri().path()) {
        Some(ConsoleError::NotFound("no such page".into()))
    } else if decoded(req.query_string()) {
        Some(ConsoleError::BadRequest(
            "the query must not contain control characters".into(),
        ))
    } else {
        None
    };
    match refusal {
        Some(err) => Ok(req.error_response(err).map_into_right_body()),
        None => Ok(next.call(req).await?.map_into_left_body()),
    }
}
