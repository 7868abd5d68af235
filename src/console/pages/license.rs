//! A license: the terms of its current key file, its key file history, charts of seats in
//! use and refusals, and its seats (search, state filter, sort, 50 a page).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::charts::{Chart, UsageBar};
use super::dashboard::{Badge, badges, days_left, term};
use crate::admins::Role;
use crate::app::App;
use crate::console::view::{self, Layout, PageLink, Pager};
use crate::console::{ConsoleError, blocking, guard};
use crate::db::models::{License, Seat};
use crate::db::word::StoredWord as _;
use crate::db::{DbConn, refusals};
use crate::meter::{self, PoolStatus};
use crate::seats::{self, SeatPageQuery, SeatSort, SeatState};

/// Seats per page.
pub const PAGE_SIZE: i64 = 50;
/// Deepest offset a page link may ask for (a search narrows further than that).
const MAX_OFFSET: i64 = 1_000_000;
const DAY: i64 = 86_400;

/// The seat list's query string: every field text, parsed here so a bad value gets a
/// clear message.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SeatParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: String,
    /// The flash of an action that redirected here.
    #[serde(default)]
    done: String,
}

struct Parsed {
    search: String,
    state: Option<SeatState>,
    sort: SeatSort,
    descending: bool,
    page: i64,
}

impl SeatParams {
    fn parse(&self) -> Result<Parsed, ConsoleError> {
        let bad = |what: &str| ConsoleError::BadRequest(what.to_owned());
        let search = self.q.trim();
        if search.chars().count() > 128 {
            return Err(bad("search: at most 128 characters"));
        }
        let state = match self.state.as_str() {
            "" | "all" => None,
            word => Some(
                SeatState::from_word(word)
                    .ok_or_else(|| bad("state: one of active, retired, returned, revoked"))?,
            ),
        };
        let sort = match self.sort.as_str() {
            "" | "device" => SeatSort::DeviceId,
            "user" => SeatSort::UserName,
            "activated" => SeatSort::ActivatedAt,
            _ => return Err(bad("sort: one of device, user, activated")),
        };
        let descending = match self.dir.as_str() {
            "" | "asc" => false,
            "desc" => true,
            _ => return Err(bad("dir: asc or desc")),
        };
        let page = match self.page.as_str() {
            "" => 1,
            text => text
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=MAX_OFFSET / PAGE_SIZE).contains(p))
                .ok_or_else(|| bad("page: a number from 1"))?,
        };
        Ok(Parsed {
            search: search.to_owned(),
            state,
            sort,
            descending,
            page,
        })
    }
}

/// One seat row.
pub struct SeatRow {
    pub id: String,
    pub device_id: String,
    pub user_name: String,
    pub state: &'static str,
    pub generation: i64,
    pub activated: String,
}

/// A stored key file, for the history table.
pub struct HistoryRow {
    pub seq: i64,
    pub imported: String,
    pub by: String,
    pub jti: String,
}

/// A metered license's pool: its figures, a gauge of issued against sold, and what was
/// issued per day and month.
pub struct PoolView {
    pub status: PoolStatus,
    pub bar: UsageBar,
    pub charts: Vec<Chart>,
}

#[derive(Template)]
#[template(path = "console/license.html")]
struct LicensePage {
    layout: Layout,
    license: License,
    bar: UsageBar,
    term: String,
    days_left: String,
    badges: Vec<Badge>,
    admins: Vec<String>,
    channel: String,
    history: Vec<HistoryRow>,
    charts: Vec<Chart>,
    /// A metered license's pool (DESIGN §10.1).
    pool: Option<PoolView>,
    seats: Vec<SeatRow>,
    total: i64,
    /// More than `total` seats match the search; only the first `total` are paged.
    capped: bool,
    pager: Pager,
    search: String,
    state: String,
    sort: String,
    dir: String,
}

/// `GET /console/licenses/{lic}`
pub async fn show(
    req: HttpRequest,
    app: web::Data<App>,
    lic: web::Path<String>,
    params: web::Query<SeatParams>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Viewer).await?;
    let parsed = params.parse()?;
    let lic = lic.into_inner();
    let state = app.into_inner();
    let mut page = blocking(move || build(&state, session, &lic, parsed)).await?;
    page.layout = page.layout.with_flash(Some(params.done.as_str()));
    view::render(&page)
}

fn build(
    app: &App,
    session: crate::console::session::Session,
    lic: &str,
    p: Parsed,
) -> Result<LicensePage, ConsoleError> {
    let now = app.clock.now();
    let mut conn = app.db.conn()?;
    let license = crate::licenses::find(&mut conn, lic)?
        .ok_or_else(|| ConsoleError::NotFound(format!("no license '{lic}'")))?;
    let query = SeatPageQuery {
        search: Some(p.search.as_str()),
        state: p.state,
        sort: p.sort,
        descending: p.descending,
        offset: (p.page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let found = seats::page(&mut conn, lic, &query)?;
    let (rows, total, capped) = (found.rows, found.total, found.capped);
    let sort = match p.sort {
        SeatSort::DeviceId => "device",
        SeatSort::UserName => "user",
        SeatSort::ActivatedAt => "activated",
    };
    let state_word = p.state.map_or("", |s| s.as_str());
    let dir = if p.descending { "desc" } else { "asc" };
    let link = |page: i64| {
        format!(
            "/console/licenses/{}?q={}&state={state_word}&sort={sort}&dir={dir}&page={page}",
            view::enc(lic),
            view::enc(&p.search)
        )
    };
    let last_page = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let pager = Pager {
        prev: (p.page > 1).then(|| PageLink {
            label: "← previous".into(),
            href: link(p.page - 1),
        }),
        next: (p.page < last_page).then(|| PageLink {
            label: "next →".into(),
            href: link(p.page + 1),
        }),
        summary: if capped {
            format!("page {} of the first {last_page}", p.page)
        } else {
            format!("page {} of {last_page} · {total} seats", p.page)
        },
    };
    let history = crate::licenses::history(&mut conn, lic)?
        .into_iter()
        .map(|k| HistoryRow {
            seq: k.seq,
            imported: view::time(k.imported_at),
            by: k.imported_by,
            jti: k.jti,
        })
        .collect();
    let charts = charts(&mut conn, &license, now)?;
    let pool = match crate::meter::terms_of(&license)? {
        Some(terms) => Some(pool_view(&mut conn, &license, &terms, now)?),
        None => None,
    };
    let clock_untrusted = app.clock.check(now).is_err();
    Ok(LicensePage {
        layout: Layout::new(&session, "dashboard", format!("License {lic}")),
        bar: UsageBar::new(license.in_use, license.seats, license.capacity),
        term: term(&license),
        days_left: days_left(license.expires_at, now),
        badges: badges(app, &mut conn, &license, now, clock_untrusted)?,
        admins: serde_json::from_str(&license.admins).unwrap_or_default(),
        channel: license.channel.clone().unwrap_or_else(|| "-".into()),
        history,
        charts,
        pool,
        seats: rows.into_iter().map(seat_row).collect(),
        total,
        capped,
        pager,
        search: p.search,
        state: state_word.to_owned(),
        sort: sort.to_owned(),
        dir: dir.to_owned(),
        license,
    })
}

fn seat_row(s: Seat) -> SeatRow {
    SeatRow {
        activated: view::time(s.activated_at),
        state: s.state.as_str(),
        generation: s.generation,
        device_id: s.device_id,
        user_name: s.user_name,
        id: s.id,
    }
}

/// Seats in use at the end of each of the last 30 days and 12 months (from the journal's
/// activations and releases per day, counted back from today's number), and refusals likewise.
fn charts(conn: &mut DbConn, license: &License, now: i64) -> Result<Vec<Chart>, ConsoleError> {
    let today = now.div_euclid(DAY);
    let since = (today - 364) * DAY;
    let moves = crate::seats::moves::by_day(conn, &license.id, since)?;
    // in_use at the end of day d = now's count minus the net moves of the days after d.
    let mut in_use_by_day = vec![0i64; 365];
    let mut net_after = 0;
    let mut moves = moves.into_iter().rev().peekable();
    // Moves dated after today (a clock set back) count as after every day shown.
    while let Some(m) = moves.peek().filter(|m| m.day > today) {
        net_after += m.taken - m.freed;
        moves.next();
    }
    for offset in 0..365 {
        let day = today - offset;
        in_use_by_day[364 - usize::try_from(offset).unwrap_or(0)] =
            (license.in_use - net_after).max(0);
        while let Some(m) = moves.peek().filter(|m| m.day == day) {
            net_after += m.taken - m.freed;
            moves.next();
        }
    }
    let mut refused_by_day = vec![0i64; 365];
    for (bucket, refused) in refusals::per_bucket_since(conn, &license.id, since)? {
        let index = bucket.div_euclid(DAY) - (today - 364);
        if let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| refused_by_day.get_mut(i))
        {
            *slot += refused;
        }
    }
    Ok(vec![
        Chart::new(
            "chart-usage-30d",
            "Seats in use, last 30 days".into(),
            "bar",
            &last_30(today, &in_use_by_day),
        ),
        Chart::new(
            "chart-refused-30d",
            "Refused activations, last 30 days".into(),
            "refused",
            &last_30(today, &refused_by_day),
        ),
        Chart::new(
            "chart-usage-12m",
            "Seats in use, last 12 months".into(),
            "bar",
            &monthly(today, &in_use_by_day, false),
        ),
        Chart::new(
            "chart-refused-12m",
            "Refused activations, last 12 months".into(),
            "refused",
            &monthly(today, &refused_by_day, true),
        ),
    ])
}

/// The date of slot `i` of a 365-day series ending today.
fn day_label(today: i64, i: usize) -> String {
    view::time((today - 364 + i64::try_from(i).unwrap_or(0)) * DAY)[..10].to_owned()
}

/// The last 30 days of a 365-day series, oldest first.
fn last_30(today: i64, series: &[i64]) -> Vec<(String, i64)> {
    (335..365.min(series.len()))
        .map(|i| (day_label(today, i), series[i]))
        .collect()
}

/// Twelve blocks of about a month (365 days from the oldest): the value at the block's end,
/// or summed over it.
fn monthly(today: i64, series: &[i64], sum: bool) -> Vec<(String, i64)> {
    (0..12)
        .filter_map(|m| {
            let start = 5 + m * 30;
            let block = series.get(start..start + 30)?;
            let value = if sum {
                block.iter().sum()
            } else {
                *block.last()?
            };
            Some((day_label(today, start + 29)[..7].to_owned(), value))
        })
        .collect()
}

/// The pool of a metered license with its charts: units issued per day over the last 30
/// days and per month over 12, from the day counts the issuing transactions keep.
fn pool_view(
    conn: &mut DbConn,
    license: &License,
    terms: &seatkeep_device::meter::MeterTerms,
    now: i64,
) -> Result<PoolView, ConsoleError> {
    let status = meter::ops::pool_status(conn, license, terms)?;
    let lic = license.id.as_str();
    let today = now.div_euclid(DAY);
    let mut units_by_day = vec![0i64; 365];
    for d in meter::daily::by_day(conn, lic, (today - 364) * DAY)? {
        let index = d.day - (today - 364);
        if let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| units_by_day.get_mut(i))
        {
            *slot += d.units;
        }
    }
    let unit = status.unit.clone();
    let bar = UsageBar::new(status.issued, status.units, status.cap).with_label(format!(
        "{} of {} {unit} issued",
        status.issued, status.units
    ));
    Ok(PoolView {
        charts: vec![
            Chart::new(
                "chart-units-30d",
                format!("Units issued ({unit}), last 30 days"),
                "bar",
                &last_30(today, &units_by_day),
            ),
            Chart::new(
                "chart-units-12m",
                format!("Units issued ({unit}), last 12 months"),
                "bar",
                &monthly(today, &units_by_day, true),
            ),
        ],
        bar,
        status,
    })
}
