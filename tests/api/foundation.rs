//! Server foundation: init, config errors, migrations on both backends, health, readiness,
//! TLS.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::both_backends;
use crate::chaos_proxy::ChaosProxy;
use crate::helpers::{Backend, TestDb, TestEnv, TestServer, run};

#[test]
fn init_writes_a_private_key_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&["init", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 64);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let mode = std::fs::metadata(data.join("server-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private key must be 0600");
    assert!(data.join("server-key.pub.pem").exists());
    assert!(data.join("seatkeep.toml").exists());
    // The id is sha256 of the SPKI DER in the public key file.
    let spki = pem::parse(std::fs::read(data.join("server-key.pub.pem")).unwrap()).unwrap();
    assert_eq!(seatkeep::signing::spki_fingerprint(spki.contents()), id);

    let before = std::fs::read(data.join("server-key.pem")).unwrap();
    let again = run(&["init", "--data-dir", data.to_str().unwrap()]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(std::fs::read(data.join("server-key.pem")).unwrap(), before);

    let forced = run(&[
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--force",
        "--algorithm",
        "rsa-2048",
    ]);
    assert!(forced.status.success());
    assert_ne!(String::from_utf8_lossy(&forced.stdout).trim(), id);
}

/// A broken config stops `serve` and `migrate` with one line naming the problem, before
/// anything is written.
#[test]
fn bad_config_exits_with_one_line_and_writes_nothing() {
    let env = TestEnv::new(Backend::Sqlite);
    let original = std::fs::read_to_string(&env.config).unwrap();
    let db_file = env.path("seatkeep.db");
    let cases: Vec<(String, &str)> = vec![
        (
            original.replace("[server]\n", "[server]\nlisen = \"x\"\n"),
            "lisen",
        ),
        (
            original.replace("pool_size = 8", "pool_size = \"eight\""),
            "database.pool_size",
        ),
        (
            original.replace(&env.db.url, "mysql://localhost/seatkeep"),
            "database.url: unsupported scheme 'mysql'",
        ),
        (
            original.replace("server-key.pem", "missing-key.pem"),
            "identity.key_file",
        ),
        (
            original.replace("[clock]", "") + "\n[clock]\ntolerance = \"soon\"\n",
            "clock.tolerance",
        ),
        (
            original.replace("[server]\n", "[server]\nbody_timeout = \"0s\"\n"),
            "server.body_timeout",
        ),
        (
            original.replace("[server]\n", "[server]\nmax_connections = 0\n"),
            "server.max_connections",
        ),
        (
            format!("{original}\n[smtp]\nhost = \"relay.corp.example\"\nsecurity = \"none\"\n"),
            "smtp.security",
        ),
        (
            format!("{original}\n[smtp]\nfrom = \"not a mailbox\"\n"),
            "smtp.from",
        ),
        (
            format!("{original}\n[notify]\nthreshold_percent = 150\n"),
            "notify.threshold_percent",
        ),
        (
            format!("{original}\n[notify]\ngive_up_after = \"10s\"\n"),
            "notify.give_up_after: must be at least 1m",
        ),
        (
            format!(
                "{original}\n[notify]\noperators = [\"ops@site.example\", \"not a mailbox\"]\n"
            ),
            "notify.operators: 'not a mailbox' is not a valid mailbox",
        ),
        (
            format!("{original}\n[notify]\nexpiring_days = [0]\n"),
            "notify.expiring_days",
        ),
        (
            format!("{original}\n[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"bogus\"\n"),
            "smtp.security",
        ),
    ];
    for (config, expected) in cases {
        std::fs::write(&env.config, &config).unwrap();
        for command in [&["serve"][..], &["migrate"]] {
            let err = env.cli_err(command);
            assert!(err.contains(expected), "{command:?} with {expected}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            assert!(!db_file.exists(), "nothing written for {expected}");
        }
    }
    // A metrics token too short to be a secret stops `serve`, naming the key.
    std::fs::write(env.path("metrics.token"), "short\n").unwrap();
    std::fs::write(
        &env.config,
        format!("{original}\n[metrics]\ntoken_file = \"metrics.token\"\n"),
    )
    .unwrap();
    let err = env.cli_err(&["serve"]);
    assert!(err.contains("metrics.token_file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!db_file.exists(), "nothing written for a bad metrics token");
    // An SMTP password file or CA file that cannot be read stops `serve`, naming the key.
    for (extra, expected) in [
        (
            "username = \"mailer\"\npassword_file = \"missing-pass\"\nsecurity = \"none\"",
            "smtp.password_file",
        ),
        ("ca_file = \"missing-ca.pem\"", "smtp.ca_file"),
    ] {
        std::fs::write(
            &env.config,
            format!("{original}\n[smtp]\nhost = \"127.0.0.1\"\n{extra}\n"),
        )
        .unwrap();
        let err = env.cli_err(&["serve"]);
        assert!(err.contains(expected) && err.contains("missing-"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // An unreadable key file (not a key at all).
    std::fs::write(&env.config, &original).unwrap();
    std::fs::write(env.path("server-key.pem"), "not a key").unwrap();
    let err = env.cli_err(&["serve"]);
    assert!(
        err.contains("identity.key_file") && err.contains("server-key.pem"),
        "{err}"
    );
    assert!(!db_file.exists());
    // An environment override with a bad value names the key too.
    let out = std::process::Command::new(crate::helpers::BIN)
        .args(["--config", env.config.to_str().unwrap(), "migrate"])
        .env("SEATKEEP__SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

async fn health_and_readiness(backend: Backend) {
    let env = TestEnv::new(backend);
    let server = env.serve().await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = server.get("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    // Every request is logged with the id the response carries.
    let response = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut logged = false;
    for _ in 0..50 {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if log.lines().any(|l| {
            l.contains(&format!("request_id={id}"))
                && l.contains("status=200")
                && l.contains("path=/healthz")
        }) {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logged, "request {id} logged");
    let response = server
        .http
        .get(format!("{}/nope", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let metrics = server.metrics().await;
    assert!(metrics.contains("seatkeep_database_up 1"), "{metrics}");
}
both_backends!(health_and_ready, health_and_readiness);

async fn graceful_shutdown(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut server = env.serve().await;
    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status:?}"
    );
}
both_backends!(sigterm_stops_cleanly, graceful_shutdown);

/// Columns of every table, as (table, column, nullable) on each backend.
fn sqlite_columns(db: &TestDb) -> Vec<(String, String, bool)> {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        t: String,
        #[diesel(sql_type = Text)]
        c: String,
        #[diesel(sql_type = BigInt)]
        not_null: i64,
        #[diesel(sql_type = BigInt)]
        pk: i64,
    }
    let mut conn = db.connect();
    let rows: Vec<Col> = diesel::sql_query(
        "SELECT m.name AS t, p.name AS c, p.\"notnull\" AS not_null, p.pk AS pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY 1, 2",
    )
    .load(&mut conn)
    .unwrap();
    rows.into_iter()
        .map(|r| (r.t, r.c, r.not_null == 0 && r.pk == 0))
        .collect()
}

fn postgres_columns(db: &TestDb) -> Vec<(String, String, bool)> {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        t: String,
        #[diesel(sql_type = Text)]
        c: String,
        #[diesel(sql_type = Text)]
        nullable: String,
    }
    let mut conn = db.connect();
    let rows: Vec<Col> = diesel::sql_query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS nullable \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    )
    .load(&mut conn)
    .unwrap();
    rows.into_iter()
        .map(|r| (r.t, r.c, r.nullable == "YES"))
        .collect()
}

#[test]
fn migrate_gives_the_same_tables_and_columns_on_both_backends() {
    let sqlite = TestEnv::new(Backend::Sqlite);
    let postgres = TestEnv::new(Backend::Postgres);
    for env in [&sqlite, &postgres] {
        let out = env.cli_ok(&["migrate"]);
        assert!(out.contains("migrations applied"), "{out}");
        let again = env.cli_ok(&["migrate"]);
        assert!(again.starts_with("0 migrations applied"), "{again}");
    }
    let lite = sqlite_columns(&sqlite.db);
    let pg = postgres_columns(&postgres.db);
    assert!(
        lite.iter()
            .any(|(t, c, _)| t == "seats" && c == "device_id")
    );
    assert!(lite.len() > 40, "{lite:?}");
    assert_eq!(lite, pg, "SQLite and PostgreSQL schemas differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_without_a_restart() {
    let env = TestEnv::new(Backend::Postgres);
    env.cli_ok(&["migrate"]);
    let pg_port: u16 = env
        .db
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let proxy = ChaosProxy::start(pg_port);
    let proxied = env
        .db
        .url
        .replace(&format!(":{pg_port}/"), &format!(":{}/", proxy.port));
    let server = TestServer::start(
        &env.config,
        &[
            ("SEATKEEP__DATABASE__URL", proxied.as_str()),
            ("SEATKEEP__DATABASE__CONNECT_TIMEOUT", "1s"),
        ],
    )
    .await;
    assert_eq!(server.get("/readyz").await.0, 200);
    let key_file = env.import_license("LIC-OUTAGE", 5);
    assert_eq!(server.activate(&key_file, "before", "u").await.0, 201);
    proxy.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "not_ready");
    // Devices get a clear, retryable refusal during the outage, and nothing is half-written.
    for device in ["during-1", "during-2"] {
        let response = server
            .http
            .post(format!("{}/api/v1/activations", server.url))
            .json(&serde_json::json!({"key_file": key_file, "device_id": device, "user_name": "u"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["retry-after"], "5");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("unavailable")),
            "{body}"
        );
    }
    assert_eq!(
        server.get("/healthz").await.0,
        200,
        "liveness does not depend on the database"
    );
    proxy.up.store(true, Ordering::SeqCst);
    let mut recovered = false;
    for _ in 0..100 {
        if server.get("/readyz").await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "/readyz back to 200 once the database is reachable"
    );
}

/// Writes a self-signed certificate for 127.0.0.1/localhost and returns its PEM.
fn write_certificate(env: &TestEnv) -> String {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(env.path("tls-cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(env.path("tls-key.pem"), cert.signing_key.serialize_pem()).unwrap();
    cert.cert.pem()
}

/// A TLS 1.1-only ClientHello (no supported_versions extension, legacy version 0x0302).
fn legacy_client_hello(version_minor: u8) -> Vec<u8> {
    let mut body = vec![0x03, version_minor];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0xc0, 0x13]); // AES128-SHA, ECDHE-RSA-AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_tls_12_and_13_only() {
    let env = TestEnv::with_config(
        Backend::Sqlite,
        "[server.tls]\ncert = \"tls-cert.pem\"\nkey = \"tls-key.pem\"\n",
    );
    let cert_pem = write_certificate(&env);
    crate::helpers::ensure_crypto();
    let ca = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let trusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    let server = TestServer::start_with(&env.config, &[], trusting).await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    for (min, max) in [
        (
            reqwest::tls::Version::TLS_1_3,
            reqwest::tls::Version::TLS_1_3,
        ),
        (
            reqwest::tls::Version::TLS_1_2,
            reqwest::tls::Version::TLS_1_2,
        ),
    ] {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone())
            .min_tls_version(min)
            .max_tls_version(max)
            .build()
            .unwrap();
        let url = server.url.replace("127.0.0.1", "localhost");
        let response = client.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // The reference device client trusts the certificate with --ca.
    let key_file = env.import_license("LIC-TLS", 1);
    let key_path = env.write("tls.seatkey", key_file);
    let out = crate::helpers::run(&[
        "device",
        "activate",
        "--server",
        &server.url.replace("127.0.0.1", "localhost"),
        "--key-file",
        key_path.to_str().unwrap(),
        "--device-id",
        "tls-dev",
        "--user",
        "T",
        "--ca",
        env.path("tls-cert.pem").to_str().unwrap(),
        "--out",
        env.path("tls-dev.json").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A client offering only TLS 1.0 or 1.1 gets a fatal alert, never a ServerHello.
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    for minor in [0x01, 0x02] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(&legacy_client_hello(minor)).unwrap();
        let mut answer = [0u8; 7];
        let n = stream.read(&mut answer).unwrap_or(0);
        assert!(
            n == 0 || answer[0] == 0x15,
            "TLS 1.{} must be refused: {:?}",
            minor - 1,
            &answer[..n]
        );
        if n >= 7 {
            assert_eq!(answer[5], 2, "fatal alert");
        }
    }
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}
