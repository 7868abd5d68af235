//! Unix seconds as RFC 3339 text for messages, without a date library.

/// First second of the year 10000: from there on the bare number is shown.
const YEAR_10000: i64 = 253_402_300_800;

/// `2026-05-28T20:26:40Z` for unix seconds in 1970..=9999, else the bare number.
pub(crate) fn format_rfc3339(secs: i64) -> String {
    if !(0..YEAR_10000).contains(&secs) {
        return secs.to_string();
    }
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`), for days ≥ 0.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn humantime(secs: i64) -> String {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
        humantime::format_rfc3339_seconds(t).to_string()
    }

    #[test]
    fn matches_humantime() {
        let mut secs = 0;
        while secs < YEAR_10000 {
            assert_eq!(format_rfc3339(secs), humantime(secs), "{secs}");
            secs += 86_399 * 7 + 12_345;
        }
        for secs in [0, 951_782_400, 1_780_000_000, 4_107_542_399, YEAR_10000 - 1] {
            assert_eq!(format_rfc3339(secs), humantime(secs), "{secs}");
        }
        assert_eq!(format_rfc3339(1_780_000_000), "2026-05-28T20:26:40Z");
        assert_eq!(format_rfc3339(-1), "-1");
        assert_eq!(format_rfc3339(YEAR_10000), YEAR_10000.to_string());
    }
}
