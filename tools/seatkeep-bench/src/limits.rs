//! The machine's own limits for this work, measured in the same run as the load:
//! signatures per second of the server's key on one core, and durable commits per second of
//! a bare seat transaction (one conditional UPDATE + one INSERT) on the same database kind
//! and disk, on one connection.

use std::path::Path;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use seatkeep::db::DbConn;
use seatkeep::identity::{DeviceKeyClaims, DeviceKeyProduct};
use seatkeep::signing::SigningKey;

use crate::error::{BenchError, Context, Result};
use crate::setup::DbTarget;

/// How long the signing loop runs.
const SIGN_TIME: Duration = Duration::from_secs(1);
/// How long the commit loop runs.
const COMMIT_TIME: Duration = Duration::from_millis(1500);
/// The server's SQLite settings (`seatkeep::db`): WAL, synchronous=FULL.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                              PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";
/// A device key's size, for a realistic seat row.
const DEVICE_KEY_BYTES: usize = 420;

/// Both limits, measured once before and once after the load (this machine's disk and
/// CPU drift; the report uses the mean and shows both).
#[derive(Debug, Clone, Default)]
pub struct MachineLimits {
    /// JWS algorithm of the server key.
    pub algorithm: String,
    /// The durability settings in force, as read back from the database.
    pub durability: String,
    /// Signatures per second on one thread, per measurement.
    pub signatures: Vec<f64>,
    /// Durable commits per second on one connection, per measurement.
    pub commits: Vec<f64>,
}

impl MachineLimits {
    /// Measures both limits once more.
    pub fn measure(&mut self, server_key: &Path, db: &DbTarget, dir: &Path) -> Result<()> {
        let (algorithm, signatures) = signatures_per_second(server_key)?;
        let (commits, durability) = commits_per_second(db, dir)?;
        self.algorithm = algorithm;
        self.durability = durability;
        self.signatures.push(signatures);
        self.commits.push(commits);
        Ok(())
    }
}

/// Mean of the measurements (0 when there are none).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Signs a device-key signing input with the server's own key for about a second; returns
/// the JWS algorithm and signatures per second.
fn signatures_per_second(server_key: &Path) -> Result<(String, f64)> {
    let pem =
        std::fs::read(server_key).with_context(|| format!("read {}", server_key.display()))?;
    let key = SigningKey::from_pem(&pem, None).context("load the server key")?;
    let message = device_key_signing_input(&key)?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < SIGN_TIME {
        for _ in 0..8 {
            std::hint::black_box(key.sign(std::hint::black_box(message.as_bytes())))
                .context("sign")?;
        }
        count += 8;
    }
    Ok((
        key.algorithm().as_str().to_owned(),
        count as f64 / started.elapsed().as_secs_f64(),
    ))
}

/// What the server signs for a new seat: `base64url(header).base64url(claims)`.
fn device_key_signing_input(key: &SigningKey) -> Result<String> {
    let claims = DeviceKeyClaims {
        iss: key.fingerprint(),
        sub: "bench-new-00000001".into(),
        name: "Bench User".into(),
        lic: "bench-main".into(),
        product: DeviceKeyProduct {
            id: "wordsmith".into(),
            edition: 1,
        },
        seat: "st_AAAAAAAAAAAAAAAAAAAAAA".into(),
        r#gen: 1,
        iat: now_unix(),
        exp: Some(now_unix() + 365 * 86400),
        model: "node_locked".into(),
        cnf: None,
        meter: None,
    };
    let jws = key
        .sign_jws("seatkeep-device+jwt", &key.fingerprint(), &claims)
        .context("sign a device key")?;
    let (input, _signature) = jws
        .rsplit_once('.')
        .ok_or_else(|| BenchError::new("a signed device key has no signature part"))?;
    Ok(input.to_owned())
}

#[derive(QueryableByName)]
struct TextValue {
    #[diesel(sql_type = Text)]
    v: String,
}

#[derive(QueryableByName)]
struct IntValue {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

/// Scratch tables of the commit loop (named apart from the server's).
const SCRATCH_SCHEMA: &str = "\
    CREATE TABLE bench_licenses (id TEXT PRIMARY KEY, capacity BIGINT NOT NULL, \
        in_use BIGINT NOT NULL DEFAULT 0); \
    CREATE TABLE bench_seats (id TEXT PRIMARY KEY, \
        license_id TEXT NOT NULL REFERENCES bench_licenses (id), device_id TEXT NOT NULL, \
        device_key TEXT NOT NULL, activated_at BIGINT NOT NULL, \
        UNIQUE (license_id, device_id)); \
    INSERT INTO bench_licenses (id, capacity, in_use) VALUES ('lic', 1000000000, 0);";

/// Commits the bare seat transaction in a loop on a scratch SQLite file in `dir` (same
/// pragmas as the server) or scratch tables in the run's PostgreSQL database; returns
/// commits per second and the durability settings.
fn commits_per_second(db: &DbTarget, dir: &Path) -> Result<(f64, String)> {
    let (mut conn, begin) = match db {
        DbTarget::Sqlite(_) => {
            let path = dir.join("commit-limit.db");
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                .with_context(|| format!("open {}", path.display()))?;
            conn.batch_execute(SQLITE_PRAGMAS)
                .context("set SQLite pragmas")?;
            (DbConn::Sqlite(conn), "BEGIN IMMEDIATE")
        }
        DbTarget::Postgres { .. } => (db.connect()?, "BEGIN"),
    };
    conn.batch_execute(SCRATCH_SCHEMA)
        .context("create the scratch tables")?;
    let durability = durability(&mut conn)?;
    let device_key = "k".repeat(DEVICE_KEY_BYTES);
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < COMMIT_TIME {
        seat_transaction(&mut conn, begin, count, &device_key)?;
        count += 1;
    }
    let per_second = count as f64 / started.elapsed().as_secs_f64();
    conn.batch_execute("DROP TABLE bench_seats; DROP TABLE bench_licenses;")
        .context("drop the scratch tables")?;
    Ok((per_second, durability))
}

/// One durable seat grant: `UPDATE ... WHERE in_use < capacity` + `INSERT`, committed.
fn seat_transaction(conn: &mut DbConn, begin: &str, n: u64, device_key: &str) -> Result<()> {
    conn.batch_execute(begin).context("begin")?;
    let taken = diesel::sql_query(
        "UPDATE bench_licenses SET in_use = in_use + 1 WHERE id = 'lic' AND in_use < capacity",
    )
    .execute(conn)
    .context("take a seat")?;
    if taken != 1 {
        return Err(BenchError::new("scratch license unexpectedly full"));
    }
    diesel::sql_query(
        "INSERT INTO bench_seats (id, license_id, device_id, device_key, activated_at) \
         VALUES ($1, 'lic', $2, $3, $4)",
    )
    .bind::<Text, _>(format!("st_{n}"))
    .bind::<Text, _>(format!("dev-{n}"))
    .bind::<Text, _>(device_key)
    .bind::<BigInt, _>(now_unix())
    .execute(conn)
    .context("insert a seat")?;
    conn.batch_execute("COMMIT").context("commit")
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The settings that make a commit durable, read back from the database.
fn durability(conn: &mut DbConn) -> Result<String> {
    match conn {
        DbConn::Sqlite(c) => {
            let mode = diesel::sql_query("SELECT journal_mode AS v FROM pragma_journal_mode()")
                .get_result::<TextValue>(c)
                .context("read journal_mode")?;
            let sync = diesel::sql_query("SELECT synchronous AS v FROM pragma_synchronous()")
                .get_result::<IntValue>(c)
                .context("read synchronous")?;
            let level = match sync.v {
                0 => "OFF",
                1 => "NORMAL",
                2 => "FULL",
                _ => "EXTRA",
            };
            Ok(format!("journal_mode={} synchronous={level}", mode.v))
        }
        DbConn::Postgres(c) => {
            let setting = |c: &mut diesel::PgConnection, name: &str| -> Result<String> {
                diesel::sql_query(format!("SELECT current_setting('{name}') AS v"))
                    .get_result::<TextValue>(c)
                    .map(|row| row.v)
                    .with_context(|| format!("read {name}"))
            };
            Ok(format!(
                "fsync={} synchronous_commit={}",
                setting(c, "fsync")?,
                setting(c, "synchronous_commit")?
            ))
        }
    }
}
