//! Admin accounts (owner only): list, add, change role, reset a password (a generated one,
//! shown once), remove. The same `admins::*` functions as `seatkeep admin`.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::field;
use crate::admins::{self, Role};
use crate::app::App;
use crate::console::view::{self, Flash, Layout};
use crate::console::{ConsoleError, blocking, guard};

/// An admin as listed.
pub struct AdminRow {
    pub username: String,
    pub role: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/admins.html")]
struct AdminsPage {
    layout: Layout,
    admins: Vec<AdminRow>,
    roles: [&'static str; 3],
}

async fn render_page(
    session: crate::console::session::Session,
    app: web::Data<App>,
    flash: Option<Flash>,
    done: Option<&str>,
) -> Result<HttpResponse, ConsoleError> {
    let state = app.into_inner();
    let rows = blocking(move || Ok(admins::list(&state.db)?)).await?;
    let mut layout = Layout::new(&session, "admins", "Admins").with_flash(done);
    if flash.is_some() {
        layout.flash = flash;
    }
    view::render(&AdminsPage {
        layout,
        admins: rows
            .into_iter()
            .map(|a| AdminRow {
                created: view::time(a.created_at),
                username: a.username,
                role: a.role.as_str().to_owned(),
            })
            .collect(),
        roles: Role::ALL.map(Role::as_str),
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/admins`
pub async fn show(
    req: HttpRequest,
    app: web::Data<App>,
    query: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Owner).await?;
    render_page(session, app, None, query.done.as_deref()).await
}

#[derive(Debug, serde::Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

fn parse_role(text: &str) -> Result<Role, ConsoleError> {
    Role::parse(text).ok_or_else(|| ConsoleError::BadRequest("role: owner, admin or viewer".into()))
}

/// The generated password, shown once.
fn shown_once(username: &str, password: &str) -> Option<Flash> {
    Some(Flash {
        kind: "secret",
        text: format!("Password of {username} (shown once, pass it on safely): {password}"),
    })
}

/// `POST /console/admins`: `admins::add` with a generated password.
pub async fn add(
    req: HttpRequest,
    app: web::Data<App>,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Owner, &form.csrf).await?;
    let username = field("user name", &form.username, 64)?.to_owned();
    let role = parse_role(&form.role)?;
    let password = admins::generate_password();
    let (state, actor, name, secret) = (
        app.clone().into_inner(),
        session.actor(),
        username.clone(),
        password.clone(),
    );
    blocking(move || Ok(admins::add(&state, &name, role, &secret, &actor)?)).await?;
    render_page(session, app, shown_once(&username, &password), None).await
}

#[derive(Debug, serde::Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// `POST /console/admins/{name}/role`
pub async fn set_role(
    req: HttpRequest,
    app: web::Data<App>,
    name: web::Path<String>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Owner, &form.csrf).await?;
    let role = parse_role(&form.role)?;
    let (state, actor, name) = (app.into_inner(), session.actor(), name.into_inner());
    blocking(move || Ok(admins::set_role(&state, &name, role, &actor)?)).await?;
    Ok(view::redirect("/console/admins?done=role"))
}

#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/admins/{name}/password`: a generated password, shown once; the admin's
/// sessions end.
pub async fn reset_password(
    req: HttpRequest,
    app: web::Data<App>,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Owner, &form.csrf).await?;
    let password = admins::generate_password();
    let name = name.into_inner();
    let (state, actor, who, secret) = (
        app.clone().into_inner(),
        session.actor(),
        name.clone(),
        password.clone(),
    );
    blocking(move || Ok(admins::set_password(&state, &who, &secret, &actor)?)).await?;
    if name == session.username {
        // Their own sessions ended with the change.
        return Ok(view::redirect("/console/login?done=password"));
    }
    render_page(session, app, shown_once(&name, &password), None).await
}

/// `POST /console/admins/{name}/remove`
pub async fn remove(
    req: HttpRequest,
    app: web::Data<App>,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Owner, &form.csrf).await?;
    let (state, actor, name) = (app.into_inner(), session.actor(), name.into_inner());
    let own = name == session.username;
    blocking(move || Ok(admins::remove(&state, &name, &actor)?)).await?;
    Ok(view::redirect(if own {
        "/console/login"
    } else {
        "/console/admins?done=removed"
    }))
}
