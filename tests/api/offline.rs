//! Offline files (DESIGN §11) with the real binary on both backends: an air-gapped device
//! activates and gets packets only through request and response files, a file fulfilled
//! twice is answered with the same bytes and charged once, one bad line gets its own error
//! line, and oversized or badly armored files are refused without a change. A response
//! made for another device, or a file with one byte changed inside what is signed, is
//! refused and changes neither the device's files nor the database's ledger.

use std::path::Path;
use std::process::Output;

use seatkeep_device::jws;
use seatkeep_device::offline::{self, OfflineErrorClaims, ResponseKind};

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, run};
use crate::metered::{import, metered_key_file, server_id};

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
pub(crate) fn request_activation(key_file: &Path, device: &str, saved: &Path, out: &Path) {
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

/// A device activated through files only; returns its saved activation.
fn offline_device(env: &TestEnv, key_file: &Path, device: &str) -> std::path::PathBuf {
    let saved = env.path(&format!("{device}.device.json"));
    let (req, resp) = (
        env.path(&format!("{device}-activate.req")),
        env.path(&format!("{device}-activate.resp")),
    );
    request_activation(key_file, device, &saved, &req);
    fulfil(env, &req, &resp);
    apply(env, &resp, &saved);
    saved
}

/// `device offline-request --packets UNITS` from `saved` into `out`.
fn request_packets(env: &TestEnv, saved: &Path, units: i64, out: &Path) {
    let written = run(&[
        "device",
        "offline-request",
        "--packets",
        &units.to_string(),
        "--saved",
        p(saved),
        "--provider-key",
        p(&env.provider_pub),
        "--out",
        p(out),
    ]);
    assert!(written.status.success(), "{}", stderr(&written));
}

/// The saved activation and its usage files, byte for byte.
fn device_files(saved: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", ".usage", ".usage-anchor"]
        .iter()
        .map(|suffix| {
            let path = format!("{}{suffix}", saved.display());
            let bytes = std::fs::read(&path).ok();
            (path, bytes)
        })
        .collect()
}

/// `device offline-apply` as the product runs it (no --json): its output and exit code.
fn apply_raw(env: &TestEnv, response: &Path, saved: &Path) -> Output {
    run(&[
        "device",
        "offline-apply",
        p(response),
        "--saved",
        p(saved),
        "--provider-key",
        p(&env.provider_pub),
    ])
}

/// `device usage status --json` of a saved metered activation.
fn status(env: &TestEnv, saved: &Path) -> serde_json::Value {
    json(&run(&[
        "--json",
        "device",
        "usage",
        "status",
        "--saved",
        p(saved),
        "--provider-key",
        p(&env.provider_pub),
    ]))
}

/// Balance, use, last packet and pending requests: the meter's state as a product sees it.
fn usage_state(env: &TestEnv, saved: &Path) -> (f64, f64, i64, i64) {
    let s = status(env, saved);
    (
        s["balance_units"].as_f64().unwrap(),
        s["used_units"].as_f64().unwrap(),
        s["last_packet"].as_i64().unwrap(),
        s["pending_requests"].as_i64().unwrap(),
    )
}

/// A response file made for device A, applied by device B's saved state: each line is
/// refused with its reason (A's packet does not fit B's seat, A's device key is not B's),
/// nothing is applied and B's files are byte for byte what they were; B's own response and
/// A's response on A still apply.
async fn response_for_another_device(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = metered_site(&env, "LIC-OFF");
    let a = offline_device(&env, &key_file, "handheld-a");
    let b = offline_device(&env, &key_file, "handheld-b");
    let (req_a, resp_a) = (env.path("a-packets.req"), env.path("a-packets.resp"));
    request_packets(&env, &a, 5, &req_a);
    fulfil(&env, &req_a, &resp_a);
    let (req_b, resp_b) = (env.path("b-packets.req"), env.path("b-packets.resp"));
    request_packets(&env, &b, 4, &req_b);
    let before = device_files(&b);
    assert_eq!(usage_state(&env, &b), (0.0, 0.0, 0, 1));

    let out = apply_raw(&env, &resp_a, &b);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    // DESIGN §10.5: a packet whose `sub` is another device is `packet_wrong_device`.
    assert_eq!(
        printed,
        "line 1 (packet): packet_wrong_device: packet refused: the packet is for device 'handheld-a'\n\
         line 2 (time): not synced (not for a pending request)\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "per-line refusals: {}",
        stderr(&out)
    );
    let lines = apply(&env, &resp_a, &b);
    assert_eq!(
        (&lines[0]["kind"], &lines[0]["code"]),
        (
            &serde_json::json!("packet"),
            &serde_json::json!("packet_wrong_device")
        ),
        "{lines}"
    );
    assert_eq!(before, device_files(&b), "B's files are unchanged");
    assert_eq!(usage_state(&env, &b), (0.0, 0.0, 0, 1));

    // A's activation response: its device key is A's; B keeps its own seat.
    let out = apply_raw(&env, &env.path("handheld-a-activate.resp"), &b);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 1 (key_file): the license's current key file\n\
         line 2 (device_key): not taken: device key is for device 'handheld-a', not 'handheld-b'\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(before, device_files(&b), "B's files are unchanged");

    // Each response on its own device applies: B's pending request was kept.
    fulfil(&env, &req_b, &resp_b);
    let applied = apply(&env, &resp_b, &b);
    assert!(
        applied[0]["outcome"].as_str().unwrap().contains("applied"),
        "{applied}"
    );
    assert_eq!(usage_state(&env, &b), (4.0, 0.0, 1, 0));
    apply(&env, &resp_a, &a);
    assert_eq!(usage_state(&env, &a), (5.0, 0.0, 1, 0));
    assert_eq!(
        env.db
            .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-OFF'"),
        9
    );
}
both_backends!(
    offline_response_for_another_device_is_refused,
    response_for_another_device
);

/// Line `line` (0 = the armor's first line) of an armored file with one byte of its JWS
/// payload changed: the decoded payload's first `from` becomes `to`, re-encoded (the
/// header and signature segments are kept).
fn flip_payload_byte(text: &str, line: usize, from: &str, to: u8) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let (header, rest) = lines[line].split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut bytes = jws::parse_compact(&lines[line]).unwrap().payload.to_vec();
    assert_eq!(jws::b64url(&bytes), payload, "canonical base64url");
    let at = String::from_utf8_lossy(&bytes)
        .find(from)
        .unwrap_or_else(|| panic!("{from} in {}", String::from_utf8_lossy(&bytes)))
        + from.len()
        - 1;
    assert_ne!(bytes[at], to);
    bytes[at] = to;
    lines[line] = format!("{header}.{}.{signature}", jws::b64url(&bytes));
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// One byte changed inside what is signed: in a response file, the packet's amount (5 → 9)
/// is refused as `invalid_packet` and nothing is credited, and a device key is not taken
/// (the saved file stays as it was); in a request file, the amount asked (3 → 9) or a byte
/// that leaves the claims unreadable is refused line by line by `offline fulfil`, with no
/// packet, no charge and no packet request recorded.
async fn flipped_bytes(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = metered_site(&env, "LIC-OFF");

    // A device key with one byte changed: not taken, the pending activation unchanged.
    let saved_c = env.path("handheld-c.device.json");
    let (req_c, resp_c) = (env.path("c-activate.req"), env.path("c-activate.resp"));
    request_activation(&key_file, "handheld-c", &saved_c, &req_c);
    fulfil(&env, &req_c, &resp_c);
    let text = std::fs::read_to_string(&resp_c).unwrap();
    assert!(text.lines().nth(2).unwrap().starts_with("eyJ"), "{text}");
    let flipped = env.write(
        "c-flipped.resp",
        flip_payload_byte(&text, 2, "\"sub\":\"h", b'H'),
    );
    let before = device_files(&saved_c);
    let out = apply_raw(&env, &flipped, &saved_c);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "line 1 (key_file): the license's current key file\n\
             line 2 (device_key): not taken: broken chain: the device key \
             signature is not valid for server key {} named in the key file\n",
            server_id(&env)
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        before,
        device_files(&saved_c),
        "the saved file is unchanged"
    );
    assert_eq!(
        before[1].1, None,
        "no usage state before the activation completes"
    );
    let refused = run(&[
        "device",
        "usage",
        "status",
        "--saved",
        p(&saved_c),
        "--provider-key",
        p(&env.provider_pub),
    ]);
    assert!(
        !refused.status.success(),
        "still no seat: {}",
        stderr(&refused)
    );

    // A packet with its amount changed.
    let a = offline_device(&env, &key_file, "handheld-a");
    let (req, resp) = (env.path("a-packets.req"), env.path("a-packets.resp"));
    request_packets(&env, &a, 5, &req);
    fulfil(&env, &req, &resp);
    let text = std::fs::read_to_string(&resp).unwrap();
    let flipped = env.write(
        "a-flipped.resp",
        flip_payload_byte(&text, 1, "\"amt\":5", b'9'),
    );
    let saved_before = std::fs::read(&a).unwrap();
    assert_eq!(usage_state(&env, &a), (0.0, 0.0, 0, 1));
    let out = apply_raw(&env, &flipped, &a);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line 1 (packet): invalid_packet: packet refused: invalid packet: not signed by the key file's server key\n\
         line 2 (time): clock synced\n",
        "{}",
        stderr(&out)
    );
    // The file's time token is intact and syncs the clock (so the usage file may change);
    // the balance, use, last packet and the pending request are as they were.
    assert_eq!(usage_state(&env, &a), (0.0, 0.0, 0, 1));
    assert_eq!(std::fs::read(&a).unwrap(), saved_before);
    // The file as Seatkeep wrote it applies.
    apply(&env, &resp, &a);
    assert_eq!(usage_state(&env, &a), (5.0, 0.0, 1, 0));

    // Request files with one byte changed: refused line by line, nothing issued.
    let req2 = env.path("a2.req");
    request_packets(&env, &a, 3, &req2);
    let text = std::fs::read_to_string(&req2).unwrap();
    let ledger = |env: &TestEnv| {
        (
            env.db
                .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-OFF'"),
            env.db.count("meter_packets", ""),
            env.db.count("packet_requests", ""),
            env.db.count("audit_log", "action = 'usage.provisioned'"),
        )
    };
    assert_eq!(ledger(&env), (5, 1, 1, 1));
    let exchanges = env.db.count("offline_exchanges", "");
    let jti = offline::read_request_file(text.as_bytes()).unwrap()[0]
        .0
        .clone();
    let jti: seatkeep_device::meter::wire::PacketRequestClaims =
        serde_json::from_slice(&jws::parse_compact(&jti).unwrap().payload).unwrap();
    let cases = [
        (
            "amount",
            "\"amt\":3",
            b'9',
            jti.jti.as_str(),
            "invalid_device_signature",
            "the packet request is not signed by this seat's device key",
        ),
        (
            "unreadable",
            "\"iss\"",
            b'!',
            "line:1",
            "invalid_packet_request",
            "the packet request's claims do not read",
        ),
    ];
    for (name, from, to, req, code, detail) in cases {
        let flipped = env.write(
            &format!("{name}.req"),
            flip_payload_byte(&text, 1, from, to),
        );
        let out = env.path(&format!("{name}.resp"));
        let printed = fulfil(&env, &flipped, &out);
        assert!(
            printed.starts_with(&format!("line 1 (packets): refused {code}: {detail}\n")),
            "{name}: {printed}"
        );
        let answered = offline::read_response_file(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(answered.len(), 1, "{name}: one error line");
        assert_eq!(answered[0].1, ResponseKind::Error, "{name}");
        let claims: OfflineErrorClaims =
            serde_json::from_slice(&jws::parse_compact(&answered[0].0).unwrap().payload).unwrap();
        assert_eq!(
            (
                claims.req.as_str(),
                claims.code.as_str(),
                claims.detail.as_str()
            ),
            (req, code, detail),
            "{name}"
        );
        assert_eq!(
            ledger(&env),
            (5, 1, 1, 1),
            "{name}: nothing issued or recorded"
        );
    }
    // Each refused file is kept as an exchange (DESIGN §11: every exchange is stored, so
    // the same file again gets the same error line), and nothing else.
    assert_eq!(env.db.count("offline_exchanges", ""), exchanges + 2);
    let again = env.path("amount-again.resp");
    fulfil(&env, &env.path("amount.req"), &again);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(env.path("amount.resp")).unwrap()
    );
    assert_eq!(env.db.count("offline_exchanges", ""), exchanges + 2);
    assert_eq!(ledger(&env), (5, 1, 1, 1));
    // The request as the device wrote it is still answered.
    let resp2 = env.path("a2.resp");
    fulfil(&env, &req2, &resp2);
    assert_eq!(ledger(&env), (8, 2, 2, 2));
    apply(&env, &resp2, &a);
    assert_eq!(usage_state(&env, &a), (8.0, 0.0, 2, 0));
}
both_backends!(offline_flipped_byte_is_refused, flipped_bytes);

/// A line this server cannot answer now (federation overdue: a 503 over HTTP) is a fault,
/// not an error line: nothing is stored, so the same file is fulfilled once the server can
/// answer again, instead of repeating the refusal forever.
#[tokio::test]
async fn offline_fulfil_while_federation_is_overdue_stores_nothing() {
    let env = TestEnv::with_config(Backend::Sqlite, crate::federation_support::MANUAL_PUSH);
    let mut claims = serde_json::to_value(env.claims("LIC-FED", 5)).unwrap();
    claims["federation"] = serde_json::json!({"url": "http://127.0.0.1:9/federation", "grace": 2});
    let key_file = env.write(
        "fed.seatkey",
        env.sign(&serde_json::from_value(claims).unwrap()),
    );
    env.cli_ok(&["keyfile", "import", p(&key_file)]);
    let (request, response) = (env.path("fed.req"), env.path("fed.resp"));
    request_activation(
        &key_file,
        "handheld-f",
        &env.path("f.device.json"),
        &request,
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let refused = env.cli_err(&["offline", "fulfil", p(&request), "--out", p(&response)]);
    assert!(refused.contains("federation_overdue"), "{refused}");
    assert!(refused.contains("nothing was stored"), "{refused}");
    assert!(!response.exists());
    assert_eq!(env.db.count("offline_exchanges", ""), 0);
    assert_eq!(env.db.count("seats", ""), 0);
}
