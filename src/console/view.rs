//! What every page shares: the layout (who is signed in, the CSRF token, the menu), flash
//! messages, pagination links, time formatting, and turning a template into a response.

use actix_web::HttpResponse;
use actix_web::http::header;
use askama::Template;

use super::ConsoleError;
use super::session::Session;
use crate::admins::Role;

/// The layout's data, on every signed-in page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// Menu entry to highlight.
    pub section: &'static str,
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
    pub can_act: bool,
    pub is_owner: bool,
    pub flash: Option<Flash>,
}

impl Layout {
    pub fn new(session: &Session, section: &'static str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            section,
            username: session.username.clone(),
            role: session.role.as_str(),
            csrf: session.csrf.clone(),
            can_act: session.role.includes(Role::Admin),
            is_owner: session.role.includes(Role::Owner),
            flash: None,
        }
    }

    /// With the flash message named by a `?done=` code (fixed texts only, so a link cannot
    /// put words on the page).
    pub fn with_flash(mut self, done: Option<&str>) -> Self {
        self.flash = Self::flash_for(done);
        self
    }

    /// The fixed message of a `?done=` code.
    pub fn flash_for(done: Option<&str>) -> Option<Flash> {
        done.and_then(Flash::from_code)
    }
}

/// A message at the top of a page.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok`, `error` or `secret` (a password shown once).
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: "error",
            text: text.into(),
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        let text = match code {
            "retired" => "Seat retired.",
            "revoked" => "License revoked: its devices are refused until it is reinstated.",
            "reinstated" => "License reinstated: its devices work again.",
            "imported" => "Key file imported.",
            "renewed" => "License renewed.",
            "unchanged" => "That key file was imported before: nothing changed.",
            "retried" => "The notification is due now.",
            "role" => "Role changed.",
            "removed" => "Admin removed.",
            "password" => "Password changed. Sign in with the new password.",
            "loggedout" => "Signed out.",
            "expired" => "Your session ended. Please sign in again.",
            _ => return None,
        };
        Some(Self::ok(text))
    }
}

/// One link of the pager.
#[derive(Debug, Clone)]
pub struct PageLink {
    pub label: String,
    pub href: String,
}

/// Previous/next links and where we are.
#[derive(Debug, Clone, Default)]
pub struct Pager {
    pub prev: Option<PageLink>,
    pub next: Option<PageLink>,
    pub summary: String,
}

/// A page as an HTML response.
pub fn render(page: &impl Template) -> Result<HttpResponse, ConsoleError> {
    Ok(html(actix_web::http::StatusCode::OK, page.render()?))
}

/// HTML with a status.
pub fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// 303 See Other to a console path.
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// Unix seconds as `2026-12-01 23:14 UTC`.
pub fn time(unix: i64) -> String {
    match u64::try_from(unix) {
        Ok(t) => {
            let text = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
            )
            .to_string();
            // 2026-12-01T23:14:05Z -> 2026-12-01 23:14 UTC
            format!("{} {} UTC", &text[..10], &text[11..16])
        }
        Err(_) => "-".to_owned(),
    }
}

/// An optional time, or a word for none.
pub fn time_or(unix: Option<i64>, none: &str) -> String {
    unix.map_or_else(|| none.to_owned(), time)
}

/// Percent-encodes a query value.
pub fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page shown for an error (no layout: the session may be what failed).
#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

/// Renders the error page; a template failure falls back to plain text.
pub fn error_html(title: &str, message: &str) -> String {
    ErrorPage { title, message }
        .render()
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><h1>Error</h1>".to_owned())
}
