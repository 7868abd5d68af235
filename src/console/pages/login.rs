//! Sign in and out. Failures say only that the name or password was wrong; Argon2 runs
//! off the async workers; throttling is in [`crate::console::throttle`].

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::admins;
use crate::app::App;
use crate::console::view::{self, Flash};
use crate::console::{ConsoleError, blocking, csrf, session, throttle};

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    flash: Option<Flash>,
    username: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/login`
pub async fn form(query: web::Query<Done>) -> Result<HttpResponse, ConsoleError> {
    let flash = view::Layout::flash_for(query.done.as_deref());
    view::render(&LoginPage {
        flash,
        username: String::new(),
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// A hash to verify against when the name is unknown, so both failures take as long.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `POST /console/login`
pub async fn submit(
    req: HttpRequest,
    app: web::Data<App>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    csrf::check_origin(&req, &app.config.public_url())?;
    super::plain_text("user name", &form.username)?;
    let LoginForm { username, password } = form.into_inner();
    // The address the device API's rate limit uses: behind a trusted proxy the forwarded
    // one, so one client cannot throttle everyone who signs in through the proxy.
    let client = crate::web::rate::request_client_ip(&req)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let shown_name: String = username.chars().take(64).collect();
    let state = app.clone().into_inner();
    let outcome = blocking(move || {
        if let Some(wait) = throttle::retry_after(&state, &username, &client)? {
            return Ok(Err(Some(wait)));
        }
        let admin = admins::find(&state.db, &username).map_err(ConsoleError::from)?;
        let stored = match &admin {
            Some(a) => a.password_hash.clone(),
            None => DUMMY_HASH
                .get_or_init(|| admins::hash_password("no such admin").unwrap_or_default())
                .clone(),
        };
        let ok = admins::verify_password(&password, &stored);
        match admin {
            Some(a) if ok => Ok(Ok(session::create(&state, &a.id)?)),
            _ => {
                throttle::record_failure(&state, &username, &client)?;
                Ok(Err(None))
            }
        }
    })
    .await?;
    match outcome {
        Ok(cookie) => {
            tracing::info!(admin = %shown_name, "console sign-in");
            let mut response = view::redirect("/console");
            response
                .add_cookie(&session::cookie(&req, &cookie))
                .map_err(|e| ConsoleError::Internal(e.to_string()))?;
            Ok(response)
        }
        Err(wait) => {
            let (status, text) = match wait {
                Some(secs) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed sign-ins for this name or from this address. Try again in {} minute(s).",
                        (secs + 59) / 60
                    ),
                ),
                None => (
                    StatusCode::UNAUTHORIZED,
                    "Wrong user name or password.".to_owned(),
                ),
            };
            let page = LoginPage {
                flash: Some(Flash::error(text)),
                username: shown_name,
            };
            let mut response = view::html(status, page.render()?);
            if let Some(secs) = wait {
                response.headers_mut().insert(
                    RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(secs),
                );
            }
            Ok(response)
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /console/logout`: deletes the session row, so the old cookie opens nothing.
pub async fn logout(
    req: HttpRequest,
    app: web::Data<App>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    let signed_in =
        crate::console::guard::actor(&req, &app, crate::admins::Role::Viewer, &form.csrf).await?;
    let state = app.into_inner();
    blocking(move || session::end_session(&state, &signed_in)).await?;
    let mut response = view::redirect("/console/login?done=loggedout");
    response
        .add_cookie(&session::removal(&req))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(response)
}
