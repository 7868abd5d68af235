//! Offline files (DESIGN §11) with the real binary on both backends: an air-gapped device
//! activates and gets packets only through request and response files, a file fulfilled
//! twice is answered with the same bytes and charged once, one bad line gets its own error
//! line, and oversized or badly armored files are refused without a change.

use std::path::Path;
use std::process::Output;

use seatkeep_device::jws;
use seatkeep_device::offline::{self, OfflineErrorClaims, ResponseKind};

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, run};
use crate::metered::{import, metered_key_file};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A metered license imported, its key file written for the device; returns the key file path.
fn metered_site(env: &TestEnv, lic: &str) -> std::path::PathBuf {
    let key_file = metered_key_file(env, lic, 1, 3, 30);
    import(env, &format!("{lic}.seatkey"), &key_file);
    env.write("site.seatkey", &key_file)
}

/// `device offline-request --activate` for `device` into `out`.
fn request_activation(key_file: &Path, device: &str, saved: &Path, out: &Path) {
    let written = run(&[
        "device",
        "offline-request",
        "--activate",
        "--key-file",
        p(key_file),
        "--device-id",
        device,
        "--user",
        "Ada",
        "--saved",
        p(saved),
        "--out",
        p(out),
    ]);
    assert!(written.status.success(), "{}", stderr(&written));
}

/// `device offline-apply RESPONSE --saved SAVED --provider-key PUB --json`.
fn apply(env: &TestEnv, response: &Path, saved: &Path) -> serde_json::Value {
    json(&run(&[
        "--json",
        "device",
        "offline-apply",
        p(response),
        "--saved",
        p(saved),
        "--provider-key",
        p(&env.provider_pub),
    ]))
}

/// `seatkeep offline fulfil REQUEST --out RESPONSE`; returns what it printed.
fn fulfil(env: &TestEnv, request: &Path, response: &Path) -> String {
    env.cli_ok(&["offline", "fulfil", p(request), "--out", p(response)])
}

async fn air_gapped_round_trip(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = metered_site(&env, "LIC-OFF");
    let saved = env.path("handheld.device.json");
    let (req1, resp1) = (env.path("activate.req"), env.path("activate.resp"));

    // Activation: request file → fulfil (actor cli) → apply completes the saved activation.
    request_activation(&key_file, "handheld-1", &saved, &req1);
    fulfil(&env, &req1, &resp1);
    let applied = apply(&env, &resp1, &saved);
    let device_key = applied
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "device_key")
        .unwrap_or_else(|| panic!("no device key line: {applied}"));
    assert!(
        device_key["outcome"].as_str().unwrap().starts_with("seat "),
        "{applied}"
    );
    assert_eq!(env.db.count("seats", "license_id = 'LIC-OFF'"), 1);
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'seat.activated' AND actor = 'cli' AND license_id = 'LIC-OFF'"
        ),
        1,
        "the offline activation is journaled with actor cli"
    );

    // Packets: a request stored pending on the device, fulfilled twice: the same bytes,
    // one packet, the pool charged once.
    let (req2, resp2, resp2b) = (
        env.path("packets.req"),
        env.path("packets.resp"),
        env.path("packets-again.resp"),
    );
    let written = run(&[
        "device",
        "offline-request",
        "--packets",
        "5",
        "--saved",
        p(&saved),
        "--provider-key",
        p(&env.provider_pub),
        "--out",
        p(&req2),
    ]);
    assert!(written.status.success(), "{}", stderr(&written));
    fulfil(&env, &req2, &resp2);
    fulfil(&env, &req2, &resp2b);
    assert_eq!(
        std::fs::read(&resp2).unwrap(),
        std::fs::read(&resp2b).unwrap()
    );
    // The activation file again: the same response, still one seat.
    let resp1b = env.path("activate-again.resp");
    fulfil(&env, &req1, &resp1b);
    assert_eq!(
        std::fs::read(&resp1).unwrap(),
        std::fs::read(&resp1b).unwrap()
    );
    assert_eq!(env.db.count("seats", "license_id = 'LIC-OFF'"), 1);
    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-OFF'"),
        5
    );
    assert_eq!(env.db.count("meter_packets", ""), 1);
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'usage.provisioned' AND actor = 'cli' AND license_id = 'LIC-OFF'"
        ),
        1,
        "the packet is journaled once, with actor cli"
    );
    assert_eq!(env.db.count("offline_exchanges", ""), 2);
    assert_eq!(
        env.db.count("offline_exchanges", "actor = 'cli'"),
        2,
        "each exchange is stored with its actor"
    );

    let applied = apply(&env, &resp2, &saved);
    let kinds: Vec<&str> = applied
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["packet", "time"], "{applied}");
    assert!(
        applied[0]["outcome"].as_str().unwrap().contains("applied"),
        "{applied}"
    );
    let status = json(&run(&[
        "--json",
        "device",
        "usage",
        "status",
        "--saved",
        p(&saved),
        "--provider-key",
        p(&env.provider_pub),
    ]));
    assert_eq!(status["balance_units"], 5.0, "{status}");
    assert_eq!(status["last_packet"], 1);
    assert_eq!(status["pending_requests"], 0);
    // The copy applied again adds nothing.
    let again = apply(&env, &resp2b, &saved);
    assert!(
        again[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("applied before"),
        "{again}"
    );
    env.db.assert_journal_gapless();
}

both_backends!(
    air_gapped_device_activates_and_gets_packets_offline,
    air_gapped_round_trip
);

async fn one_bad_line(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = metered_site(&env, "LIC-OFF");
    let saved = env.path("handheld.device.json");
    let good = env.path("good.req");
    request_activation(&key_file, "handheld-2", &saved, &good);
    let lines = offline::read_request_file(&std::fs::read(&good).unwrap()).unwrap();
    let good_line = lines[0].0.as_str();
    // Well signed by their own keys, but naming a key file never imported, or addressed to
    // another server.
    let good_claims = offline::verify_activation_request(good_line).unwrap().0;
    let forged = |jti: &str, change: &dyn Fn(&mut offline::ActivationRequestClaims)| {
        let mut claims = good_claims.clone();
        claims.iss = format!("other-{jti}");
        claims.jti = format!("req_{jti}_0123456789");
        change(&mut claims);
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        offline::sign_activation_request(&key, &claims)
    };
    let unknown_file = forged("unknownfile", &|c| c.key_file.sha256 = "0".repeat(64));
    let other_server = forged("otherserver", &|c| c.aud = "f".repeat(64));
    let mixed = env.write(
        "mixed.req",
        offline::request_file([
            good_line,
            "not-a-jws",
            unknown_file.as_str(),
            other_server.as_str(),
        ]),
    );
    let response = env.path("mixed.resp");
    let printed = fulfil(&env, &mixed, &response);
    // One line per request line, refusals with their code.
    assert!(
        printed.contains("line 1 (activation): device handheld-2: seat "),
        "{printed}"
    );
    assert!(
        printed.contains("line 2 (unknown): refused invalid_request"),
        "{printed}"
    );
    assert!(
        printed.contains("line 3 (activation): refused invalid_key_file"),
        "{printed}"
    );
    assert!(
        printed.contains("line 4 (activation): refused invalid_request: aud"),
        "{printed}"
    );

    let answered = offline::read_response_file(&std::fs::read(&response).unwrap()).unwrap();
    let kinds: Vec<ResponseKind> = answered.iter().map(|(_, kind)| *kind).collect();
    assert_eq!(
        kinds,
        [
            ResponseKind::KeyFile,
            ResponseKind::DeviceKey,
            ResponseKind::Error,
            ResponseKind::Error,
            ResponseKind::Error
        ]
    );
    let errors: Vec<(String, String)> = answered[2..]
        .iter()
        .map(|(line, _)| {
            let error = jws::parse_compact(line).unwrap();
            assert_eq!(
                error.header.typ.as_deref(),
                Some(offline::OFFLINE_ERROR_TYP)
            );
            let claims: OfflineErrorClaims = serde_json::from_slice(&error.payload).unwrap();
            (claims.req, claims.code)
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("line:2".to_owned(), "invalid_request".to_owned()),
            (
                "req_unknownfile_0123456789".to_owned(),
                "invalid_key_file".to_owned()
            ),
            (
                "req_otherserver_0123456789".to_owned(),
                "invalid_request".to_owned()
            ),
        ]
    );
    // Only the good line took a seat.
    assert_eq!(env.db.count("seats", "license_id = 'LIC-OFF'"), 1);

    // The device takes its seat and shows the other lines' codes.
    let printed = run(&[
        "device",
        "offline-apply",
        p(&response),
        "--saved",
        p(&saved),
        "--provider-key",
        p(&env.provider_pub),
    ]);
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(
        printed.contains("line 4 (error): invalid_key_file: request req_unknownfile"),
        "{printed}"
    );
    let applied = apply(&env, &response, &saved);
    let lines = applied.as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "device_key"
                && l["outcome"].as_str().unwrap().starts_with("seat ")),
        "{applied}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "error" && l["code"] == "invalid_request"),
        "{applied}"
    );
}

both_backends!(offline_bad_line_gets_an_error_line, one_bad_line);

async fn refused_files(backend: Backend) {
    let env = TestEnv::new(backend);
    metered_site(&env, "LIC-OFF");
    let out = env.path("refused.resp");
    let big = env.write(
        "big.req",
        offline::request_file(std::iter::repeat_n("a.b.c", 3000)),
    );
    let many = env.write(
        "many.req",
        offline::request_file(std::iter::repeat_n("a.b.c", 101)),
    );
    let garbage = env.write("garbage.req", "this is not a request file\n");
    for (file, code) in [
        (&big, "request_too_large"),
        (&many, "request_too_large"),
        (&garbage, "invalid_request_file"),
    ] {
        let err = env.cli_err(&["offline", "fulfil", p(file), "--out", p(&out)]);
        assert!(err.contains(code), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!out.exists(), "nothing written for {file:?}");
    }
    assert_eq!(env.db.count("offline_exchanges", ""), 0);
    assert_eq!(env.db.count("seats", ""), 0);
    assert_eq!(env.db.count("meter_packets", ""), 0);
}

both_backends!(offline_refused_files_change_nothing, refused_files);
