//! Test harness: a fresh data folder, a fresh database (SQLite file or a PostgreSQL database
//! on the cluster `tests/run` starts), a provider key, and the real `seatkeep` binary serving
//! on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use seatkeep::keyfile::{self, KeyFileClaims};
use seatkeep::signing::SigningKey;
use tempfile::TempDir;

/// Path of the binary under test (built once by cargo for all tests).
pub const BIN: &str = env!("CARGO_BIN_EXE_seatkeep");
/// Provider id the test provider key is trusted for.
pub const PROVIDER: &str = "provider.test";
/// Key id of the test provider key.
pub const KID: &str = "test-provider-1";

/// Every test client comes from 127.0.0.1, like a fleet behind one NAT: load tests must not
/// meet the per-client caps (requests and connections) nor the request rate (tests/api/hardening.rs and ratelimit.rs set
/// their own).
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;

/// The database backends every storage test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `both_backends!(name, async_fn)` makes
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$body($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// The PostgreSQL admin URL `tests/run` exports. Missing = failure, never a skip.
pub fn pg_admin_url() -> String {
    std::env::var("SEATKEEP_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SEATKEEP_TEST_PG_URL is not set: run the suite with tests/run (it starts PostgreSQL)"
        )
    })
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn new(backend: Backend, dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.join("seatkeep.db").display()),
                pg_name: None,
            },
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("sk_test_{}", hex::encode(rand::random::<[u8; 8]>()));
                let mut conn =
                    PgConnection::establish(&admin).expect("connect to the test cluster");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Self {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// An existing SQLite file (not deleted afterwards).
    pub fn sqlite_file(path: &Path) -> Self {
        Self {
            url: format!("sqlite://{}", path.display()),
            pg_name: None,
        }
    }

    /// A connection for assertions.
    pub fn connect(&self) -> seatkeep::db::DbConn {
        match self.url.strip_prefix("sqlite://") {
            Some(path) => seatkeep::db::DbConn::Sqlite(
                diesel::SqliteConnection::establish(path).expect("open sqlite"),
            ),
            None => seatkeep::db::DbConn::Postgres(
                PgConnection::establish(&self.url).expect("connect postgres"),
            ),
        }
    }

    /// `SELECT COUNT(*) FROM table [WHERE ...]` (test-controlled SQL only).
    pub fn count(&self, table: &str, filter: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let where_clause = if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {filter}")
        };
        let mut conn = self.connect();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}{where_clause}"))
            .get_result::<Count>(&mut conn)
            .map(|c| c.n)
            .unwrap_or_else(|e| panic!("count {table}: {e}"))
    }

    /// One BIGINT value from test-controlled SQL.
    pub fn scalar(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Value {
            #[diesel(sql_type = BigInt)]
            v: i64,
        }
        let mut conn = self.connect();
        diesel::sql_query(sql)
            .get_result::<Value>(&mut conn)
            .map(|c| c.v)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a query returning one text column named `v`.
    pub fn scalar_text(&self, sql: &str) -> String {
        #[derive(QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let mut conn = self.connect();
        diesel::sql_query(sql)
            .get_result::<Value>(&mut conn)
            .map(|c| c.v)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Refused activations counted so far, all licenses.
    pub fn refusals(&self) -> i64 {
        self.scalar("SELECT CAST(COALESCE(SUM(refused), 0) AS BIGINT) AS v FROM refusal_counts")
    }

    /// The journal's promise (DESIGN §7): each license's changes are numbered 1..=change_seq
    /// with no gap and no repeat, one audit row each.
    pub fn assert_journal_gapless(&self) {
        let broken = self.count(
            "licenses l",
            "l.change_seq <> (SELECT COUNT(*) FROM audit_log a \
               WHERE a.license_id = l.id AND a.license_seq IS NOT NULL) \
             OR l.change_seq <> (SELECT COALESCE(MAX(a.license_seq), 0) FROM audit_log a \
               WHERE a.license_id = l.id) \
             OR EXISTS (SELECT 1 FROM audit_log a WHERE a.license_id = l.id \
               AND (a.license_seq IS NULL OR a.license_seq < 1))",
        );
        assert_eq!(broken, 0, "licenses whose change numbers have a gap");
        assert!(self.scalar("SELECT COUNT(*) AS v FROM licenses") > 0);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = PgConnection::establish(&pg_admin_url())
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// A data folder with config, server key, trusted provider key and database.
pub struct TestEnv {
    pub dir: TempDir,
    pub db: TestDb,
    pub config: PathBuf,
    pub provider_key: PathBuf,
    pub provider_pub: PathBuf,
    pub server_pub: PathBuf,
}

impl TestEnv {
    /// `seatkeep init`, a provider key, and a config trusting it with this test's database.
    pub fn new(backend: Backend) -> Self {
        Self::with_config(backend, "")
    }

    /// Like [`TestEnv::new`], with extra TOML appended to the config.
    pub fn with_config(backend: Backend, extra_toml: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("seatkeep-test-")
            .tempdir()
            .expect("tempdir");
        let out = run_ok(&["init", "--data-dir", dir.path().to_str().unwrap()]);
        assert_eq!(out.trim().len(), 64, "init prints the server id: {out}");
        run_ok(&[
            "provider",
            "keygen",
            "--out",
            dir.path().join("provider").to_str().unwrap(),
            "--kid",
            KID,
        ]);
        let db = TestDb::new(backend, dir.path());
        let config = dir.path().join("seatkeep.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n\
                 max_requests_per_client = {MAX_REQUESTS_PER_CLIENT}\n\
                 max_connections_per_client = {MAX_REQUESTS_PER_CLIENT}\n\
                 rate_limit_per_second = 0\n\n\
                 [database]\nurl = \"{}\"\npool_size = 8\n\n\
                 [identity]\nkey_file = \"server-key.pem\"\n\n\
                 [[provider.trusted_keys]]\nkid = \"{KID}\"\nprovider = \"{PROVIDER}\"\n\
                 algorithm = \"EdDSA\"\npublic_key_file = \"provider/{KID}.pub.pem\"\n\n{extra_toml}",
                db.url
            ),
        )
        .expect("write config");
        Self {
            provider_key: dir.path().join(format!("provider/{KID}.pem")),
            provider_pub: dir.path().join(format!("provider/{KID}.pub.pem")),
            server_pub: dir.path().join("server-key.pub.pem"),
            config,
            db,
            dir,
        }
    }

    /// A path inside the data folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `seatkeep --config CONFIG ARGS...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut full = vec!["--config", self.config.to_str().unwrap()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs the CLI and expects success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "seatkeep {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI and expects failure; returns stderr.
    pub fn cli_err(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "seatkeep {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The test provider's signing key.
    pub fn provider_signing_key(&self) -> SigningKey {
        SigningKey::from_pem(&std::fs::read(&self.provider_key).unwrap(), None).unwrap()
    }

    /// Claims for a valid node-locked license bound to this server.
    pub fn claims(&self, lic: &str, seats: i64) -> KeyFileClaims {
        let spki = pem::parse(std::fs::read(&self.server_pub).unwrap()).unwrap();
        serde_json::from_value(serde_json::json!({
            "iss": PROVIDER,
            "jti": format!("jti-{lic}-{}", hex::encode(rand::random::<[u8; 4]>())),
            "lic": lic,
            "seq": 1,
            "iat": seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime),
            "exp": seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime) + 365 * 86400,
            "customer": {"id": "cust-1", "name": "Customer One"},
            "product": {"id": "wordsmith", "name": "WordSmith", "edition": 2},
            "model": "node_locked",
            "seats": seats,
            "admins": ["buyer@customer.example"],
            "server": keyfile::server_claim(spki.contents()),
        }))
        .unwrap()
    }

    /// Signs claims into an armored key file with the test provider key.
    pub fn sign(&self, claims: &KeyFileClaims) -> String {
        keyfile::issue(claims, &self.provider_signing_key(), KID).unwrap()
    }

    /// Writes a key file into the data folder and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Signs, writes and imports a license; returns the key file text.
    pub fn import_license(&self, lic: &str, seats: i64) -> String {
        let text = self.sign(&self.claims(lic, seats));
        let path = self.write(&format!("{lic}.seatkey"), &text);
        self.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
        text
    }

    /// Starts `seatkeep serve` on a free port and waits until it is ready.
    pub async fn serve(&self) -> TestServer {
        TestServer::start(&self.config, &[]).await
    }

    /// Starts `seatkeep serve` with its clock `offset_secs` ahead (behind, when negative) of
    /// the real one (the debug build's test clock, `seatkeep::clock::TEST_OFFSET_ENV`).
    pub async fn serve_at_offset(&self, offset_secs: i64) -> TestServer {
        let offset = offset_secs.to_string();
        TestServer::start(&self.config, &[(seatkeep::clock::TEST_OFFSET_ENV, &offset)]).await
    }
}

/// Installs aws-lc-rs as rustls' provider for this test process (once).
pub fn ensure_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// The HTTP client tests use.
pub fn http_client() -> reqwest::Client {
    ensure_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// Runs the binary with arguments.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run seatkeep")
}

/// Runs the binary and expects success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "seatkeep {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `seatkeep serve`.
pub struct TestServer {
    pub url: String,
    pub log: PathBuf,
    pub child: Child,
    pub http: reqwest::Client,
}

impl TestServer {
    /// Starts `seatkeep --config CONFIG serve` with extra environment and waits for `/readyz`.
    pub async fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(config, env, http_client()).await
    }

    /// Like [`TestServer::start`], speaking through the given client (e.g. one trusting a
    /// test CA).
    pub async fn start_with(config: &Path, env: &[(&str, &str)], http: reqwest::Client) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["--config", config.to_str().unwrap(), "serve"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn seatkeep serve");
        let stderr = child.stderr.take().expect("stderr");
        let log_path = config.with_file_name(format!(
            "server-{}.log",
            hex::encode(rand::random::<[u8; 3]>())
        ));
        let (tx, rx) = mpsc::channel();
        let log = log_path.clone();
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(&log_path).ok();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(log, "{line}");
                }
                // Shown by nextest when the test fails.
                if line.contains("ERROR") {
                    eprintln!("server: {line}");
                }
                if !sent && let Some(url) = line.split("url=").nth(1) {
                    let url = url.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(Ok(url));
                    sent = true;
                }
                if !sent && line.starts_with("seatkeep: ") {
                    let _ = tx.send(Err(line.clone()));
                    sent = true;
                }
            }
            if !sent {
                let _ = tx.send(Err("server exited before listening".to_owned()));
            }
        });
        let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_else(|_| Err("timed out waiting for the server".into()))
            .unwrap_or_else(|e| panic!("seatkeep serve did not start: {e}"));
        let server = Self {
            url,
            log,
            child,
            http,
        };
        server.wait_ready().await;
        server
    }

    /// Polls `/readyz` until 200 (bounded).
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready", self.url);
    }

    /// POSTs JSON to a path; returns status and body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// GETs a path; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// The `/metrics` text (the test client is on loopback).
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `POST /api/v1/activations`.
    pub async fn activate(
        &self,
        key_file: &str,
        device: &str,
        user: &str,
    ) -> (u16, serde_json::Value) {
        self.post(
            "/api/v1/activations",
            &serde_json::json!({"key_file": key_file, "device_id": device, "user_name": user}),
        )
        .await
    }

    /// Stops the server with SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for server")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
