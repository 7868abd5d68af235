//! What the federation tests share: a `seatkeep provider collect` process, licenses issued
//! with a federation URL (and copied to the collector's issued folder), and waits.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seatkeep_device::keyfile::{Channel, Federation};

use crate::helpers::{BIN, KID, TestEnv};

/// `[federation]` for tests: a pass every second.
pub const FAST_PUSH: &str = "[federation]\ninterval = \"1s\"\ntimeout = \"5s\"\n";
/// `[federation]` for tests that push only with `federation flush` (one pass at start).
pub const MANUAL_PUSH: &str = "[federation]\ninterval = \"1h\"\ntimeout = \"3s\"\n";

/// A running `seatkeep provider collect --listen`.
pub struct CollectorProcess {
    pub child: Child,
    pub port: u16,
    pub data: PathBuf,
}

impl CollectorProcess {
    /// Starts a collector for `env`'s provider on `port` (0: a free one), storing in
    /// `env/collector`, with the key files in `env/issued`.
    pub fn start(env: &TestEnv, port: u16) -> Self {
        let data = env.path("collector");
        std::fs::create_dir_all(env.path("issued")).unwrap();
        let mut child = Command::new(BIN)
            .args(["provider", "collect", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(&data)
            .arg("--issued")
            .arg(env.path("issued"))
            .args(["--key", env.provider_key.to_str().unwrap(), "--kid", KID])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn collector");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("collector did not start: {line:?}"));
        Self { child, port, data }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/federation", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `seatkeep provider report --format json` over the collector's `data`.
pub fn provider_report(data: &Path) -> serde_json::Value {
    serde_json::from_str(&crate::helpers::run_ok(&[
        "provider",
        "report",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]))
    .unwrap()
}

/// Every event the collector in `data` stored, as (lic, event) in file order.
pub fn stored_events(data: &Path) -> Vec<(String, serde_json::Value)> {
    let Ok(dir) = std::fs::read_dir(data.join("events")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push((v["lic"].as_str().unwrap().to_owned(), v["event"].clone()));
        }
    }
    out
}

/// Issues a license with `federation` (url, grace, user_data), a channel, imports it and
/// copies the key file to the collector's issued folder. Returns the key file text.
pub fn import_federated(
    env: &TestEnv,
    lic: &str,
    seats: i64,
    seq: i64,
    federation: Option<Federation>,
) -> String {
    let mut claims = env.claims(lic, seats);
    claims.seq = seq;
    claims.federation = federation;
    claims.channel = Some(Channel {
        distributor: Some("dist-7".into()),
        partner: Some("partner-3".into()),
        ..Channel::default()
    });
    let text = env.sign(&claims);
    let path = env.write(&format!("{lic}-{seq}.seatkey"), &text);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    std::fs::create_dir_all(env.path("issued")).unwrap();
    std::fs::write(env.path(&format!("issued/{lic}-{seq}.seatkey")), &text).unwrap();
    text
}

/// `federation.url` only.
pub fn to(url: &str) -> Option<Federation> {
    Some(Federation {
        url: url.to_owned(),
        grace: None,
        user_data: false,
    })
}

/// The acknowledged seq of `lic` on the server.
pub fn acked(env: &TestEnv, lic: &str) -> i64 {
    env.db.scalar(&format!(
        "SELECT COALESCE(MAX(acked_seq), 0) AS v FROM federation_state WHERE license_id = '{lic}'"
    ))
}

/// The license's change counter: the last event's seq.
pub fn last_seq(env: &TestEnv, lic: &str) -> i64 {
    env.db.scalar(&format!(
        "SELECT change_seq AS v FROM licenses WHERE id = '{lic}'"
    ))
}

/// Waits (bounded) until the provider acknowledged every event of `lic`.
pub async fn wait_delivered(env: &TestEnv, lic: &str) {
    for _ in 0..1200 {
        if acked(env, lic) == last_seq(env, lic) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{lic}: acked {} of {} after 120 s",
        acked(env, lic),
        last_seq(env, lic)
    );
}

/// Asserts that `events` hold seq 1..=n exactly once each, in order.
pub fn assert_gapless(events: &[serde_json::Value], n: i64) {
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "seqs 1..={n} once each, in order"
    );
}
