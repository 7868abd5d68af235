//! Console sessions in the database: the cookie holds 256 random bits, the table only their
//! SHA-256, so a leaked table opens nothing. Idle and absolute timeouts come from
//! `[console]`; logout and password changes delete the rows.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use base64::Engine as _;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::ConsoleError;
use crate::admins::Role;
use crate::app::App;
use crate::db::schema::{admins, console_sessions};
use crate::db::word::Word;

/// The session cookie's name.
pub const COOKIE: &str = "seatkeep_console";

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    id_hash: String,
    pub admin_id: String,
    pub username: String,
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl Session {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.username)
    }
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn hash(cookie_value: &str) -> String {
    hex::encode(Sha256::digest(cookie_value.as_bytes()))
}

/// Starts a session for an admin; returns the cookie value (shown to nobody else).
/// Blocking.
pub fn create(app: &App, admin_id: &str) -> Result<String, ConsoleError> {
    let value = random_token();
    let (id_hash, csrf, admin_id) = (hash(&value), random_token(), admin_id.to_owned());
    let now = app.clock.now();
    app.db.write("~console_sessions", move |conn| {
        diesel::insert_into(console_sessions::table)
            .values((
                console_sessions::id_hash.eq(&id_hash),
                console_sessions::admin_id.eq(&admin_id),
                console_sessions::csrf_token.eq(&csrf),
                console_sessions::created_at.eq(now),
                console_sessions::last_seen.eq(now),
            ))
            .execute(conn)
            .map_err(ConsoleError::from)
    })?;
    Ok(value)
}

/// The session the request's cookie names, if it is alive; an expired one is deleted.
/// Blocking.
pub fn load(app: &App, cookie_value: &str) -> Result<Option<Session>, ConsoleError> {
    let id_hash = hash(cookie_value);
    let row: Option<(String, String, i64, i64, String, Word<Role>)> = console_sessions::table
        .inner_join(admins::table)
        .filter(console_sessions::id_hash.eq(&id_hash))
        .select((
            console_sessions::admin_id,
            console_sessions::csrf_token,
            console_sessions::created_at,
            console_sessions::last_seen,
            admins::username,
            admins::role,
        ))
        .get_result(&mut *app.db.conn()?)
        .optional()?;
    let Some((admin_id, csrf, created_at, last_seen, username, role)) = row else {
        return Ok(None);
    };
    let now = app.clock.now();
    let console = &app.config.console;
    if now - last_seen >= console.idle_secs() || now - created_at >= console.lifetime_secs() {
        end(app, cookie_value)?;
        return Ok(None);
    }
    // Touch at most every tenth of the idle timeout (and at least every minute): one write
    // per request would cost a durable commit each.
    if now - last_seen >= (console.idle_secs() / 10).clamp(1, 60) {
        let touched = id_hash.clone();
        app.db.write("~console_sessions", move |conn| {
            diesel::update(console_sessions::table.find(&touched))
                .set(console_sessions::last_seen.eq(now))
                .execute(conn)
                .map_err(ConsoleError::from)
        })?;
    }
    let role = Role::from(role);
    Ok(Some(Session {
        id_hash,
        admin_id,
        username,
        role,
        csrf,
    }))
}

/// Ends the session of this cookie value (logout). Blocking.
pub fn end(app: &App, cookie_value: &str) -> Result<(), ConsoleError> {
    delete(app, hash(cookie_value))
}

/// Ends a loaded session. Blocking.
pub fn end_session(app: &App, session: &Session) -> Result<(), ConsoleError> {
    delete(app, session.id_hash.clone())
}

fn delete(app: &App, id_hash: String) -> Result<(), ConsoleError> {
    app.db.write("~console_sessions", move |conn| {
        diesel::delete(console_sessions::table.find(&id_hash))
            .execute(conn)
            .map_err(ConsoleError::from)
    })?;
    Ok(())
}

/// The cookie value the request carries.
pub fn cookie_value(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE).map(|c| c.value().to_owned())
}

/// The session cookie: HttpOnly, SameSite=Strict, Path=/console, Secure over TLS.
pub fn cookie(req: &HttpRequest, value: &str) -> Cookie<'static> {
    Cookie::build(COOKIE, value.to_owned())
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .finish()
}

/// A cookie that removes the session cookie from the browser.
pub fn removal(req: &HttpRequest) -> Cookie<'static> {
    let mut gone = cookie(req, "");
    gone.make_removal();
    gone
}
