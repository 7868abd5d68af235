//! One's own account: change the password (the current one required). Every session of the
//! account ends, this one included.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::admins::{self, MIN_PASSWORD_LEN, Role};
use crate::app::App;
use crate::console::view::{self, Flash, Layout};
use crate::console::{ConsoleError, blocking, guard, session};

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    layout: Layout,
    min_len: usize,
}

/// `GET /console/account`
pub async fn show(req: HttpRequest, app: web::Data<App>) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Viewer).await?;
    view::render(&AccountPage {
        layout: Layout::new(&session, "account", "Account"),
        min_len: MIN_PASSWORD_LEN,
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    again: String,
}

/// `POST /console/account/password`: `admins::set_password`, as `seatkeep admin passwd`.
pub async fn change_password(
    req: HttpRequest,
    app: web::Data<App>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    let signed_in = guard::actor(&req, &app, Role::Viewer, &form.csrf).await?;
    let PasswordForm {
        current,
        new,
        again,
        ..
    } = form.into_inner();
    let refuse =
        |text: String, signed_in: &session::Session| -> Result<HttpResponse, ConsoleError> {
            let mut layout = Layout::new(signed_in, "account", "Account");
            layout.flash = Some(Flash::error(text));
            let page = AccountPage {
                layout,
                min_len: MIN_PASSWORD_LEN,
            };
            Ok(view::html(
                actix_web::http::StatusCode::BAD_REQUEST,
                page.render()?,
            ))
        };
    if new != again {
        return refuse("The new passwords differ.".into(), &signed_in);
    }
    if new.chars().count() < MIN_PASSWORD_LEN {
        return refuse(
            format!("The new password must be at least {MIN_PASSWORD_LEN} characters."),
            &signed_in,
        );
    }
    if new.chars().count() > 1024 {
        return refuse(
            "The new password is longer than 1024 characters.".into(),
            &signed_in,
        );
    }
    let state = app.into_inner();
    let who = signed_in.clone();
    let changed = blocking(move || {
        let admin =
            admins::find(&state.db, &who.username)?.ok_or_else(|| ConsoleError::LoginRequired)?;
        if !admins::verify_password(&current, &admin.password_hash) {
            return Ok(false);
        }
        admins::set_password(&state, &who.username, &new, &who.actor())?;
        Ok(true)
    })
    .await?;
    if !changed {
        return refuse("The current password is wrong.".into(), &signed_in);
    }
    let mut response = view::redirect("/console/login?done=password");
    response
        .add_cookie(&session::removal(&req))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(response)
}
