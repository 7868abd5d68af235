//! Email notifications against a real SMTP relay (aiosmtpd, `tests/tools/smtp_sink.py`) on a
//! free loopback port per test: exactly-once across instances, restarts and relay outages,
//! TLS refusals, threshold and expiry timing, escaping.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, TestServer};

/// A running aiosmtpd that stores every message as a JSON file in `dir`.
struct Relay {
    child: Child,
    dir: PathBuf,
}

impl Relay {
    fn start(dir: &Path, port: u16, mode: &str, cert: Option<&TestCert>) -> Self {
        Self::start_with(dir, port, mode, cert, &[])
    }

    /// Like [`Relay::start`], with more `smtp_sink.py` options (`--auth-user`,
    /// `--reject-rcpt`, `--data-delay`…).
    fn start_with(
        dir: &Path,
        port: u16,
        mode: &str,
        cert: Option<&TestCert>,
        extra: &[&str],
    ) -> Self {
        let python =
            std::env::var("SEATKEEP_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/smtp_sink.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap()])
            .args(["--mode", mode])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cert) = cert {
            command.args(["--cert", cert.cert.to_str().unwrap()]);
            command.args(["--key", cert.key.to_str().unwrap()]);
        }
        let mut child = command.spawn().expect("start smtp_sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "smtp_sink.py did not start");
        Self {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Every message received so far, in arrival order.
    fn messages(&self) -> Vec<serde_json::Value> {
        messages_in(&self.dir)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn messages_in(dir: &Path) -> Vec<serde_json::Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|x| x == "json"));
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// Messages whose subject starts with `subject`.
fn with_subject(messages: &[serde_json::Value], subject: &str) -> Vec<serde_json::Value> {
    let header = format!("Subject: {subject}");
    messages
        .iter()
        .filter(|m| m["data"].as_str().unwrap().contains(&header))
        .cloned()
        .collect()
}

/// Waits (bounded) until `dir` holds `n` messages with that subject; then returns them all.
async fn wait_for(dir: &Path, subject: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..300 {
        if with_subject(&messages_in(dir), subject).len() >= n {
            return messages_in(dir);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "fewer than {n} '{subject}' emails arrived: {:?}",
        messages_in(dir)
    );
}

/// Waits until every email the relay got is marked sent in the database too: a server killed
/// between the relay's answer and that commit sends the row again after a restart (SMTP is
/// at least once), which is right, but not what a test counting emails across restarts wants.
async fn wait_recorded_sent(env: &TestEnv, dir: &Path) {
    for _ in 0..300 {
        let seen = messages_in(dir).len() as i64;
        if env.db.count("notifications", "state = 'sent'") >= seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relay got emails the database does not show as sent");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA and a relay certificate it signed for 127.0.0.1 and localhost.
struct TestCert {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn test_cert(dir: &Path) -> TestCert {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let out = TestCert {
        ca: dir.join("relay-ca.pem"),
        cert: dir.join("relay-cert.pem"),
        key: dir.join("relay-key.pem"),
    };
    std::fs::write(&out.ca, ca.pem()).unwrap();
    std::fs::write(&out.cert, leaf.pem()).unwrap();
    std::fs::write(&out.key, leaf_key.serialize_pem()).unwrap();
    out
}

fn smtp_toml(port: u16, security: &str, extra: &str) -> String {
    format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n\
         from = \"Seatkeep <seatkeep@test.example>\"\ntimeout = \"5s\"\n{extra}\n"
    )
}

const ADMINS: [&str; 2] = ["buyer@customer.example", "cfo@customer.example"];

/// Imports a license with two admins; returns its key file.
fn import_with_admins(env: &TestEnv, lic: &str, seats: i64) -> String {
    let mut claims = env.claims(lic, seats);
    claims.admins = ADMINS.iter().map(|a| (*a).to_owned()).collect();
    let text = env.sign(&claims);
    let path = env.write(&format!("{lic}.seatkey"), &text);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    text
}

async fn fill_and_refuse(
    server: &TestServer,
    key: &str,
    prefix: &str,
    taken: usize,
    refused: usize,
) -> Vec<String> {
    let mut seats = Vec::new();
    for i in 0..taken {
        let (status, body) = server
            .activate(key, &format!("{prefix}-ok-{i}"), "user")
            .await;
        assert_eq!(status, 201, "{body}");
        seats.push(body["seat"].as_str().unwrap().to_owned());
    }
    for i in 0..refused {
        let (status, body) = server
            .activate(key, &format!("{prefix}-no-{i}"), "user")
            .await;
        assert_eq!(status, 409, "{body}");
    }
    seats
}

fn assert_each_admin_once(message: &serde_json::Value) {
    let rcpts: Vec<&str> = message["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rcpts, ADMINS, "{message}");
}

fn notify_list(env: &TestEnv, filter: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["--json", "notify", "list"];
    args.extend_from_slice(filter);
    serde_json::from_str(&env.cli_ok(&args)).unwrap()
}

async fn exhausted_once_per_episode(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", ""));
    let key = import_with_admins(&env, "lic-mail", 5);
    let server = env.serve().await;
    let seats = fill_and_refuse(&server, &key, "a", 5, 20).await;
    let all = wait_for(&relay.dir, "Out of seats", 1).await;
    let exhausted = with_subject(&all, "Out of seats");
    assert_eq!(exhausted.len(), 1, "{exhausted:?}");
    assert_each_admin_once(&exhausted[0]);
    let data = exhausted[0]["data"].as_str().unwrap();
    assert!(data.contains("5 / 5"), "{data}");
    assert!(data.contains("Devices refused so far: 1."), "{data}");
    assert!(data.contains("/console/licenses/lic-mail"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    // Message-ID: the first 16 bytes of SHA-256 of the dedupe key, hex, at the From domain.
    let dedupe_key = env.db.scalar_text(
        "SELECT dedupe_key AS v FROM notifications WHERE kind = 'seats_exhausted' ORDER BY id LIMIT 1",
    );
    use sha2::Digest as _;
    let digest = hex::encode(&sha2::Sha256::digest(dedupe_key.as_bytes())[..16]);
    let message_id = format!("Message-ID: <{digest}@test.example>");
    assert!(data.contains(&message_id), "{message_id} in {data}");

    // Seats freed and the license ran out again: a new episode, one more email.
    env.cli_ok(&["seats", "retire", &seats[0]]);
    fill_and_refuse(&server, &key, "b", 1, 10).await;
    wait_for(&relay.dir, "Out of seats", 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(with_subject(&relay.messages(), "Out of seats").len(), 2);
    let rows = notify_list(&env, &[]);
    let sent = rows
        .iter()
        .filter(|r| r["kind"] == "seats_exhausted" && r["state"] == "sent")
        .count();
    assert_eq!(sent, 2, "{rows:?}");
}
both_backends!(
    notify_exhausted_once_per_episode,
    exhausted_once_per_episode
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_three_instances_send_one_email_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let env = TestEnv::with_config(Backend::Postgres, &smtp_toml(port, "none", ""));
    let key = import_with_admins(&env, "lic-multi", 5);
    let servers = [env.serve().await, env.serve().await, env.serve().await];
    fill_and_refuse(&servers[0], &key, "fill", 5, 0).await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (url, http, key) = (
            servers[i % 3].url.clone(),
            servers[i % 3].http.clone(),
            key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(format!("{url}/api/v1/activations"))
                .json(&serde_json::json!({"key_file": key, "device_id": format!("r-{i}"), "user_name": "u"}))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 409);
    }
    wait_for(&relay.dir, "Out of seats", 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let exhausted = with_subject(&relay.messages(), "Out of seats");
    assert_eq!(exhausted.len(), 1, "{exhausted:?}");
    assert_each_admin_once(&exhausted[0]);
}

async fn relay_down_then_up_after_kill(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", ""));
    let key = import_with_admins(&env, "lic-down", 2);
    let mut server = env.serve().await;
    fill_and_refuse(&server, &key, "d", 2, 3).await;
    // Nothing listens: the rows stay pending with the reason (wait for the exhausted row's
    // own first attempt: the threshold row, queued earlier, may fail first).
    let error = wait_pending_reason(&env, "seats_exhausted").await;
    let pending = notify_list(&env, &["--pending"]);
    let exhausted = pending
        .iter()
        .filter(|r| r["kind"] == "seats_exhausted")
        .count();
    assert_eq!(exhausted, 1, "{pending:?}");
    assert!(error.contains("connection refused"), "{error}");
    server.kill();
    // The relay comes up; the server restarts (kill -9 left the rows pending) past the 1 min
    // backoff: each email is sent once.
    let relay = Relay::start(dir.path(), port, "plain", None);
    let _server = env.serve_at_offset(150).await;
    wait_for(&relay.dir, "Out of seats", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = relay.messages();
    assert_eq!(with_subject(&all, "Out of seats").len(), 1, "{all:?}");
    // The threshold email owed at 2/2 went out once too.
    assert_eq!(all.len(), 2, "{:?}", notify_list(&env, &[]));
    assert!(notify_list(&env, &["--pending"]).is_empty());
}
both_backends!(
    notify_relay_down_then_up_after_kill,
    relay_down_then_up_after_kill
);

async fn starttls_refusals(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cert = test_cert(dir.path());
    let env = TestEnv::with_config(backend, &smtp_toml(port, "starttls", ""));
    let key = import_with_admins(&env, "lic-tls", 1);
    // A relay without STARTTLS gets nothing: the row stays pending with that reason.
    let plain = Relay::start(&dir.path().join("plain"), port, "plain", None);
    let mut server = env.serve().await;
    fill_and_refuse(&server, &key, "t", 1, 1).await;
    let reason = wait_pending_reason(&env, "seats_exhausted").await;
    assert!(reason.contains("STARTTLS"), "{reason}");
    assert!(plain.messages().is_empty());
    server.kill();
    drop(plain);
    // STARTTLS with a certificate the server does not trust: nothing sent.
    let tls = Relay::start(&dir.path().join("tls"), port, "starttls", Some(&cert));
    let offset = 400.to_string();
    let mut server =
        TestServer::start(&env.config, &[(seatkeep::clock::TEST_OFFSET_ENV, &offset)]).await;
    let mut reason = String::new();
    for _ in 0..100 {
        reason = wait_pending_reason(&env, "seats_exhausted").await;
        if reason.contains("certificate") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reason.contains("certificate not trusted"), "{reason}");
    assert!(tls.messages().is_empty());
    server.kill();
    // With the test CA in ca_file: sent, over TLS.
    let offset = 4000.to_string();
    let ca = cert.ca.to_str().unwrap().to_owned();
    let _server = TestServer::start(
        &env.config,
        &[
            (seatkeep::clock::TEST_OFFSET_ENV, &offset),
            ("SEATKEEP__SMTP__CA_FILE", &ca),
        ],
    )
    .await;
    let all = wait_for(&tls.dir, "Out of seats", 1).await;
    let exhausted = with_subject(&all, "Out of seats");
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0]["tls"], true);
}
both_backends!(notify_starttls_refusals, starttls_refusals);

async fn wait_pending_reason(env: &TestEnv, kind: &str) -> String {
    for _ in 0..100 {
        let rows = notify_list(env, &["--pending"]);
        if let Some(error) = rows
            .iter()
            .find(|r| r["kind"] == kind)
            .and_then(|r| r["last_error"].as_str())
        {
            return error.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no pending {kind} with an error");
}

async fn threshold_expiry_and_escaping(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", ""));
    let mut claims = env.claims("lic-th", 5);
    claims.customer.name = "Acme <script>x</script>\u{2028}Bcc: evil@x.example".into();
    let exp = claims.exp.unwrap();
    let key = env.sign(&claims);
    let path = env.write("lic-th.seatkey", &key);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve().await;
    for i in 0..4 {
        assert_eq!(
            server.activate(&key, &format!("th-{i}"), "plain").await.0,
            201
        );
    }
    assert_eq!(
        server
            .activate(&key, "th-4", "<b>Ann</b> & \"Bob\"")
            .await
            .0,
        201
    );
    let all = wait_for(&relay.dir, "WordSmith for Acme", 1).await;
    let threshold = with_subject(&all, "WordSmith for Acme");
    assert_eq!(threshold.len(), 1, "{all:?}");
    let data = threshold[0]["data"].as_str().unwrap();
    let (head, _) = data.split_once("\r\n\r\n").unwrap();
    // The name stays inside the Subject: no header of its own, no extra recipient.
    assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
    assert_eq!(
        threshold[0]["rcpt_tos"],
        serde_json::json!(["buyer@customer.example"])
    );
    // The decoded parts: the HTML one escapes the user and customer names, the text one
    // keeps them as they are.
    let html = threshold[0]["html"].as_str().unwrap();
    // askama writes numeric references.
    assert!(
        html.contains("&#60;b&#62;Ann&#60;/b&#62; &#38; &#34;Bob&#34;"),
        "{html}"
    );
    assert!(
        html.contains("Acme &#60;script&#62;x&#60;/script&#62;"),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<b>Ann"),
        "{html}"
    );
    let text = threshold[0]["text"].as_str().unwrap();
    assert!(text.contains("<b>Ann</b> & \"Bob\""), "{text}");
    // Under it and back over: a new crossing, one more email.
    let (_, seat) = server.activate(&key, "th-0", "plain").await;
    env.cli_ok(&["seats", "retire", seat["seat"].as_str().unwrap()]);
    assert_eq!(server.activate(&key, "th-5", "plain").await.0, 201);
    wait_for(&relay.dir, "WordSmith for Acme", 2).await;
    wait_recorded_sent(&env, &relay.dir).await;
    drop(server);
    // Six days before exp (a little less): the 7-day email, saying the 6 days really left;
    // then after exp: once each.
    let now = seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime);
    let mut server = env.serve_at_offset(exp - now - 6 * 86_400).await;
    wait_for(&relay.dir, "Expires in 6 day(s)", 1).await;
    wait_recorded_sent(&env, &relay.dir).await;
    server.kill();
    let _server = env.serve_at_offset(exp - now - 6 * 86_400 + 60).await;
    let _late = env.serve_at_offset(exp - now + 3600).await;
    wait_for(&relay.dir, "Expired", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = relay.messages();
    assert_eq!(
        with_subject(&all, "Expires in 6 day(s)").len(),
        1,
        "{all:?}"
    );
    assert_eq!(with_subject(&all, "Expired").len(), 1);
    assert_eq!(with_subject(&all, "WordSmith for Acme").len(), 2);
}
both_backends!(
    notify_threshold_expiry_and_escaping,
    threshold_expiry_and_escaping
);

async fn bad_admin_mailbox_is_refused(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut claims = env.claims("lic-bad-admin", 5);
    claims.admins = vec!["buyer@customer.example".into(), "a(b@c.example".into()];
    let path = env.write("bad.seatkey", env.sign(&claims));
    let err = env.cli_err(&["keyfile", "import", path.to_str().unwrap()]);
    assert!(
        err.contains("admins") && err.contains("a(b@c.example"),
        "{err}"
    );
    assert_eq!(env.db.count("licenses", ""), 0);
    assert_eq!(env.db.count("key_files", ""), 0);
}
both_backends!(
    notify_bad_admin_mailbox_is_refused,
    bad_admin_mailbox_is_refused
);

/// `notify test` sends one email now and prints the relay's answer; with nothing listening
/// it fails on one line that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_command_reports_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let env = TestEnv::with_config(Backend::Sqlite, &smtp_toml(port, "none", ""));
    let out = env.cli_ok(&["notify", "test", "--to", "ops@site.example"]);
    assert!(out.contains("the relay answered"), "{out}");
    let all = wait_for(&relay.dir, "Seatkeep test email", 1).await;
    assert_eq!(with_subject(&all, "Seatkeep test email").len(), 1);
    assert_eq!(all[0]["rcpt_tos"], serde_json::json!(["ops@site.example"]));
    drop(relay);
    let err = env.cli_err(&["notify", "test", "--to", "ops@site.example"]);
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let bad = env.cli_err(&["notify", "test", "--to", "not a mailbox"]);
    assert!(bad.contains("not a valid mailbox"), "{bad}");
}

/// A server whose clock went back tells `notify.operators`, once per incident.
async fn clock_untrusted_to_operators(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let extra = "[notify]\noperators = [\"ops@site.example\"]";
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", extra));
    let key = import_with_admins(&env, "lic-clock", 3);
    // Two days ahead, then back on the real clock: untrusted.
    let mut ahead = env.serve_at_offset(48 * 3600).await;
    assert_eq!(ahead.activate(&key, "dev-0", "Ada").await.0, 201);
    ahead.kill();
    let mut server = env.serve().await;
    let (status, _) = server.activate(&key, "dev-1", "Ada").await;
    assert_eq!(status, 503);
    let subject = "Seatkeep at";
    let all = wait_for(&relay.dir, subject, 1).await;
    let sent = with_subject(&all, subject);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["rcpt_tos"], serde_json::json!(["ops@site.example"]));
    // A restart in the same incident sends nothing more.
    wait_recorded_sent(&env, &relay.dir).await;
    server.kill();
    let server = env.serve().await;
    let _ = server.activate(&key, "dev-2", "Ada").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(with_subject(&relay.messages(), subject).len(), 1);
}
both_backends!(
    notify_clock_untrusted_to_operators,
    clock_untrusted_to_operators
);

/// While refusals go on, at most one digest a day; a renewal that adds seats ends the
/// episode, and running out again starts a new one.
async fn digest_and_renewal(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", ""));
    let key = import_with_admins(&env, "lic-digest", 2);
    let mut server = env.serve().await;
    fill_and_refuse(&server, &key, "a", 2, 5).await;
    wait_for(&relay.dir, "Out of seats", 1).await;
    wait_recorded_sent(&env, &relay.dir).await;
    server.kill();
    // A day and a bit later refusals go on: one digest, however many refusals.
    let mut later = env.serve_at_offset(25 * 3600).await;
    for i in 0..10 {
        let (status, _) = later.activate(&key, &format!("late-{i}"), "user").await;
        assert_eq!(status, 409);
    }
    wait_for(&relay.dir, "Still out of seats", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        with_subject(&relay.messages(), "Still out of seats").len(),
        1
    );
    assert_eq!(with_subject(&relay.messages(), "Out of seats").len(), 1);
    wait_recorded_sent(&env, &relay.dir).await;
    later.kill();
    // A renewal with more seats: the next time the license runs out is a new episode.
    let mut claims = env.claims("lic-digest", 3);
    claims.seq = 2;
    claims.jti = "renewal-1".into();
    claims.admins = ADMINS.iter().map(|a| (*a).to_owned()).collect();
    let renewal = env.sign(&claims);
    let path = env.write("renewal.seatkey", &renewal);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve_at_offset(25 * 3600).await;
    fill_and_refuse(&server, &renewal, "c", 1, 3).await;
    wait_for(&relay.dir, "Out of seats", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(with_subject(&relay.messages(), "Out of seats").len(), 2);
}
both_backends!(notify_digest_a_day_and_renewal_episode, digest_and_renewal);

/// A relay that stays down past `notify.give_up_after` leaves the row failed, with its last
/// error; `notify retry` makes it due again and, once the relay is up, it is sent once.
async fn give_up_then_retry(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = TestEnv::with_config(
        backend,
        &smtp_toml(port, "none", "[notify]\ngive_up_after = \"100s\""),
    );
    let key = import_with_admins(&env, "lic-giveup", 1);
    let mut server = env.serve().await;
    fill_and_refuse(&server, &key, "g", 1, 1).await;
    wait_pending_reason(&env, "seats_exhausted").await;
    server.kill();
    // Past the backoff and past give_up_after: the next attempt fails for good.
    let mut later = env.serve_at_offset(300).await;
    let mut failed = Vec::new();
    for _ in 0..100 {
        failed = notify_list(&env, &["--failed"]);
        if failed.iter().any(|r| r["kind"] == "seats_exhausted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = failed
        .iter()
        .find(|r| r["kind"] == "seats_exhausted")
        .unwrap_or_else(|| panic!("no failed row: {:?}", notify_list(&env, &[])));
    assert!(
        row["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("connection refused"),
        "{row}"
    );
    let scrape = later.metrics().await;
    // The threshold row, as old, may have been given up on in the same pass.
    assert!(
        metric(&scrape, "seatkeep_notifications_failed_total") >= 1,
        "{scrape}"
    );
    assert_eq!(metric(&scrape, "seatkeep_notifications_sent_total"), 0);
    let failed_attempts = scrape
        .lines()
        .find_map(|l| l.strip_prefix("seatkeep_emails_total{result=\"failed\"} "))
        .and_then(|v| v.parse::<i64>().ok());
    assert!(failed_attempts.is_some_and(|n| n >= 1), "{scrape}");
    later.kill();
    let relay = Relay::start(dir.path(), port, "plain", None);
    let id = row["id"].to_string();
    let out = env.cli_ok(&["notify", "retry", &id]);
    assert!(out.contains("due now"), "{out}");
    let _server = env.serve_at_offset(300).await;
    wait_for(&relay.dir, "Out of seats", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(with_subject(&relay.messages(), "Out of seats").len(), 1);
}
both_backends!(notify_give_up_then_retry, give_up_then_retry);

/// Waits (bounded) until `path` exists.
async fn wait_file(path: &Path) {
    for _ in 0..300 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never appeared", path.display());
}

/// The value of an unlabelled metric line `name value` in a scrape.
fn metric(scrape: &str, name: &str) -> i64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {scrape}"))
}

/// `security = "tls"` (implicit TLS, port 465 style) with the test CA from
/// `SEATKEEP__SMTP__CA_FILE`: both emails arrive over TLS; the metrics count them.
async fn implicit_tls(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cert = test_cert(dir.path());
    let relay = Relay::start(&dir.path().join("tls"), port, "tls", Some(&cert));
    let env = TestEnv::with_config(backend, &smtp_toml(port, "tls", ""));
    let key = import_with_admins(&env, "lic-465", 1);
    let ca = cert.ca.to_str().unwrap().to_owned();
    let server = TestServer::start(&env.config, &[("SEATKEEP__SMTP__CA_FILE", &ca)]).await;
    fill_and_refuse(&server, &key, "i", 1, 1).await;
    // Every message has a Subject: "" waits for any two.
    let all = wait_for(&relay.dir, "", 2).await;
    assert_eq!(all.len(), 2, "threshold and seats_exhausted: {all:?}");
    for message in &all {
        assert_eq!(message["tls"], true, "{message}");
        assert_each_admin_once(message);
    }
    wait_recorded_sent(&env, &relay.dir).await;
    let scrape = server.metrics().await;
    assert_eq!(metric(&scrape, "seatkeep_notifications_queued_total"), 2);
    assert_eq!(metric(&scrape, "seatkeep_notifications_sent_total"), 2);
    assert_eq!(metric(&scrape, "seatkeep_notifications_failed_total"), 0);
    assert_eq!(
        metric(&scrape, "seatkeep_notifications_oldest_pending_seconds"),
        0
    );
    assert!(
        scrape.contains("seatkeep_emails_total{result=\"sent\"} 2"),
        "{scrape}"
    );
}
both_backends!(notify_implicit_tls, implicit_tls);

/// `seatkeep notify test` with the environment `extra` on top of the config.
fn notify_test_with(env: &TestEnv, extra: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(crate::helpers::BIN);
    command
        .args(["--config", env.config.to_str().unwrap()])
        .args(["notify", "test", "--to", "ops@site.example"])
        .env_remove("RUST_LOG");
    for (k, v) in extra {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// SMTP AUTH with `smtp.username` and `password_file`, then `SEATKEEP__SMTP__PASSWORD`
/// (a number: taken as the string it is, never echoed); a wrong password, a relay with no
/// mechanism in common, a relay without STARTTLS and an untrusted certificate each fail with
/// their own words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_command_auth_and_tls_failures() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = TestEnv::with_config(
        Backend::Sqlite,
        &smtp_toml(
            port,
            "none",
            "username = \"mailer\"\npassword_file = \"smtp-pass\"",
        ),
    );
    std::fs::write(env.path("smtp-pass"), "file-secret-1\n").unwrap();
    let auth = |password: &str| {
        [
            "--auth-user".to_owned(),
            "mailer".to_owned(),
            "--auth-password".to_owned(),
            password.to_owned(),
        ]
    };
    let args = auth("file-secret-1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let relay = Relay::start_with(&dir.path().join("a"), port, "plain", None, &args);
    let out = notify_test_with(&env, &[]);
    assert!(out.status.success(), "{}", all_output(&out));
    let all = wait_for(&relay.dir, "Seatkeep test email", 1).await;
    assert_eq!(all[0]["auth_user"], "mailer");
    // The wrong password in the file.
    std::fs::write(env.path("smtp-pass"), "wrong\n").unwrap();
    let out = notify_test_with(&env, &[]);
    assert!(!out.status.success());
    let text = all_output(&out);
    assert!(text.contains("authentication failed"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    drop(relay);

    // The password from the environment, all digits (TOML would read it as a number).
    let args = auth("123456");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let relay = Relay::start_with(&dir.path().join("b"), port, "plain", None, &args);
    let from_env = |password: &'static str| {
        [
            ("SEATKEEP__SMTP__PASSWORD_FILE", ""),
            ("SEATKEEP__SMTP__PASSWORD", password),
        ]
    };
    let out = notify_test_with(&env, &from_env("123456"));
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("123456"), "{text}");
    wait_for(&relay.dir, "Seatkeep test email", 1).await;
    let out = notify_test_with(&env, &from_env("987654"));
    let text = all_output(&out);
    assert!(!out.status.success());
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("987654"), "{text}");
    drop(relay);

    // A relay that offers neither PLAIN nor LOGIN.
    let mut args = auth("123456").to_vec();
    args.extend(["--auth-exclude", "PLAIN", "--auth-exclude", "LOGIN"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let relay = Relay::start_with(&dir.path().join("c"), port, "plain", None, &args);
    let text = all_output(&notify_test_with(&env, &from_env("123456")));
    assert!(
        text.contains("no authentication mechanism in common"),
        "{text}"
    );
    assert!(relay.messages().is_empty());
    drop(relay);

    // starttls: a relay without STARTTLS, then one whose certificate is not trusted.
    let starttls = [("SEATKEEP__SMTP__SECURITY", "starttls")];
    let relay = Relay::start(&dir.path().join("d"), port, "plain", None);
    let text = all_output(&notify_test_with(&env, &starttls));
    assert!(
        text.contains("does not offer STARTTLS (nothing sent in clear)"),
        "{text}"
    );
    drop(relay);
    let cert = test_cert(dir.path());
    let relay = Relay::start(&dir.path().join("e"), port, "starttls", Some(&cert));
    let text = all_output(&notify_test_with(&env, &starttls));
    assert!(text.contains("certificate not trusted"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    assert!(relay.messages().is_empty());
}

/// A relay that rejects one admin's `RCPT TO` quotes the address; what is stored and logged
/// shows it masked, and no admin's address appears in the server's log.
async fn rejected_recipient_masked(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _relay = Relay::start_with(
        dir.path(),
        port,
        "plain",
        None,
        &["--reject-rcpt", ADMINS[1]],
    );
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", ""));
    let key = import_with_admins(&env, "lic-rcpt", 1);
    let server = env.serve().await;
    fill_and_refuse(&server, &key, "r", 1, 1).await;
    let reason = wait_pending_reason(&env, "seats_exhausted").await;
    assert!(reason.contains("c***@customer.example"), "{reason}");
    assert!(!reason.contains(ADMINS[1]), "{reason}");
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if log.matches("will retry").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The relay's rejection itself, masked (the `to` field of the same line is masked
    // anyway and proves nothing about the answer).
    assert!(
        log.contains("<c***@customer.example>: Recipient address rejected"),
        "{log}"
    );
    // No notify.operators: the server says at start that trouble emails nobody.
    assert!(log.contains("notify.operators is empty"), "{log}");
    for admin in ADMINS {
        assert!(!log.contains(admin), "{admin} in the log:\n{log}");
    }
}
both_backends!(
    notify_rejected_recipient_masked_in_logs,
    rejected_recipient_masked
);

/// SIGTERM while the relay is still taking an email: `serve` waits for it; the email
/// arrives, its row is sent, and the exit is clean.
async fn shutdown_waits_for_email_in_flight(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = Relay::start_with(dir.path(), port, "plain", None, &["--data-delay", "2"]);
    let env = TestEnv::with_config(backend, &smtp_toml(port, "none", ""));
    let key = import_with_admins(&env, "lic-term", 1);
    let mut server = env.serve().await;
    // 1 of 1 seats: the threshold email, the only one.
    assert_eq!(server.activate(&key, "dev-0", "Ada").await.0, 201);
    wait_file(&dir.path().join("receiving")).await;
    assert!(relay.messages().is_empty(), "still in DATA");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(relay.messages().len(), 1);
    assert_eq!(env.db.count("notifications", "state = 'sent'"), 1);
    assert_eq!(env.db.count("notifications", ""), 1);
}
both_backends!(
    notify_shutdown_waits_for_email_in_flight,
    shutdown_waits_for_email_in_flight
);
