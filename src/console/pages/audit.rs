//! The audit log: filters (license, action, actor, time range), pages of 100 newest first
//! (keyset on the id), and the same rows as CSV.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::admins::Role;
use crate::app::App;
use crate::audit::{AuditFilter, search};
use crate::console::view::{self, Layout, PageLink, Pager};
use crate::console::{ConsoleError, blocking, guard};
use crate::db::models::AuditEntry;

const PAGE_SIZE: i64 = 100;
/// Most rows one CSV download holds.
const CSV_LIMIT: i64 = 100_000;

/// An audit row as shown.
pub struct EntryRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub license: String,
    pub seat: String,
    pub detail: String,
}

pub fn entry_row(e: AuditEntry) -> EntryRow {
    EntryRow {
        id: e.id,
        at: view::time(e.at),
        actor: e.actor,
        action: e.action,
        license: e.license_id.unwrap_or_default(),
        seat: e.seat_id.unwrap_or_default(),
        detail: e.detail,
    }
}

/// The filter form's fields, as text (checked in [`Params::filter`]).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Params {
    #[serde(default)]
    license: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

fn day_start(field: &str, text: &str) -> Result<Option<i64>, ConsoleError> {
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = humantime::parse_rfc3339(&format!("{text}T00:00:00Z"))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| ConsoleError::BadRequest(format!("{field}: a date like 2026-12-01")))?;
    Ok(Some(parsed))
}

impl Params {
    fn filter(&self) -> Result<AuditFilter, ConsoleError> {
        let text = |name: &str, value: &str| -> Result<Option<String>, ConsoleError> {
            let value = value.trim();
            if value.chars().count() > 200 {
                return Err(ConsoleError::BadRequest(format!(
                    "{name}: at most 200 characters"
                )));
            }
            Ok(Some(value.to_owned()).filter(|v| !v.is_empty()))
        };
        let before_id = match self.before.as_str() {
            "" => None,
            t => Some(
                t.parse::<i64>()
                    .map_err(|_| ConsoleError::BadRequest("before: an entry number".into()))?,
            ),
        };
        Ok(AuditFilter {
            license: text("license", &self.license)?,
            action: text("action", &self.action)?,
            actor: text("actor", &self.actor)?,
            from: day_start("from", self.from.trim())?,
            until: day_start("until", self.until.trim())?.map(|t| t + 86_400),
            before_id,
        })
    }

    fn query_string(&self) -> String {
        format!(
            "license={}&action={}&actor={}&from={}&until={}",
            view::enc(&self.license),
            view::enc(&self.action),
            view::enc(&self.actor),
            view::enc(&self.from),
            view::enc(&self.until)
        )
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    params: Params,
    entries: Vec<EntryRow>,
    pager: Pager,
    csv_href: String,
}

/// `GET /console/audit`
pub async fn show(
    req: HttpRequest,
    app: web::Data<App>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ConsoleError> {
    let session = guard::viewer(&req, &app, Role::Viewer).await?;
    let params = params.into_inner();
    let filter = params.filter()?;
    let state = app.into_inner();
    let rows =
        blocking(move || Ok(search(&mut *state.db.conn()?, &filter, PAGE_SIZE + 1)?)).await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    let entries: Vec<EntryRow> = rows
        .into_iter()
        .take(PAGE_SIZE as usize)
        .map(entry_row)
        .collect();
    let query = params.query_string();
    let pager = Pager {
        prev: (!params.before.is_empty()).then(|| PageLink {
            label: "← newest".into(),
            href: format!("/console/audit?{query}"),
        }),
        next: entries.last().filter(|_| more).map(|last| PageLink {
            label: "older →".into(),
            href: format!("/console/audit?{query}&before={}", last.id),
        }),
        summary: format!("{} entries on this page", entries.len()),
    };
    view::render(&AuditPage {
        layout: Layout::new(&session, "audit", "Audit log"),
        csv_href: format!("/console/audit.csv?{query}"),
        params,
        entries,
        pager,
    })
}

/// One CSV field: quoted, quotes doubled, and a leading `= + - @` defused so a spreadsheet
/// does not run it as a formula.
fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

/// `GET /console/audit.csv`: the filtered rows, newest first.
pub async fn csv(
    req: HttpRequest,
    app: web::Data<App>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ConsoleError> {
    guard::viewer(&req, &app, Role::Viewer).await?;
    let filter = params.filter()?;
    let state = app.into_inner();
    let rows = blocking(move || Ok(search(&mut *state.db.conn()?, &filter, CSV_LIMIT)?)).await?;
    let mut out = String::from("id,at,actor,action,license,seat,detail\r\n");
    for e in rows {
        let at = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(e.at).unwrap_or(0)),
        )
        .to_string();
        let fields = [
            e.id.to_string(),
            at,
            e.actor,
            e.action,
            e.license_id.unwrap_or_default(),
            e.seat_id.unwrap_or_default(),
            e.detail,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"seatkeep-audit.csv\"",
        ))
        .body(out))
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_field("-1+2"), "\"'-1+2\"");
    }
}
