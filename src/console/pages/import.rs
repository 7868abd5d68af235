//! Import a key file: upload (file or paste), a preview of the verified claims and of what
//! will happen, then confirm. Confirm sends the file back and the import verifies it again:
//! nothing the browser returns is trusted.

use std::pin::Pin;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine as _;
use futures_core::Stream;

use crate::admins::Role;
use crate::app::App;
use crate::console::view::{self, Flash, Layout};
use crate::console::{ConsoleError, blocking, csrf, guard};
use crate::licenses::{self, ImportOutcome};

#[derive(Template)]
#[template(path = "console/import.html")]
struct ImportPage {
    layout: Layout,
    max_upload: usize,
    preview: Option<Preview>,
}

/// What the preview shows.
pub struct Preview {
    pub lic: String,
    pub seq: i64,
    pub product: String,
    pub customer: String,
    pub model: &'static str,
    pub seats: i64,
    pub term: String,
    pub admins: String,
    /// What confirming will do, in words.
    pub effect: String,
    pub can_confirm: bool,
    /// The file, base64url, for the confirm form.
    pub file_b64: String,
}

/// `GET /console/import`
pub async fn form(req: HttpRequest, app: web::Data<App>) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Admin).await?;
    view::render(&ImportPage {
        layout: Layout::new(&session, "import", "Import a key file"),
        max_upload: app.config.console.max_upload_bytes,
        preview: None,
    })
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// The multipart form's `csrf`, `file` and `text` parts, at most `limit` bytes in all (the
/// import and offline pages).
pub(super) async fn read_upload(
    mut payload: Multipart,
    limit: usize,
) -> Result<(String, Vec<u8>, Vec<u8>), ConsoleError> {
    let (mut token, mut file, mut text) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = 0usize;
    while let Some(part) = next(&mut payload).await {
        let mut part = part
            .map_err(|e| ConsoleError::BadRequest(format!("the upload could not be read: {e}")))?;
        let target = match part.name() {
            Some("csrf") => &mut token,
            Some("file") => &mut file,
            Some("text") => &mut text,
            _ => return Err(ConsoleError::BadRequest("unexpected form field".into())),
        };
        while let Some(chunk) = next(&mut part).await {
            let chunk = chunk.map_err(|e| {
                ConsoleError::BadRequest(format!("the upload could not be read: {e}"))
            })?;
            total += chunk.len();
            if total > limit {
                return Err(ConsoleError::TooLarge(limit));
            }
            target.extend_from_slice(&chunk);
        }
    }
    Ok((String::from_utf8_lossy(&token).into_owned(), file, text))
}

/// `POST /console/import/preview` (multipart): verifies and says what would happen.
pub async fn preview(
    req: HttpRequest,
    app: web::Data<App>,
    payload: Multipart,
) -> Result<HttpResponse, ConsoleError> {
    csrf::check_origin(&req, &app.config.public_url())?;
    let session = guard::viewer(&req, &app, Role::Admin).await?;
    let limit = app.config.console.max_upload_bytes;
    let (token, file, text) = read_upload(payload, limit).await?;
    csrf::check(&req, &app.config.public_url(), &session, &token)?;
    let raw = if file.is_empty() { text } else { file };
    let mut layout = Layout::new(&session, "import", "Import a key file");
    if raw.iter().all(u8::is_ascii_whitespace) {
        layout.flash = Some(Flash::error("Choose a key file or paste one."));
        return page_with_status(layout, limit, None, StatusCode::BAD_REQUEST);
    }
    let state = app.into_inner();
    let bytes = raw.clone();
    let result = blocking(move || Ok(licenses::preview(&state, &bytes))).await?;
    match result {
        Ok(p) => {
            let c = &p.claims;
            let effect = match p.outcome {
                ImportOutcome::Imported => format!(
                    "New license {}: {} seats of {} for {}.",
                    c.lic, c.seats, c.product.name, c.customer.name
                ),
                ImportOutcome::Renewed => {
                    let from = p.previous_seats.unwrap_or(0);
                    let mut words = format!(
                        "Renewal of {}: {from} → {} seats ({} in use now).",
                        c.lic, c.seats, p.in_use
                    );
                    if p.in_use > c.seats {
                        words.push_str(" Seats in use stay; no new seat is granted until usage drops below the new count.");
                    }
                    words
                }
                ImportOutcome::Unchanged => {
                    "This very key file was imported before: nothing to do.".to_owned()
                }
            };
            let preview = Preview {
                lic: c.lic.clone(),
                seq: c.seq,
                product: format!(
                    "{} ({}, edition {})",
                    c.product.name, c.product.id, c.product.edition
                ),
                customer: format!("{} ({})", c.customer.name, c.customer.id),
                model: c.model.as_str(),
                seats: c.seats,
                term: format!(
                    "{} – {}",
                    view::time_or(c.nbf, "start"),
                    view::time_or(c.exp, "perpetual")
                ),
                admins: c.admins.join(", "),
                effect,
                can_confirm: p.outcome != ImportOutcome::Unchanged,
                file_b64: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
            };
            page_with_status(layout, limit, Some(preview), StatusCode::OK)
        }
        Err(e) => {
            let e = ConsoleError::from(e);
            if let ConsoleError::Db(_) | ConsoleError::Internal(_) = e {
                return Err(e);
            }
            layout.flash = Some(Flash::error(format!("Refused: {e}")));
            page_with_status(layout, limit, None, StatusCode::BAD_REQUEST)
        }
    }
}

fn page_with_status(
    layout: Layout,
    max_upload: usize,
    preview: Option<Preview>,
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let page = ImportPage {
        layout,
        max_upload,
        preview,
    };
    Ok(view::html(status, page.render()?))
}

#[derive(Debug, serde::Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key_file: String,
}

/// `POST /console/import/confirm`: `licenses::import_key_file`, as `seatkeep keyfile import`.
pub async fn confirm(
    req: HttpRequest,
    app: web::Data<App>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::actor(&req, &app, Role::Admin, &form.csrf).await?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(form.key_file.trim())
        .map_err(|_| {
            ConsoleError::BadRequest(
                "the key file was damaged on its way back; upload it again".into(),
            )
        })?;
    if raw.len() > app.config.console.max_upload_bytes {
        return Err(ConsoleError::TooLarge(app.config.console.max_upload_bytes));
    }
    let state = app.clone().into_inner();
    let actor = session.actor();
    let result = blocking(move || Ok(licenses::import_key_file(&state, &raw, &actor))).await?;
    match result {
        Ok(report) => {
            let done = match report.outcome {
                ImportOutcome::Imported => "imported",
                ImportOutcome::Renewed => "renewed",
                ImportOutcome::Unchanged => "unchanged",
            };
            Ok(view::redirect(&format!("/console?done={done}")))
        }
        Err(e) => {
            let e = ConsoleError::from(e);
            if let ConsoleError::Db(_) | ConsoleError::Internal(_) = e {
                return Err(e);
            }
            let mut layout = Layout::new(&session, "import", "Import a key file");
            layout.flash = Some(Flash::error(format!("Refused: {e}")));
            page_with_status(
                layout,
                app.config.console.max_upload_bytes,
                None,
                StatusCode::BAD_REQUEST,
            )
        }
    }
}
