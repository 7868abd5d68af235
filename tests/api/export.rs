//! `export seats`: 10,000 seats as RFC 4180 CSV, parsed back by Python's csv module, equal
//! the database; formula cells neutralised; JSON; bad calls leave no file.

use diesel::prelude::*;
use seatkeep::db::models::Seat;
use seatkeep::db::schema::seats;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv};

/// Seats written straight into the table (released ones, so the counters stay true).
const BULK: usize = 10_000;

fn insert_released_seats(env: &TestEnv, lic: &str) {
    let mut conn = env.db.connect();
    for chunk in (0..BULK).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('st_bulk{i:018}', '{lic}', 'bulk-{i:05}', 'user {i}', 'returned', 1, 1, \
                     'k', 'h', NULL, FALSE, {at}, {at}, {rel}, NULL, NULL, 0, 0, 0, NULL)",
                    at = 1_700_000_000 + *i as i64,
                    rel = 1_700_100_000 + *i as i64,
                )
            })
            .collect();
        diesel::sql_query(format!("INSERT INTO seats VALUES {}", values.join(",")))
            .execute(&mut conn)
            .unwrap();
    }
}

fn rfc3339(t: Option<i64>) -> String {
    t.map(|t| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64),
        )
        .to_string()
    })
    .unwrap_or_default()
}

/// What a spreadsheet-safe cell holds for `text` once a CSV reader has unquoted it.
fn neutral(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

async fn export_seats(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-X", 5);
    let server = env.serve().await;
    for (device, user) in [
        ("dev-1", "=HYPERLINK(\"x\")"),
        ("dev-2", "Smith, \"Bob\""),
        ("-dev-3", "@home"),
    ] {
        let (status, body) = server.activate(&key_file, device, user).await;
        assert_eq!(status, 201, "{body}");
    }
    insert_released_seats(&env, "LIC-X");

    let out = env.path("seats.csv");
    env.cli_ok(&[
        "export",
        "seats",
        "--license",
        "LIC-X",
        "--state",
        "all",
        "--out",
        out.to_str().unwrap(),
    ]);
    let raw = std::fs::read_to_string(&out).unwrap();
    assert!(
        raw.contains("\"'=HYPERLINK(\"\"x\"\")\""),
        "neutralised and quoted"
    );
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys\n\
             with open(sys.argv[1], newline='') as f:\n    print(json.dumps(list(csv.reader(f))))",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let mut rows: Vec<Vec<String>> = serde_json::from_slice(&parsed.stdout).unwrap();
    let header = rows.remove(0);
    assert_eq!(
        header,
        [
            "seat",
            "device_id",
            "user_name",
            "state",
            "generation",
            "activated",
            "released"
        ]
    );
    assert_eq!(rows.len(), BULK + 3);

    let mut conn = env.db.connect();
    let stored: Vec<Seat> = seats::table
        .filter(seats::license_id.eq("LIC-X"))
        .select(Seat::as_select())
        .load(&mut conn)
        .unwrap();
    let mut expected: Vec<Vec<String>> = stored
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                neutral(&s.device_id),
                neutral(&s.user_name),
                s.state.as_str().to_owned(),
                s.generation.to_string(),
                rfc3339(Some(s.activated_at)),
                rfc3339(s.released_at),
            ]
        })
        .collect();
    expected.sort();
    rows.sort();
    assert_eq!(rows, expected, "the CSV equals the database");

    // Active seats as JSON on stdout: the raw values, no neutralising.
    let json: serde_json::Value = serde_json::from_str(&env.cli_ok(&[
        "export",
        "seats",
        "--license",
        "LIC-X",
        "--format",
        "json",
    ]))
    .unwrap();
    let users: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 3, "{json}");
    assert!(users.contains(&"=HYPERLINK(\"x\")"), "{users:?}");
    assert!(json[0]["released"].is_null());

    // Bad calls: one clear line, no file written.
    let missing = env.path("none.csv");
    let err = env.cli_err(&[
        "export",
        "seats",
        "--license",
        "LIC-NONE",
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert!(err.contains("no license 'LIC-NONE'"), "{err}");
    assert!(!missing.exists());
    assert!(!env.path("none.csv.partial").exists());
    let err = env.cli_err(&["export", "seats", "--license", "LIC-X", "--format", "xml"]);
    assert!(err.contains("xml"), "{err}");
}
both_backends!(export_seats_csv_and_json, export_seats);
