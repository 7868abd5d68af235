//! `seatkeep provider report`: what the collector holds, per license and month (UTC) —
//! what the provider bills (registrations, overage, seats in use at month end, units of
//! metered licenses issued) and the royalties it owes (registrations and units per channel
//! id).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::CollectError;
use super::store::{StoredEvent, read_all};

/// One license's month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthRow {
    pub license: String,
    /// `YYYY-MM`.
    pub month: String,
    /// `seat.activated` events.
    pub registrations: i64,
    pub returns: i64,
    pub retirements: i64,
    /// Seats in use after the month's last event.
    pub in_use: i64,
    /// Registrations beyond the seats bought.
    pub overage: i64,
    /// Registrations per channel id, as `role:id` (`distributor:d-1`).
    pub channels: BTreeMap<String, i64>,
    /// Metered: units issued in packets (`usage.provisioned`).
    pub units_issued: i64,
    /// Metered: units issued per channel id, as `role:id`.
    pub unit_channels: BTreeMap<String, i64>,
}

/// The rows of every license the store in `data` holds, by license then month.
pub fn monthly(data: &Path) -> Result<Vec<MonthRow>, CollectError> {
    let dir = data.join("events");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut rows: BTreeMap<(String, String), MonthRow> = BTreeMap::new();
    for (_, events) in read_all(&dir, false)? {
        for stored in events {
            add(&mut rows, &stored);
        }
    }
    Ok(rows.into_values().collect())
}

fn add(rows: &mut BTreeMap<(String, String), MonthRow>, stored: &StoredEvent) {
    let event = &stored.event;
    let month = month_of(event.at);
    let row = rows
        .entry((stored.lic.clone(), month.clone()))
        .or_insert_with(|| MonthRow {
            license: stored.lic.clone(),
            month,
            ..MonthRow::default()
        });
    row.in_use = event.in_use;
    match event.kind.as_str() {
        "seat.activated" => {
            row.registrations += 1;
            if event.overage {
                row.overage += 1;
            }
            add_per_channel(&mut row.channels, event, 1);
        }
        "usage.provisioned" => {
            let amt = event.usage.amt.unwrap_or_default();
            row.units_issued += amt;
            add_per_channel(&mut row.unit_channels, event, amt);
        }
        "seat.returned" => row.returns += 1,
        "seat.retired" => row.retirements += 1,
        _ => {}
    }
}

/// Adds `n` to each channel id the event names, as `role:id`.
fn add_per_channel(counts: &mut BTreeMap<String, i64>, event: &super::super::wire::Event, n: i64) {
    if let Some(serde_json::Value::Object(channel)) = &event.channel {
        for (role, id) in channel {
            if let Some(id) = id.as_str() {
                *counts.entry(format!("{role}:{id}")).or_default() += n;
            }
        }
    }
}

/// `YYYY-MM` of a unix time, UTC.
fn month_of(at: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .chars()
        .take(7)
        .collect()
}

/// The channel counts as one cell: `distributor:d-1=3 partner:p-2=3`.
pub fn channels_cell(counts: &BTreeMap<String, i64>) -> String {
    counts
        .iter()
        .map(|(id, n)| format!("{id}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The columns of both text forms.
const COLUMNS: [&str; 10] = [
    "license",
    "month",
    "registrations",
    "returns",
    "retirements",
    "in_use",
    "overage",
    "channels",
    "units_issued",
    "unit_channels",
];

/// One row's cells, in [`COLUMNS`] order.
fn cells(r: &MonthRow) -> [String; 10] {
    [
        r.license.clone(),
        r.month.clone(),
        r.registrations.to_string(),
        r.returns.to_string(),
        r.retirements.to_string(),
        r.in_use.to_string(),
        r.overage.to_string(),
        channels_cell(&r.channels),
        r.units_issued.to_string(),
        channels_cell(&r.unit_channels),
    ]
}

/// The rows as CSV with a header line.
pub fn csv(rows: &[MonthRow]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for r in rows {
        let line: Vec<String> = cells(r).iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The rows as an aligned table (the license column as wide as its longest id).
pub fn table(rows: &[MonthRow]) -> String {
    let all: Vec<[String; 10]> = std::iter::once(COLUMNS.map(str::to_owned))
        .chain(rows.iter().map(cells))
        .collect();
    let mut widths = [0usize; 10];
    for row in &all {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| match i {
                0 | 1 | 7 | 9 => format!("{cell:<w$}"),
                _ => format!("{cell:>w$}"),
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-02-28T23:59:59Z and a second later.
        assert_eq!(month_of(1_772_323_199), "2026-02");
        assert_eq!(month_of(1_772_323_200), "2026-03");
    }
}
