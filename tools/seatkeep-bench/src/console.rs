//! `--console`: the license page of the main license (as many seats as `--devices`) timed
//! over HTTP once the new activations are in: the first page, a search, a late page and a
//! late page sorted by user name. The session is written straight into the database (an
//! admin made with `seatkeep admin add`, a session row with the hash of a known cookie), so
//! only the page itself is measured.

use std::net::SocketAddr;
use std::time::Instant;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use sha2::{Digest, Sha256};

use crate::error::{BenchError, Context, Result};
use crate::http::Connection;
use crate::setup::Workspace;

/// Requests per case (after one warm-up).
const ROUNDS: usize = 30;

/// One timed page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageTiming {
    pub case: String,
    pub path: String,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub bytes: usize,
}

/// Makes a viewer and a session for it; returns the cookie value.
pub fn session(workspace: &Workspace) -> Result<String> {
    let password_file = workspace.dir.join("bench-admin-password");
    std::fs::write(&password_file, "bench password 123").context("write the admin password")?;
    workspace.seatkeep([
        "--config",
        &workspace.config().to_string_lossy(),
        "admin",
        "add",
        "bench",
        "--role",
        "viewer",
        "--password-file",
        &password_file.to_string_lossy(),
    ])?;
    let value = hex::encode(rand::random::<[u8; 32]>());
    let hash = hex::encode(Sha256::digest(value.as_bytes()));
    let mut conn = workspace.db.connect()?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(0);
    diesel::sql_query(
        "INSERT INTO console_sessions (id_hash, admin_id, csrf_token, created_at, last_seen) \
         SELECT $1, id, 'bench', $2, $2 FROM admins WHERE username = 'bench'",
    )
    .bind::<Text, _>(&hash)
    .bind::<BigInt, _>(now)
    .execute(&mut conn)
    .context("insert the bench session")?;
    Ok(value)
}

/// Times the license page cases of license `lic`, which has `seats` seats in use.
pub async fn run(addr: SocketAddr, cookie: &str, lic: &str, seats: u32) -> Result<Vec<PageTiming>> {
    let late = (seats / 50).max(1);
    let cases = [
        ("first page", format!("/console/licenses/{lic}")),
        (
            "search",
            format!("/console/licenses/{lic}?q=bench-new-4242"),
        ),
        ("late page", format!("/console/licenses/{lic}?page={late}")),
        (
            "late page by user, desc",
            format!("/console/licenses/{lic}?sort=user&dir=desc&page={late}"),
        ),
    ];
    let mut connection = Connection::open(addr).await?;
    let mut out = Vec::new();
    for (case, path) in cases {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: seatkeep_console={cookie}\r\n\r\n"
        )
        .into_bytes();
        let mut times = Vec::with_capacity(ROUNDS);
        let mut bytes = 0;
        for round in 0..=ROUNDS {
            let start = Instant::now();
            let response = connection.send(&request).await?;
            let elapsed = start.elapsed().as_secs_f64() * 1000.0;
            if response.status != 200 {
                return Err(BenchError::new(format!(
                    "{path}: status {}",
                    response.status
                )));
            }
            bytes = response.body.len();
            if round > 0 {
                times.push(elapsed);
            }
        }
        times.sort_by(f64::total_cmp);
        out.push(PageTiming {
            case: case.to_owned(),
            path,
            median_ms: times[times.len() / 2],
            p95_ms: times[(times.len() * 95 / 100).min(times.len() - 1)],
            max_ms: times[times.len() - 1],
            bytes,
        });
    }
    Ok(out)
}

/// The figures as text lines.
pub fn table(timings: &[PageTiming]) -> String {
    let mut text = String::from("\nconsole license page (ms)      median    p95    max   bytes\n");
    for t in timings {
        text.push_str(&format!(
            "  {:<28} {:>7.1} {:>6.1} {:>6.1} {:>7}\n",
            t.case, t.median_ms, t.p95_ms, t.max_ms, t.bytes
        ));
    }
    text
}
