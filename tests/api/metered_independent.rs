//! Metered usage (DESIGN §10, issue 16) checked by an independent device: the Python tool
//! `tests/tools/metered_device.py`, written from the design text with PyJWT and pyca/cryptography
//! (not the device crate), registers against the real binary, asks for packets and verifies
//! every chain, packet and time token. The pool, the packets and the device's record must then
//! show exactly what the tool verified.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, KID, PROVIDER, TestEnv};
use crate::metered::{import, metered_key_file};

/// Runs the tool against `url` for the key file at `key_file`; returns its JSON line.
async fn run_tool(env: &TestEnv, url: &str, key_file: &std::path::Path, device: &str) -> Value {
    let python = std::env::var("SEATKEEP_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SEATKEEP_TEST_PYTHON is not set: run the suite with tests/run (it installs PyJWT)")
    });
    let mut command = std::process::Command::new(python);
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tools/metered_device.py"
        ))
        .args(["--server", url])
        .args(["--key-file", key_file.to_str().unwrap()])
        .args(["--provider-pub", env.provider_pub.to_str().unwrap()])
        .args(["--provider-alg", "EdDSA", "--provider-kid", KID])
        .args(["--provider-id", PROVIDER])
        .args(["--device-id", device, "--user", "Ada"])
        .args(["--use", "3", "--backwards"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "metered_device.py failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {stdout}"))
}

/// 100 units in packets of 1..=48 (default 24): four packets of 24 (two of them left unapplied
/// once, so a third request gets them back), a partial packet of 4, then `usage_exhausted`; a
/// state that went backwards flags the device.
async fn an_independent_device_verifies_what_the_server_signs(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = metered_key_file(&env, "LIC-IND", 1, 3, 100);
    import(&env, "LIC-IND.seatkey", &key_file);
    let server = env.serve().await;

    let got = run_tool(&env, &server.url, &env.path("LIC-IND.seatkey"), "indep-1").await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(
        (
            &got["lic"],
            &got["device_id"],
            &got["unit"],
            &got["packets_verified"],
            &got["units_received"],
            &got["last_seq"],
            &got["short_packet"],
        ),
        (
            &json!("LIC-IND"),
            &json!("indep-1"),
            &json!("device_hour"),
            &json!(5),
            &json!(100),
            &json!(5),
            &json!(4),
        ),
        "{got}"
    );
    assert_eq!(got["pool"], json!({"units": 100, "issued": 100}), "{got}");
    // 3 units spent after each of the four rounds that applied packets.
    assert_eq!((&got["used"], &got["balance"]), (&json!(12), &json!(88)));
    assert_eq!(got["replay_identical_body"], true, "{got}");
    assert_eq!(got["flagged_code"], "device_state_invalid", "{got}");
    let checks: Vec<&str> = got["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "key_file",
        "device_key",
        "device_key_mismatch",
        "replay",
        "request_id_reused",
        "invalid_device_signature",
        "invalid_packet_request",
        "amount_out_of_range",
        "report_only",
        "unapplied_cap",
        "partial",
        "usage_exhausted",
        "device_state_invalid",
    ] {
        assert!(checks.contains(&code), "{code} not checked: {got}");
    }
    let seat = got["seat"].as_str().unwrap();

    // The pool was charged exactly what the device verified, once per packet.
    let status: Value =
        serde_json::from_str(&env.cli_ok(&["--json", "usage", "status", "--license", "LIC-IND"]))
            .unwrap();
    assert_eq!(
        (
            &status["issued"],
            &status["packets"],
            &status["available"],
            &status["devices_flagged"]
        ),
        (
            &got["units_received"],
            &got["packets_verified"],
            &json!(0),
            &json!(1)
        ),
        "{status}"
    );
    let devices: Value =
        serde_json::from_str(&env.cli_ok(&["--json", "usage", "devices", "--license", "LIC-IND"]))
            .unwrap();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 1, "{devices:?}");
    let record = &devices[0];
    assert_eq!(
        (
            record["seat"].as_str(),
            &record["device_id"],
            &record["issued"],
            &record["packets"],
            &record["last_seq"]
        ),
        (
            Some(seat),
            &got["device_id"],
            &got["units_received"],
            &got["packets_verified"],
            &got["last_seq"]
        ),
        "{record}"
    );
    assert!(!record["flag"].is_null(), "{record}");
    // The last report the server took is one less than the tool's own `used`: the report
    // made in the request refused with usage_exhausted is not stored (that request writes
    // nothing), so it is not an earlier report.
    assert_eq!(got["refused_report_counts"], false, "{got}");
    assert_eq!(
        record["used"],
        got["used"].as_i64().unwrap() - 1,
        "{record}"
    );

    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-IND'"),
        100
    );
    assert_eq!(
        env.db.scalar(&format!(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS v FROM meter_packets \
             WHERE seat_id = '{seat}'"
        )),
        100
    );
    assert_eq!(
        env.db.count(
            "meter_packets",
            &format!("seat_id = '{seat}' AND token IS NOT NULL")
        ),
        5
    );
    assert_eq!(
        env.db.scalar(&format!(
            "SELECT MAX(seq) AS v FROM meter_packets WHERE seat_id = '{seat}'"
        )),
        5
    );
    assert_eq!(env.db.count("audit_log", "action = 'usage.provisioned'"), 5);
    assert_eq!(
        env.db
            .count("federation_events", "kind = 'usage.provisioned'"),
        5
    );
    assert_eq!(
        env.db.count("audit_log", "action = 'usage.state_invalid'"),
        1
    );
    env.db.assert_journal_gapless();
}
both_backends!(
    metered_independent_device,
    an_independent_device_verifies_what_the_server_signs
);
