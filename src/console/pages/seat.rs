//! A seat: device, user, state, key generations, its whole history; retiring it with a
//! confirmation step and a reason that goes into the audit log.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::audit::{EntryRow, entry_row};
use super::field;
use crate::admins::Role;
use crate::app::App;
use crate::console::view::{self, Layout};
use crate::console::{ConsoleError, blocking, guard};
use crate::db::models::Seat;
use crate::seats::rules::MAX_REASON_CHARS;
use crate::seats::{SeatError, SeatState};

/// Most history rows shown for one seat.
const HISTORY_LIMIT: i64 = 500;

#[derive(Template)]
#[template(path = "console/seat.html")]
struct SeatPage {
    layout: Layout,
    seat: Seat,
    state: &'static str,
    active: bool,
    activated: String,
    released: String,
    history: Vec<EntryRow>,
    /// The confirmation step of a retire.
    confirm: bool,
    max_reason: usize,
}

/// Reads a seat (404 for an unknown or malformed id). Blocking.
fn load(app: &App, seat_id: &str) -> Result<(Seat, Vec<EntryRow>), ConsoleError> {
    let mut conn = app.db.conn()?;
    let seat = match crate::seats::find(&mut conn, seat_id) {
        Err(SeatError::Db(e)) => return Err(e.into()),
        Err(_) => return Err(ConsoleError::NotFound(format!("no seat '{seat_id}'"))),
        Ok(seat) => seat,
    };
    let history = crate::audit::for_seat(&mut conn, seat_id, HISTORY_LIMIT)?
        .into_iter()
        .map(entry_row)
        .collect();
    Ok((seat, history))
}

async fn page(
    req: HttpRequest,
    app: web::Data<App>,
    seat_id: String,
    confirm: bool,
) -> Result<HttpResponse, ConsoleError> {
    let role = if confirm { Role::Admin } else { Role::Viewer };
    let session = guard::viewer(&req, &app, role).await?;
    let state = app.into_inner();
    let (seat, history) = blocking(move || load(&state, &seat_id)).await?;
    let flash = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("done="))
        .map(str::to_owned);
    view::render(&SeatPage {
        layout: Layout::new(&session, "dashboard", format!("Seat {}", seat.id))
            .with_flash(flash.as_deref()),
        state: seat.state.as_str(),
        active: seat.state == SeatState::Active,
        activated: view::time(seat.activated_at),
        released: view::time_or(seat.released_at, "-"),
        history,
        confirm,
        max_reason: MAX_REASON_CHARS,
        seat,
    })
}

/// `GET /console/seats/{seat}`
pub async fn show(
    req: HttpRequest,
    app: web::Data<App>,
    seat: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    page(req, app, seat.into_inner(), false).await
}

/// `GET /console/seats/{seat}/retire`: the confirmation step.
pub async fn confirm_retire(
    req: HttpRequest,
    app: web::Data<App>,
    seat: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    page(req, app, seat.into_inner(), true).await
}

#[derive(Debug, serde::Deserialize)]
pub struct RetireForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/seats/{seat}/retire`: `seats::retire`, as `seatkeep seats retire`.
pub async fn retire(
    req: HttpRequest,
    app: web::Data<App>,
    seat: web::Path<String>,
    form: web::Form<RetireForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Admin, &form.csrf).await?;
    let reason = field("reason", &form.reason, MAX_REASON_CHARS)?.to_owned();
    let seat_id = seat.into_inner();
    let state = app.into_inner();
    let id = seat_id.clone();
    blocking(move || {
        load(&state, &id)?;
        crate::seats::retire(&state, &id, &session.actor(), &reason).map_err(ConsoleError::from)
    })
    .await?;
    Ok(view::redirect(&format!(
        "/console/seats/{}?done=retired",
        view::enc(&seat_id)
    )))
}
