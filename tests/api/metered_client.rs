//! The reference client's metered commands against the real server (SQLite; the
//! tick-to-zero test on both backends): `device activate` registers its key, `device usage
//! status | tick | request` keep the balance in files beside the saved activation. Without
//! balance the product must stop (exit 1); a packet request fills it; a restored old state
//! file locks the meter; a spent pool is a clear refusal that changes nothing on the device.
//! And a pool that cannot give even the smallest packet tells the admins once, though it
//! never reached exactly zero.

use std::process::Output;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, TestServer, run};
use crate::metered::{import, metered_key_file};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `seatkeep device activate` of `device` (user "Ada") with a device key, saved to `saved`.
pub(crate) fn activate(server: &TestServer, key_path: &std::path::Path, device: &str, saved: &str) {
    let out = run(&[
        "device",
        "activate",
        "--server",
        &server.url,
        "--key-file",
        key_path.to_str().unwrap(),
        "--device-id",
        device,
        "--user",
        "Ada",
        "--out",
        saved,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `seatkeep device usage CMD --saved SAVED --provider-key PUB --json EXTRA…`.
pub(crate) fn usage(env: &TestEnv, saved: &str, command: &str, extra: &[&str]) -> Output {
    let provider = env.provider_pub.to_str().unwrap().to_owned();
    let mut args = vec![
        "--json",
        "device",
        "usage",
        command,
        "--saved",
        saved,
        "--provider-key",
        &provider,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

pub(crate) fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    json_of(out)
}

/// The JSON a command printed, whatever its exit code.
fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[tokio::test]
async fn metered_client_commands() {
    let env = TestEnv::new(Backend::Sqlite);
    // 30 units sold, packets of 1..=48.
    let key_file = metered_key_file(&env, "LIC-CLIENT", 1, 3, 30);
    import(&env, "client.seatkey", &key_file);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let saved_path = env.path("scanner.device.json");
    let saved = saved_path.to_str().unwrap();
    activate(&server, &key_path, "scanner-1", saved);

    // Registered, nothing applied: locked for lack of balance; a run of the product exits 1.
    let status = json(&usage(&env, saved, "status", &[]));
    assert_eq!(status["enforcement"], "locked: no_balance", "{status}");
    assert_eq!(status["unit"], "device_hour");
    let tick = usage(&env, saved, "tick", &[]);
    assert_eq!(tick.status.code(), Some(1), "{}", stdout(&tick));
    assert!(stderr(&tick).contains("the product must stop: locked: no_balance"));

    // Two units: applied, and a run pays its first minute from them.
    let asked = json(&usage(&env, saved, "request", &["--units", "2"]));
    assert_eq!(asked["status"], 201, "{asked}");
    assert_eq!(asked["applied"], serde_json::json!([[1, 2.0]]));
    assert_eq!(
        (asked["pool_issued"].as_i64(), asked["pool_units"].as_i64()),
        (Some(2), Some(30))
    );
    assert_eq!(asked["time_synced"], true);
    let before_tick = std::fs::read(format!("{saved}.usage")).unwrap();
    let ticked = json(&usage(&env, saved, "tick", &[]));
    assert_ne!(ticked["enforcement"], "locked: no_balance", "{ticked}");
    let status = json(&usage(&env, saved, "status", &[]));
    assert_eq!(status["last_packet"], 1);
    assert!(
        (status["used_units"].as_f64().unwrap() - 1.0 / 60.0).abs() < 1e-9,
        "{status}"
    );
    assert!((status["balance_units"].as_f64().unwrap() - (2.0 - 1.0 / 60.0)).abs() < 1e-9);
    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-CLIENT'"),
        2
    );

    // The state file from before that minute, put back: the meter locks.
    let state_file = format!("{saved}.usage");
    let current = std::fs::read(&state_file).unwrap();
    std::fs::write(&state_file, &before_tick).unwrap();
    let status = json(&usage(&env, saved, "status", &[]));
    assert_eq!(status["enforcement"], "locked: state_tampered", "{status}");
    std::fs::write(&state_file, &current).unwrap();
    assert_eq!(
        json(&usage(&env, saved, "status", &[]))["enforcement"],
        "low"
    );

    // More than the pool holds, without --partial: refused with the code, nothing applied,
    // nothing charged.
    let refused = usage(&env, saved, "request", &["--units", "29"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("usage_exhausted"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-CLIENT'"),
        2
    );
    let status = json(&usage(&env, saved, "status", &[]));
    assert_eq!(status["last_packet"], 1);
    // With --partial: what is left (28 units) in one packet.
    let partial = json(&usage(
        &env,
        saved,
        "request",
        &["--units", "29", "--partial"],
    ));
    assert_eq!(
        partial["applied"],
        serde_json::json!([[2, 28.0]]),
        "{partial}"
    );
    assert_eq!(partial["pool_issued"], 30);
}

#[tokio::test]
async fn metered_pool_too_low_for_a_packet_tells_the_admins_once() {
    let env = TestEnv::new(Backend::Sqlite);
    // 30 units, packets of at least 10: after 25 are issued, 5 are left and no packet fits.
    let mut claims = serde_json::to_value(env.claims("LIC-LOW", 3)).unwrap();
    claims["model"] = serde_json::json!("metered");
    claims["meter"] = serde_json::json!({
        "unit": "device_hour", "units": 30, "packet": {"default": 10, "min": 10, "max": 30}
    });
    let key_file = env.sign(&serde_json::from_value(claims).unwrap());
    import(&env, "low.seatkey", &key_file);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let saved_path = env.path("hh.device.json");
    let saved = saved_path.to_str().unwrap();
    activate(&server, &key_path, "hh-1", saved);
    assert_eq!(
        json(&usage(&env, saved, "request", &["--units", "25"]))["pool_issued"],
        25
    );
    let exhausted = "kind = 'usage_exhausted' AND license_id = 'LIC-LOW'";
    assert_eq!(
        env.db.count("notifications", exhausted),
        0,
        "5 units are left"
    );
    for _ in 0..3 {
        let refused = usage(&env, saved, "request", &["--units", "10", "--partial"]);
        assert!(
            stderr(&refused).contains("usage_exhausted"),
            "{}",
            stderr(&refused)
        );
    }
    assert_eq!(
        env.db.count("notifications", exhausted),
        1,
        "one email for the cap"
    );
    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-LOW'"),
        25,
        "nothing charged"
    );
}

/// Enforcement through the reference client, to the last minute (DESIGN §10.5): a packet of
/// one `device_hour` unit is 60 runs of the product (each `tick` is one run and pays its
/// first minute on the monotonic clock, so no clock needs moving); after the 60th the meter
/// is locked for lack of balance, `tick` exits 1 and charges nothing, and only `request`
/// works; a new packet makes it active again and `tick` exits 0. (The start, locked before
/// the first packet, is `metered_client_commands`.)
async fn ticked_down_to_zero_locks_until_a_packet(backend: Backend) {
    let env = TestEnv::new(backend);
    // Packets of 1..=4 units, 4 by default: the meter warns ("low") under one unit.
    let mut claims = serde_json::to_value(env.claims("LIC-TICK", 3)).unwrap();
    claims["model"] = serde_json::json!("metered");
    claims["meter"] = serde_json::json!({
        "unit": "device_hour", "units": 10, "packet": {"default": 4, "min": 1, "max": 4}
    });
    let key_file = env.sign(&serde_json::from_value(claims).unwrap());
    import(&env, "tick.seatkey", &key_file);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let saved_path = env.path("meter.device.json");
    let saved = saved_path.to_str().unwrap();
    activate(&server, &key_path, "meter-1", saved);
    let minutes = |value: &serde_json::Value| (value.as_f64().unwrap() * 60.0).round() as i64;
    let state = |report: &serde_json::Value| {
        (
            report["enforcement"].as_str().unwrap().to_owned(),
            minutes(&report["balance_units"]),
            minutes(&report["used_units"]),
        )
    };

    let asked = json(&usage(&env, saved, "request", &["--units", "1"]));
    assert_eq!(asked["applied"], serde_json::json!([[1, 1.0]]), "{asked}");
    assert_eq!(state(&asked["usage"]), ("active".into(), 60, 0));
    for minute in 1..=60 {
        let out = usage(&env, saved, "tick", &[]);
        assert_eq!(out.status.code(), Some(0), "run {minute}: {}", stderr(&out));
        let ticked = json(&out);
        // The run's own minute is paid, so even the last one may run (under one unit: low).
        assert_eq!(
            state(&ticked),
            ("low".into(), 60 - minute, minute),
            "run {minute} pays its minute: {ticked}"
        );
    }
    let status = json(&usage(&env, saved, "status", &[]));
    assert_eq!(
        state(&status),
        ("locked: no_balance".into(), 0, 60),
        "{status}"
    );
    for _ in 0..2 {
        let refused = usage(&env, saved, "tick", &[]);
        assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
        assert_eq!(
            stderr(&refused).trim(),
            "seatkeep: the product must stop: locked: no_balance"
        );
        assert_eq!(
            state(&json_of(&refused)),
            ("locked: no_balance".into(), 0, 60),
            "a refused run charges nothing"
        );
    }

    // Locked, asking for a packet still works: active again.
    let asked = json(&usage(&env, saved, "request", &["--units", "2"]));
    assert_eq!(asked["applied"], serde_json::json!([[2, 2.0]]), "{asked}");
    assert_eq!(state(&asked["usage"]), ("active".into(), 120, 60));
    assert_eq!(
        (asked["pool_issued"].as_i64(), asked["pool_units"].as_i64()),
        (Some(3), Some(10))
    );
    let out = usage(&env, saved, "tick", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(state(&json(&out)), ("active".into(), 119, 61));
    assert_eq!(
        env.db.scalar("SELECT reported_used AS v FROM seats"),
        1,
        "the second request reported the unit used"
    );
    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-TICK'"),
        3
    );
}
both_backends!(
    metered_client_ticked_to_zero_locks_until_a_packet,
    ticked_down_to_zero_locks_until_a_packet
);
