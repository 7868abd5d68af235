//! The README's first command, tried as a new user would: quickstart, the printed activation
//! and verification commands, exhaustion of the 5 demo seats, and a second start that reuses
//! everything.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{BIN, TestDb, http_client};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running quickstart, stopped when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the quickstart; returns it and its welcome text once the server answers.
async fn start(dir: &std::path::Path, port: u16) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args([
            "quickstart",
            "--data-dir",
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        // Appended, so each start's lines are kept for the first-screen check.
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("quickstart.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("Stop with Ctrl-C");
            text.push_str(&line);
            text.push('\n');
            if done {
                let _ = tx.send(text.clone());
            }
        }
    });
    let welcome = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("quickstart printed its welcome");
    let http = http_client();
    for _ in 0..200 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            return (child, welcome);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("quickstart server never became ready");
}

/// Runs a command line the quickstart printed, with `cargo run --release --` replaced by the
/// binary under test.
fn run_printed(dir: &std::path::Path, welcome: &str, starts_with: &str) -> std::process::Output {
    run_printed_with(dir, welcome, starts_with, "")
}

/// [`run_printed`] for the first such line that also contains `containing`.
fn run_printed_with(
    dir: &std::path::Path,
    welcome: &str,
    starts_with: &str,
    containing: &str,
) -> std::process::Output {
    let line = welcome
        .lines()
        .map(str::trim)
        .find(|l| {
            l.starts_with(&format!("cargo run --release -- {starts_with}"))
                && l.contains(containing)
        })
        .unwrap_or_else(|| panic!("no '{starts_with}' command in:\n{welcome}"));
    let command = line.replacen("cargo run --release --", BIN, 1);
    Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_as_a_new_user_would() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, welcome) = start(dir.path(), port).await;
    assert!(welcome.contains("password (shown once): "), "{welcome}");
    assert!(welcome.contains("DEMO-WORDSMITH"), "{welcome}");

    let out = run_printed(dir.path(), &welcome, "device activate");
    assert!(
        out.status.success(),
        "activate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_printed(dir.path(), &welcome, "device verify");
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The metered demo, as printed: register a handheld, a packet, a tick, the balance.
    for (starts_with, containing, shows) in [
        ("device activate", "demo-handheld-1", "activated"),
        ("device usage request", "", "active, balance 8 device_hour"),
        ("device usage tick", "", "active, balance 7 device_hour"),
        ("device usage status", "", "used 1"),
        ("--config", "usage status", "8 of 100 device_hour issued"),
    ] {
        let out = run_printed_with(dir.path(), &welcome, starts_with, containing);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(shows),
            "{starts_with}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Four more devices fill the 5 seats; the 6th is refused.
    let key_file = std::fs::read_to_string(dir.path().join("demo/wordsmith-demo.seatkey")).unwrap();
    let http = http_client();
    for i in 2..=6 {
        let response = http
            .post(format!("http://127.0.0.1:{port}/api/v1/activations"))
            .json(&serde_json::json!({"key_file": key_file, "device_id": format!("demo-device-{i}"), "user_name": "x"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        if i < 6 {
            assert_eq!(status, 201, "{body}");
        } else {
            assert_eq!(
                (status, body["code"].as_str()),
                (409, Some("seats_exhausted")),
                "{body}"
            );
        }
    }
    drop(child);
    // A new user's first screen shows no error (it once showed `ERROR r2d2: database is
    // locked`: a pooled connection opened while the writer switched the new file to WAL).
    let first_start = std::fs::read_to_string(dir.path().join("quickstart.log")).unwrap();
    assert!(!first_start.contains("ERROR"), "{first_start}");
    assert!(!first_start.contains("locked"), "{first_start}");

    // Again on the same folder: everything reused.
    let (child, welcome) = start(dir.path(), port).await;
    assert!(welcome.contains("reused"), "{welcome}");
    assert!(!welcome.contains("password (shown once)"), "{welcome}");
    drop(child);
    let db = TestDb::sqlite_file(&dir.path().join("demo/seatkeep.db"));
    assert_eq!(
        db.count("licenses", ""),
        2,
        "WordSmith and the metered demo"
    );
    assert_eq!(db.count("admins", ""), 1);
    assert_eq!(
        db.count("seats", "state = 'active'"),
        5 + 1,
        "5 WordSmith seats and the handheld"
    );
    assert_eq!(db.count("meter_packets", ""), 1);
}
