//! Listing a license's seats: a page at a time for the console (search, state filter,
//! sort), or all of them for `seatkeep seats list`.
//!
//! Costs at 100,000 seats of a license are what shaped this (BENCHMARKS.md, issue 9):
//! * Sorted pages walk an index in order (`(license_id, device_id)`, `(license_id,
//!   user_name, device_id)`, `(license_id, activated_at, device_id)`), so a page costs its
//!   offset in index steps, never a sort of the license.
//! * A substring search cannot use an index. It scans the covering `(license_id, user_name,
//!   device_id)` index once for the matching device ids, at most [`MAX_SEARCH_MATCHES`] + 1
//!   of them, and reads only the page's rows; past that many matches the console pages the
//!   first [`MAX_SEARCH_MATCHES`] (bounded offset) and asks for a narrower search.

use diesel::prelude::*;

use super::rules::SeatState;
use crate::db::DbConn;
use crate::db::models::Seat;
use crate::db::schema::seats;

/// Matches of a search that can be paged through.
pub const MAX_SEARCH_MATCHES: i64 = 1000;

/// How the console lists a license's seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatSort {
    DeviceId,
    UserName,
    ActivatedAt,
}

/// A page of a license's seats: search, state filter, sort, offset.
#[derive(Debug, Clone)]
pub struct SeatPageQuery<'a> {
    /// Substring of the device id or user name.
    pub search: Option<&'a str>,
    pub state: Option<SeatState>,
    pub sort: SeatSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// One page and how many seats match.
#[derive(Debug, Clone)]
pub struct SeatPage {
    pub rows: Vec<Seat>,
    /// Matching seats; with `capped`, only that more than [`MAX_SEARCH_MATCHES`] match.
    pub total: i64,
    /// A search matched more than [`MAX_SEARCH_MATCHES`] seats: only the first are paged.
    pub capped: bool,
}

/// A LIKE pattern matching `text` anywhere, its wildcards escaped with a backslash.
fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// A query on one license's seats with the state filter and, when given, the search.
macro_rules! filtered {
    ($query:expr, $lic:expr, $state:expr, $search:expr) => {{
        let mut query = $query.filter(seats::license_id.eq($lic)).into_boxed();
        if let Some(state) = $state {
            query = query.filter(seats::state.eq(state.as_str()));
        }
        if let Some(text) = $search {
            let pattern = like_pattern(text);
            query = query.filter(
                seats::device_id
                    .like(pattern.clone())
                    .escape('\\')
                    .or(seats::user_name.like(pattern).escape('\\')),
            );
        }
        query
    }};
}

/// The page's order: the sort column, the device id breaking ties.
macro_rules! ordered {
    ($query:expr, $q:expr) => {
        match ($q.sort, $q.descending) {
            (SeatSort::DeviceId, false) => $query.order(seats::device_id.asc()),
            (SeatSort::DeviceId, true) => $query.order(seats::device_id.desc()),
            (SeatSort::UserName, false) => {
                $query.order((seats::user_name.asc(), seats::device_id.asc()))
            }
            (SeatSort::UserName, true) => {
                $query.order((seats::user_name.desc(), seats::device_id.desc()))
            }
            (SeatSort::ActivatedAt, false) => {
                $query.order((seats::activated_at.asc(), seats::device_id.asc()))
            }
            (SeatSort::ActivatedAt, true) => {
                $query.order((seats::activated_at.desc(), seats::device_id.desc()))
            }
        }
    };
}

/// Every seat of a license, optionally filtered by device id or user name (substring), by
/// state and device id (`seatkeep seats list`).
pub fn list(conn: &mut DbConn, lic: &str, search: Option<&str>) -> QueryResult<Vec<Seat>> {
    filtered!(
        seats::table.select(Seat::as_select()),
        lic,
        None::<SeatState>,
        search.filter(|t| !t.is_empty())
    )
    .order((seats::state, seats::device_id))
    .load(conn)
}

/// One page of a license's seats and how many match.
pub fn page(conn: &mut DbConn, lic: &str, q: &SeatPageQuery<'_>) -> QueryResult<SeatPage> {
    match q.search.filter(|t| !t.is_empty()) {
        None => unsearched(conn, lic, q),
        Some(text) => searched(conn, lic, q, text),
    }
}

fn unsearched(conn: &mut DbConn, lic: &str, q: &SeatPageQuery<'_>) -> QueryResult<SeatPage> {
    let query = filtered!(
        seats::table.select(Seat::as_select()),
        lic,
        q.state,
        None::<&str>
    );
    let rows: Vec<Seat> = ordered!(query, q)
        .offset(q.offset)
        .limit(q.limit)
        .load(conn)?;
    // A page that is not full is the last one, so it tells the total without a count.
    let shown = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let total = if shown < q.limit && (q.offset == 0 || shown > 0) {
        q.offset + shown
    } else {
        filtered!(seats::table.count(), lic, q.state, None::<&str>).get_result(conn)?
    };
    Ok(SeatPage {
        rows,
        total,
        capped: false,
    })
}

fn searched(
    conn: &mut DbConn,
    lic: &str,
    q: &SeatPageQuery<'_>,
    text: &str,
) -> QueryResult<SeatPage> {
    // Unordered, so the scan may stop at the bound and may use the covering index.
    let matches: Vec<String> = filtered!(
        seats::table.select(seats::device_id),
        lic,
        q.state,
        Some(text)
    )
    .limit(MAX_SEARCH_MATCHES + 1)
    .load(conn)?;
    let found = i64::try_from(matches.len()).unwrap_or(i64::MAX);
    if found <= MAX_SEARCH_MATCHES {
        let query = seats::table
            .select(Seat::as_select())
            .filter(seats::license_id.eq(lic))
            .filter(seats::device_id.eq_any(matches))
            .into_boxed();
        let rows = ordered!(query, q)
            .offset(q.offset)
            .limit(q.limit)
            .load(conn)?;
        return Ok(SeatPage {
            rows,
            total: found,
            capped: false,
        });
    }
    // Many matches: walk the sort order's index, which finds them quickly, and no deeper
    // than the first MAX_SEARCH_MATCHES.
    let limit = q.limit.min(MAX_SEARCH_MATCHES - q.offset).max(0);
    let rows = if limit == 0 {
        Vec::new()
    } else {
        let query = filtered!(
            seats::table.select(Seat::as_select()),
            lic,
            q.state,
            Some(text)
        );
        ordered!(query, q)
            .offset(q.offset)
            .limit(limit)
            .load(conn)?
    };
    Ok(SeatPage {
        rows,
        total: MAX_SEARCH_MATCHES,
        capped: true,
    })
}
