//! Seat export: the provider's and the admin's "list of registered users", as RFC 4180 CSV or
//! JSON, written to any `io::Write` so the CLI (`seatkeep export seats`) and the console's
//! export button serve the same bytes. Seats are read in pages of [`PAGE`] by device id (the
//! `(license_id, device_id)` index) inside one read transaction, so the export is one
//! consistent snapshot and 100,000 seats take no more memory than a page.

use std::io::Write;

use diesel::prelude::*;

use crate::db::models::Seat;
use crate::db::schema::seats;
use crate::db::{DbConn, DbError};
use crate::licenses as license_store;
use crate::seats::SeatState;

/// Seats read per query.
pub const PAGE: i64 = 500;

/// The CSV header, in column order.
pub const CSV_HEADER: [&str; 7] = [
    "seat",
    "device_id",
    "user_name",
    "state",
    "generation",
    "activated",
    "released",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row, CRLF line ends, formula-injection-safe cells.
    Csv,
    /// One JSON array of seat objects.
    Json,
}

/// Which seats an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Seats held now.
    Active,
    /// Every seat ever taken, released ones included.
    All,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no license '{0}'")]
    UnknownLicense(String),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(ExportError);

/// Writes the seats of `lic` to `out`; returns how many were written.
pub fn write_seats(
    conn: &mut DbConn,
    lic: &str,
    format: ExportFormat,
    filter: StateFilter,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    conn.transaction(|conn| {
        if conn.backend() == crate::db::Backend::Postgres {
            // One snapshot for every page (SQLite's read transaction is one already).
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(conn)?;
        }
        if license_store::find(conn, lic)?.is_none() {
            return Err(ExportError::UnknownLicense(lic.to_owned()));
        }
        let mut writer = RowWriter::new(format, out);
        writer.begin()?;
        let mut after: Option<String> = None;
        loop {
            let page = read_page(conn, lic, filter, after.as_deref())?;
            for seat in &page {
                writer.row(seat)?;
            }
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => after = Some(last.device_id.clone()),
                _ => break,
            }
        }
        writer.end()?;
        Ok(writer.rows)
    })
}

fn read_page(
    conn: &mut DbConn,
    lic: &str,
    filter: StateFilter,
    after: Option<&str>,
) -> QueryResult<Vec<Seat>> {
    let mut query = seats::table
        .filter(seats::license_id.eq(lic))
        .select(Seat::as_select())
        .order(seats::device_id)
        .limit(PAGE)
        .into_boxed();
    if filter == StateFilter::Active {
        query = query.filter(seats::state.eq(SeatState::Active.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(seats::device_id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Writes rows one at a time in the chosen format.
struct RowWriter<'a> {
    format: ExportFormat,
    out: &'a mut dyn Write,
    rows: u64,
}

impl<'a> RowWriter<'a> {
    fn new(format: ExportFormat, out: &'a mut dyn Write) -> Self {
        Self {
            format,
            out,
            rows: 0,
        }
    }

    fn begin(&mut self) -> std::io::Result<()> {
        match self.format {
            ExportFormat::Csv => write_csv_record(self.out, &CSV_HEADER),
            ExportFormat::Json => self.out.write_all(b"["),
        }
    }

    fn row(&mut self, seat: &Seat) -> Result<(), ExportError> {
        let activated = rfc3339(Some(seat.activated_at));
        let released = rfc3339(seat.released_at);
        match self.format {
            ExportFormat::Csv => write_csv_record(
                self.out,
                &[
                    &seat.id,
                    &seat.device_id,
                    &seat.user_name,
                    seat.state.as_str(),
                    &seat.generation.to_string(),
                    &activated,
                    &released,
                ],
            )?,
            ExportFormat::Json => {
                if self.rows > 0 {
                    self.out.write_all(b",")?;
                }
                let value = serde_json::json!({
                    "seat": seat.id,
                    "device_id": seat.device_id,
                    "user_name": seat.user_name,
                    "state": seat.state,
                    "generation": seat.generation,
                    "activated": activated,
                    "released": (!released.is_empty()).then_some(released),
                });
                self.out.write_all(b"\n")?;
                serde_json::to_writer(&mut *self.out, &value).map_err(std::io::Error::from)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        if self.format == ExportFormat::Json {
            self.out.write_all(b"\n]\n")?;
        }
        self.out.flush()
    }
}

/// Unix seconds as RFC 3339 UTC; empty for none.
fn rfc3339(unix: Option<i64>) -> String {
    match unix.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
        )
        .to_string(),
        None => String::new(),
    }
}

/// One CSV record (RFC 4180): fields joined by commas, CRLF at the end.
fn write_csv_record(out: &mut dyn Write, fields: &[&str]) -> std::io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(csv_cell(field).as_bytes())?;
    }
    out.write_all(b"\r\n")
}

/// A cell as written: a text a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, tab or CR) gets a leading `'`, then the cell is quoted when it holds a comma,
/// a quote or a line break, with quotes doubled (RFC 4180).
pub fn csv_cell(text: &str) -> String {
    let neutral = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if neutral.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_neutralised_and_quoted() {
        assert_eq!(csv_cell("Ada"), "Ada");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("\rx"), "\"'\rx\"");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("Ada=1"), "Ada=1");
        assert_eq!(csv_cell(""), "");
    }
}
