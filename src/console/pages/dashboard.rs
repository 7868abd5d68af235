//! The dashboard: a row per license with usage, term, refusals and badges.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::charts::UsageBar;
use crate::admins::Role;
use crate::app::App;
use crate::console::view::{self, Layout};
use crate::console::{ConsoleError, blocking, guard};
use crate::db::models::License;
use crate::db::{DbConn, DbError, refusals};
use crate::seats::LicenseStatus;

const DAY: i64 = 86_400;

/// A badge: its class (`bad`, `warn`, `info`) and text.
#[derive(Debug, Clone)]
pub struct Badge {
    pub class: &'static str,
    pub text: String,
    /// A warning the admins are emailed about: the badge links to the notifications page.
    pub notified: bool,
}

impl Badge {
    fn new(class: &'static str, text: impl Into<String>, notified: bool) -> Self {
        Self {
            class,
            text: text.into(),
            notified,
        }
    }
}

/// One dashboard row.
pub struct Row {
    pub id: String,
    pub product: String,
    pub customer: String,
    pub model: &'static str,
    pub in_use: i64,
    pub seats: i64,
    pub overage: i64,
    pub bar: UsageBar,
    pub term: String,
    pub days_left: String,
    pub refused_24h: i64,
    pub badges: Vec<Badge>,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    rows: Vec<Row>,
    clock_untrusted: bool,
}

/// The badges of a license at `now` (DESIGN §8's warnings, as the emails use them).
pub fn badges(
    app: &App,
    conn: &mut DbConn,
    license: &License,
    now: i64,
    clock_untrusted: bool,
) -> Result<Vec<Badge>, DbError> {
    let mut out = Vec::new();
    if license.status == LicenseStatus::Revoked {
        out.push(Badge::new("bad", "revoked", false));
    }
    if license.in_use >= license.capacity {
        out.push(Badge::new("bad", "exhausted", true));
    } else if license.in_use * 100 >= i64::from(app.config.notify.threshold_percent) * license.seats
    {
        out.push(Badge::new(
            "warn",
            format!("near threshold ({}%)", app.config.notify.threshold_percent),
            true,
        ));
    }
    if license.in_use > license.capacity {
        out.push(Badge::new(
            "warn",
            format!("over-allocated by {}", license.in_use - license.capacity),
            false,
        ));
    }
    if let Some(exp) = license.expires_at {
        let warn_days = app
            .config
            .notify
            .expiring_days
            .iter()
            .max()
            .copied()
            .unwrap_or(30);
        if exp <= now {
            out.push(Badge::new("bad", "expired", true));
        } else if exp - now <= i64::from(warn_days) * DAY {
            out.push(Badge::new("warn", "expiring", true));
        }
    }
    if clock_untrusted {
        out.push(Badge::new("bad", "clock untrusted", true));
    }
    // The same status `seatkeep federation status` prints.
    let alert_after =
        i64::try_from(app.config.federation.alert_after.as_secs()).unwrap_or(i64::MAX);
    match crate::federation::status::of_license(conn, &license.id, now, alert_after)? {
        Some(f) if f.overdue => out.push(Badge::new("bad", "federation overdue", true)),
        Some(f) if f.alerting => out.push(Badge::new("warn", "federation behind", true)),
        _ => {}
    }
    Ok(out)
}

/// "in 12 days", "expired", "perpetual".
pub fn days_left(expires_at: Option<i64>, now: i64) -> String {
    match expires_at {
        None => "perpetual".to_owned(),
        Some(exp) if exp <= now => "expired".to_owned(),
        Some(exp) => format!("{} days", (exp - now) / DAY),
    }
}

/// "from … until …" of a license's term.
pub fn term(license: &License) -> String {
    format!(
        "{} – {}",
        view::time_or(license.not_before, "start"),
        view::time_or(license.expires_at, "perpetual")
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console`
pub async fn show(
    req: HttpRequest,
    app: web::Data<App>,
    query: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Viewer).await?;
    let state = app.into_inner();
    let (rows, clock_untrusted) = blocking(move || {
        let now = state.clock.now();
        let clock_untrusted = state.clock.check(now).is_err();
        let mut conn = state.db.conn()?;
        let licenses = crate::licenses::list(&mut conn)?;
        let mut rows = Vec::with_capacity(licenses.len());
        for l in licenses {
            rows.push(Row {
                refused_24h: refusals::total_since(&mut conn, &l.id, now - DAY)?,
                badges: badges(&state, &mut conn, &l, now, clock_untrusted)?,
                bar: UsageBar::new(l.in_use, l.seats, l.capacity),
                term: term(&l),
                days_left: days_left(l.expires_at, now),
                overage: (l.in_use - l.seats).max(0),
                model: l.model.as_str(),
                product: format!("{} (edition {})", l.product_name, l.product_edition),
                customer: l.customer_name,
                in_use: l.in_use,
                seats: l.seats,
                id: l.id,
            });
        }
        Ok((rows, clock_untrusted))
    })
    .await?;
    view::render(&DashboardPage {
        layout: Layout::new(&session, "dashboard", "Dashboard").with_flash(query.done.as_deref()),
        rows,
        clock_untrusted,
    })
}
