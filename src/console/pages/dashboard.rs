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
    let bad = |text: &str| Badge {
        class: "bad",
        text: text.to_owned(),
    };
    if license.status == LicenseStatus::Revoked {
        out.push(bad("revoked"));
    }
    if license.in_use >= license.capacity {
        out.push(bad("exhausted"));
    } else if license.in_use * 100 >= i64::from(app.config.notify.threshold_percent) * license.seats
    {
        out.push(Badge {
            class: "warn",
            text: format!("near threshold ({}%)", app.config.notify.threshold_percent),
        });
    }
    if license.in_use > license.capacity {
        out.push(Badge {
            class: "warn",
            text: format!("over-allocated by {}", license.in_use - license.capacity),
        });
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
            out.push(bad("expired"));
        } else if exp - now <= i64::from(warn_days) * DAY {
            out.push(Badge {
                class: "warn",
                text: "expiring".to_owned(),
            });
        }
    }
    if clock_untrusted {
        out.push(bad("clock untrusted"));
    }
    // The same status `seatkeep federation status` prints.
    let alert_after =
        i64::try_from(app.config.federation.alert_after.as_secs()).unwrap_or(i64::MAX);
    match crate::federation::status::of_license(conn, &license.id, now, alert_after)? {
        Some(f) if f.overdue => out.push(bad("federation overdue")),
        Some(f) if f.alerting => out.push(Badge {
            class: "warn",
            text: "federation behind".to_owned(),
        }),
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
