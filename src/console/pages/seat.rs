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
/// Most packets listed for one seat (the counts cover all of them).
const PACKET_LIMIT: i64 = 100;

/// A metered seat's packets and what its device reported (DESIGN §10.3).
pub struct SeatMeter {
    pub unit: String,
    pub packets: i64,
    pub issued: i64,
    /// The highest packet the device reported applied, and the units it reported used.
    pub reported_last_seq: i64,
    pub reported_used: i64,
    /// Issued but not reported used: on the device, lapsed, or lost with it.
    pub stranded: i64,
    pub flag: Option<String>,
    pub recent: Vec<PacketLine>,
}

/// One packet row.
pub struct PacketLine {
    pub seq: i64,
    pub device_jkt: String,
    pub amount: i64,
    pub issued: String,
    pub expires: String,
    pub request_jti: String,
    pub signed: bool,
}

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
    /// Set for a seat of a metered license.
    meter: Option<SeatMeter>,
    /// The confirmation step of a retire.
    confirm: bool,
    max_reason: usize,
}

/// What the seat page shows besides the seat.
struct Loaded {
    seat: Seat,
    history: Vec<EntryRow>,
    meter: Option<SeatMeter>,
}

/// Reads a seat (404 for an unknown or malformed id). Blocking.
fn load(app: &App, seat_id: &str) -> Result<Loaded, ConsoleError> {
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
    let terms = match crate::licenses::find(&mut conn, &seat.license_id)? {
        Some(license) => crate::meter::terms_of(&license)?,
        None => None,
    };
    let meter = match terms {
        Some(terms) => {
            let usage = crate::meter::ops::seat_usage(&mut conn, seat_id, PACKET_LIMIT)?;
            Some(SeatMeter {
                unit: terms.unit.as_str().to_owned(),
                packets: usage.packets,
                issued: usage.issued,
                reported_last_seq: seat.reported_last_seq,
                reported_used: seat.reported_used,
                stranded: (usage.issued - seat.reported_used).max(0),
                flag: seat.meter_flag.clone(),
                recent: usage
                    .recent
                    .into_iter()
                    .map(|p| PacketLine {
                        seq: p.seq,
                        device_jkt: p.device_jkt,
                        amount: p.amount,
                        issued: view::time(p.issued_at),
                        expires: view::time_or(p.expires_at, "-"),
                        request_jti: p.request_jti,
                        signed: p.signed,
                    })
                    .collect(),
            })
        }
        None => None,
    };
    Ok(Loaded {
        seat,
        history,
        meter,
    })
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
    let Loaded {
        seat,
        history,
        meter,
    } = blocking(move || load(&state, &seat_id)).await?;
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
        meter,
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
    // An unknown seat is 404 by its code (unknown_seat), as in the device API.
    blocking(move || {
        crate::seats::retire(&state, &id, &session.actor(), &reason).map_err(ConsoleError::from)
    })
    .await?;
    Ok(view::redirect(&format!(
        "/console/seats/{}?done=retired",
        view::enc(&seat_id)
    )))
}
