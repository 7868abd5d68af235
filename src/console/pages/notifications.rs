//! The email outbox (`notify::outbox::list`), with a retry button for admins that calls the
//! same function as `seatkeep notify retry`.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::admins::Role;
use crate::app::App;
use crate::console::view::{self, Layout};
use crate::console::{ConsoleError, blocking, guard};
use crate::notify::outbox::{self, Filter, NotificationState};

/// Rows shown.
const LIMIT: i64 = 200;

/// A notification as listed.
pub struct Row {
    pub id: i64,
    pub kind: String,
    pub license: String,
    pub state: String,
    pub attempts: i64,
    pub when: String,
    pub subject: String,
    pub error: String,
    pub retryable: bool,
}

#[derive(Template)]
#[template(path = "console/notifications.html")]
struct NotificationsPage {
    layout: Layout,
    rows: Vec<Row>,
    filter: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct Params {
    #[serde(default)]
    state: String,
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/notifications`
pub async fn show(
    req: HttpRequest,
    app: web::Data<App>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Viewer).await?;
    let filter = match params.state.as_str() {
        "" => Filter::All,
        s if s == NotificationState::Pending.as_str() => Filter::Pending,
        s if s == NotificationState::Failed.as_str() => Filter::Failed,
        _ => return Err(ConsoleError::BadRequest("state: pending or failed".into())),
    };
    let state = app.into_inner();
    let listed = blocking(move || Ok(outbox::list(&mut *state.db.conn()?, filter, LIMIT)?)).await?;
    let rows = listed
        .into_iter()
        .map(|r| Row {
            when: if r.state == NotificationState::Sent {
                format!("sent {}", view::time_or(r.sent_at, "-"))
            } else {
                format!("next try {}", view::time(r.next_attempt_at))
            },
            retryable: r.state != NotificationState::Sent,
            error: r
                .last_error
                .filter(|_| r.state != NotificationState::Sent)
                .unwrap_or_default(),
            id: r.id,
            kind: r.kind,
            license: r.license_id.unwrap_or_default(),
            state: r.state.as_str().to_owned(),
            attempts: r.attempts,
            subject: r.subject,
        })
        .collect();
    view::render(&NotificationsPage {
        layout: Layout::new(&session, "notifications", "Notifications")
            .with_flash(params.done.as_deref()),
        rows,
        filter: params.state.clone(),
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/notifications/{id}/retry`: `outbox::retry_now`, as `seatkeep notify retry`.
pub async fn retry(
    req: HttpRequest,
    app: web::Data<App>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Admin, &form.csrf).await?;
    let id = id.into_inner();
    let state = app.into_inner();
    let actor = session.actor();
    let done = blocking(move || Ok(outbox::retry_now(&state, id, &actor)?)).await?;
    if !done {
        return Err(ConsoleError::NotFound(format!(
            "no unsent notification {id}"
        )));
    }
    Ok(view::redirect("/console/notifications?done=retried"))
}
