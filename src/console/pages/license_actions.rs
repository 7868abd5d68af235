//! Actions on a license from its page: the seat export (role admin; the bytes of
//! `seatkeep export seats`, from the same function) and revocation / reinstatement (role
//! owner; as `seatkeep licenses revoke|reinstate`, audited as `admin:NAME`).

use std::io::Write as _;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::field;
use crate::admins::Role;
use crate::app::App;
use crate::console::{ConsoleError, blocking, download, guard, view};
use crate::export::{self, ExportError, ExportFormat, StateFilter};
use crate::revocation::{self, MAX_REASON, RevocationError};

impl From<ExportError> for ConsoleError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Db(db) => Self::Db(db),
            ExportError::UnknownLicense(_) => Self::NotFound(e.to_string()),
            ExportError::Write(io) => Self::Internal(io.to_string()),
        }
    }
}

impl From<RevocationError> for ConsoleError {
    fn from(e: RevocationError) -> Self {
        match e {
            RevocationError::Db(db) => Self::Db(db),
            RevocationError::UnknownLicense(_) => Self::NotFound(e.to_string()),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

/// The export's query string.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ExportParams {
    #[serde(default)]
    format: String,
    #[serde(default)]
    state: String,
}

/// `GET /console/licenses/{lic}/seats.export?format=csv|json&state=active|all`: a download.
pub async fn export_seats(
    req: HttpRequest,
    app: web::Data<App>,
    lic: web::Path<String>,
    params: web::Query<ExportParams>,
) -> Result<HttpResponse, ConsoleError> {
    guard::viewer(&req, &app, Role::Admin).await?;
    let bad = |what: &str| ConsoleError::BadRequest(what.to_owned());
    let format = match params.format.as_str() {
        "" | "csv" => ExportFormat::Csv,
        "json" => ExportFormat::Json,
        _ => return Err(bad("format: csv or json")),
    };
    let filter = match params.state.as_str() {
        "" | "active" => StateFilter::Active,
        "all" => StateFilter::All,
        _ => return Err(bad("state: active or all")),
    };
    let lic = lic.into_inner();
    let state = app.into_inner();
    let name = lic.clone();
    let known = {
        let state = std::sync::Arc::clone(&state);
        blocking(move || Ok(crate::licenses::find(&mut *state.db.conn()?, &name)?.is_some()))
            .await?
    };
    if !known {
        return Err(ConsoleError::NotFound(format!("no license '{lic}'")));
    }
    // Streamed from a worker thread (the same function and bytes as `seatkeep export seats`).
    let (mut out, chunks) = download::channel();
    let name = lic.clone();
    tokio::task::spawn_blocking(move || {
        let written = state
            .db
            .conn()
            .map_err(ExportError::from)
            .and_then(|mut conn| export::write_seats(&mut conn, &name, format, filter, &mut out))
            .and_then(|_| out.flush().map_err(ExportError::from));
        if let Err(e) = written {
            tracing::warn!(license = %name, error = %e, "console seat export failed");
            out.fail(e.to_string());
        }
    });
    let (mime, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Json => ("application/json", "json"),
    };
    // License ids are plain, but the header is built from them: keep it so.
    let safe: String = lic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"seats-{safe}.{extension}\""),
        ))
        .streaming(chunks))
}

#[derive(Debug, serde::Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/licenses/{lic}/revoke`: `revocation::revoke`, as `licenses revoke`.
pub async fn revoke(
    req: HttpRequest,
    app: web::Data<App>,
    lic: web::Path<String>,
    form: web::Form<RevokeForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Owner, &form.csrf).await?;
    let reason = field("reason", &form.reason, MAX_REASON)?.to_owned();
    let lic = lic.into_inner();
    let state = app.into_inner();
    let id = lic.clone();
    blocking(move || {
        revocation::revoke(&state, &id, &reason, &session.actor())?;
        Ok(())
    })
    .await?;
    Ok(view::redirect(&format!(
        "/console/licenses/{}?done=revoked",
        view::enc(&lic)
    )))
}

#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/licenses/{lic}/reinstate`: `revocation::reinstate`.
pub async fn reinstate(
    req: HttpRequest,
    app: web::Data<App>,
    lic: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Owner, &form.csrf).await?;
    let lic = lic.into_inner();
    let state = app.into_inner();
    let id = lic.clone();
    blocking(move || {
        revocation::reinstate(&state, &id, &session.actor())?;
        Ok(())
    })
    .await?;
    Ok(view::redirect(&format!(
        "/console/licenses/{}?done=reinstated",
        view::enc(&lic)
    )))
}
