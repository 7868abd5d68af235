//! Offline files (DESIGN §11) for admins at the console: upload the request file an
//! air-gapped device wrote, see what each line got, and download the response file to carry
//! back. The same library function as `seatkeep offline fulfil` runs, with actor
//! `admin:NAME`; the exchange is stored, so the same request file again gets the same bytes.

use actix_multipart::Multipart;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::import::read_upload;
use crate::admins::Role;
use crate::app::App;
use crate::console::view::{self, Flash, Layout};
use crate::console::{ConsoleError, blocking, csrf, guard};
use crate::offline::{self, RequestFile, lines::LineResult};

/// One request line's outcome.
pub struct LineRow {
    pub line: usize,
    pub kind: &'static str,
    pub req: String,
    /// `answered` or `refused`.
    pub class: &'static str,
    pub text: String,
}

/// A fulfilled request file.
pub struct Result {
    /// The exchange's key, for the download link.
    pub sha256: String,
    pub replayed: bool,
    pub lines: Vec<LineRow>,
    pub response: String,
}

#[derive(Template)]
#[template(path = "console/offline.html")]
struct OfflinePage {
    layout: Layout,
    max_bytes: usize,
    max_lines: usize,
    result: Option<Result>,
}

fn page(
    layout: Layout,
    result: Option<Result>,
    status: StatusCode,
) -> std::result::Result<HttpResponse, ConsoleError> {
    let page = OfflinePage {
        layout,
        max_bytes: seatkeep_device::offline::MAX_REQUEST_FILE_BYTES,
        max_lines: seatkeep_device::offline::MAX_REQUEST_LINES,
        result,
    };
    Ok(view::html(status, page.render()?))
}

/// `GET /console/offline`
pub async fn form(
    req: HttpRequest,
    app: web::Data<App>,
) -> std::result::Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Admin).await?;
    page(
        Layout::new(&session, "offline", "Offline files"),
        None,
        StatusCode::OK,
    )
}

/// `POST /console/offline` (multipart `file` or `text`): fulfils the request file. A file
/// refused as a whole answers its code's status (413 `request_too_large`, 400
/// `invalid_request_file`) and changes nothing.
pub async fn fulfil(
    req: HttpRequest,
    app: web::Data<App>,
    payload: Multipart,
) -> std::result::Result<HttpResponse, ConsoleError> {
    csrf::check_origin(&req, &app.config.public_url())?;
    let session = guard::viewer(&req, &app, Role::Admin).await?;
    let (token, file, text) = read_upload(payload, app.config.console.max_upload_bytes).await?;
    csrf::check(&req, &app.config.public_url(), &session, &token)?;
    let raw = if file.is_empty() { text } else { file };
    let mut layout = Layout::new(&session, "offline", "Offline files");
    if raw.iter().all(u8::is_ascii_whitespace) {
        layout.flash = Some(Flash::error("Choose a request file or paste one."));
        return page(layout, None, StatusCode::BAD_REQUEST);
    }
    // Checked before the database is touched: a refused file changes nothing.
    let request = RequestFile::read(&raw)?;
    let actor = session.actor();
    let state = app.into_inner();
    let (sha256, fulfilled) = blocking(move || {
        let fulfilled = offline::fulfil(&state, &request, &actor)?;
        Ok((request.sha256().to_owned(), fulfilled))
    })
    .await?;
    let lines = fulfilled
        .outcomes
        .iter()
        .map(|o| {
            let (class, text) = match &o.result {
                LineResult::Answered { answered } => ("answered", answered.clone()),
                LineResult::Refused { code, detail } => ("refused", format!("{code}: {detail}")),
            };
            LineRow {
                line: o.line,
                kind: o.kind,
                req: o.req.clone(),
                class,
                text,
            }
        })
        .collect();
    layout.flash = Some(Flash::ok(if fulfilled.replayed {
        "This request file was fulfilled before: the stored response is given back, and nothing changed."
    } else {
        "Request file fulfilled. Download the response file and carry it to the device."
    }));
    page(
        layout,
        Some(Result {
            sha256,
            replayed: fulfilled.replayed,
            lines,
            response: fulfilled.response,
        }),
        StatusCode::OK,
    )
}

/// `GET /console/offline/{sha256}/response`: the stored response file of a fulfilled request,
/// as a download.
pub async fn download(
    req: HttpRequest,
    app: web::Data<App>,
    sha256: web::Path<String>,
) -> std::result::Result<HttpResponse, ConsoleError> {
    guard::viewer(&req, &app, Role::Admin).await?;
    let sha256 = sha256.into_inner();
    let well_formed = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(ConsoleError::NotFound("no such exchange".into()));
    }
    let state = app.into_inner();
    let key = sha256.clone();
    let response = blocking(move || Ok(offline::store::find(&state, &key)?))
        .await?
        .ok_or_else(|| ConsoleError::NotFound("no such exchange".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"seatkeep-response-{}.txt\"",
                &sha256[..12]
            ),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(response))
}
