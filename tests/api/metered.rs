//! Metered usage (DESIGN §10, issue 16) against the real binary: a device made with the
//! device crate registers its initialization key, asks for packets signed with it, and
//! verifies and applies what the server signs (provider key → key file → device key →
//! packet). The pool is checked in the database after every refusal: nothing is charged
//! twice, and nothing is charged for a request that was refused.

use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use seatkeep_device::meter::wire::{
    PacketClaims, PacketRequestClaims, PacketsAnswer, ReportedState, sign_packet_request,
};
use seatkeep_device::meter::{Clocks, MemoryStore, Meter};
use seatkeep_device::proof::{ProofAction, ProofClaims};
use seatkeep_device::{DeviceJwk, ProviderKey, verify_device_key};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, TestServer};

fn now() -> i64 {
    seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime)
}

pub(crate) fn server_id(env: &TestEnv) -> String {
    let pem = std::fs::read_to_string(env.path("server-key.pub.pem")).unwrap();
    seatkeep::signing::spki_fingerprint(pem::parse(pem).unwrap().contents())
}

/// A metered key file: `units` sold, packets of 1..=48 (default 24).
pub(crate) fn metered_key_file(
    env: &TestEnv,
    lic: &str,
    seq: i64,
    seats: i64,
    units: i64,
) -> String {
    let mut claims = serde_json::to_value(env.claims(lic, seats)).unwrap();
    claims["model"] = json!("metered");
    claims["seq"] = json!(seq);
    claims["meter"] = json!({"unit": "device_hour", "units": units, "packet": {"default": 24, "min": 1, "max": 48}});
    env.sign(&serde_json::from_value(claims).unwrap())
}

pub(crate) fn import(env: &TestEnv, name: &str, text: &str) {
    let path = env.write(name, text);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
}

/// A device: its initialization key, its seat, and its meter (the device crate's).
struct Device {
    id: String,
    key: SigningKey,
    seat: String,
    meter: Meter<MemoryStore>,
    started: Instant,
}

impl Device {
    fn clocks(&self) -> Clocks {
        Clocks {
            wall: now(),
            mono_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap(),
        }
    }

    /// A request made by the meter (stored as pending, so its answer applies).
    fn request(&mut self, amt: i64, partial: bool) -> String {
        let clocks = self.clocks();
        self.meter
            .request(amt, partial, rand::random(), clocks)
            .unwrap()
    }

    /// Makes a request with the meter and sends it.
    async fn ask(&mut self, server: &TestServer, amt: i64, partial: bool) -> (u16, Value) {
        let request = self.request(amt, partial);
        send(server, &self.seat, &request).await
    }

    fn apply(&mut self, answer: &Value) {
        let answer: PacketsAnswer = serde_json::from_value(answer.clone()).unwrap();
        let clocks = self.clocks();
        self.meter.apply_answer(&answer, clocks).unwrap();
    }

    /// A request signed by hand with this device's key, saying whatever the test wants.
    fn crafted(&self, aud: &str, lic: &str, jti: &str, amt: i64, state: ReportedState) -> String {
        sign_packet_request(
            &self.key,
            &PacketRequestClaims {
                iss: self.id.clone(),
                aud: aud.into(),
                lic: lic.into(),
                seat: self.seat.clone(),
                jti: jti.into(),
                iat: now(),
                nonce: seatkeep::jws::b64url(&rand::random::<[u8; 16]>()),
                amt,
                partial: false,
                state,
            },
        )
    }
}

fn jwk(key: &SigningKey) -> Value {
    serde_json::to_value(DeviceJwk::from_key(&key.verifying_key())).unwrap()
}

/// Registers a device with a fresh initialization key and opens its meter on the verified
/// chain.
async fn register(env: &TestEnv, server: &TestServer, key_file: &str, id: &str) -> Device {
    let key = SigningKey::from_bytes(&rand::random());
    let (status, body) = server
        .post(
            "/api/v1/activations",
            &json!({"key_file": key_file, "device_id": id, "user_name": "Ada", "device_jwk": jwk(&key)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let verified = verify_answer(env, &body, id);
    let jkt = DeviceJwk::from_key(&key.verifying_key()).thumbprint();
    assert_eq!(
        verified
            .device_key_claims
            .cnf
            .as_ref()
            .map(|c| c.jkt.clone()),
        Some(jkt)
    );
    let meter = Meter::open(&verified, key.clone(), MemoryStore::default()).unwrap();
    Device {
        id: id.into(),
        key,
        seat: body["seat"].as_str().unwrap().into(),
        meter,
        started: Instant::now(),
    }
}

/// A metered license (`seats` devices, `units` sold) imported, and a server for it.
async fn metered_site(
    env: TestEnv,
    lic: &str,
    seats: i64,
    units: i64,
) -> (TestEnv, String, TestServer) {
    let key_file = metered_key_file(&env, lic, 1, seats, units);
    import(&env, &format!("{lic}.seatkey"), &key_file);
    let server = env.serve().await;
    (env, key_file, server)
}

/// Verifies an activation answer's chain as the device does: provider key → key file →
/// device key.
fn verify_answer(env: &TestEnv, body: &Value, id: &str) -> seatkeep_device::VerifiedDevice {
    let pinned = ProviderKey::from_pem(&std::fs::read(&env.provider_pub).unwrap()).unwrap();
    verify_device_key(
        &pinned,
        body["key_file"].as_str().unwrap(),
        body["device_key"].as_str().unwrap(),
        id,
        None,
        now(),
    )
    .unwrap()
}

async fn send(server: &TestServer, seat: &str, body: &str) -> (u16, Value) {
    send_as(server, seat, body, "application/jose").await
}

async fn send_as(server: &TestServer, seat: &str, body: &str, content_type: &str) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/api/v1/activations/{seat}/packets", server.url))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn packet_claims(token: &str) -> PacketClaims {
    serde_json::from_slice(&seatkeep::jws::parse_compact(token).unwrap().payload).unwrap()
}

/// What a refusal must leave alone: the pool, the packets and the request records.
fn ledger(env: &TestEnv, lic: &str) -> (i64, i64, i64) {
    (
        env.db.scalar(&format!(
            "SELECT meter_issued AS v FROM licenses WHERE id = '{lic}'"
        )),
        env.db.count("meter_packets", ""),
        env.db.count("packet_requests", ""),
    )
}

/// Register, ask, verify and apply; the device key binds the device's key; the pool, the
/// audit and the federation event record the packet.
async fn packets_reach_the_device(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-M", 5, 1000).await;
    let (status, body) = server.activate(&key_file, "hh-0", "Ada").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(body["field"], "device_jwk");

    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let request = device.request(24, false);
    let (status, answer) = send(&server, &device.seat, &request).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["pool"], json!({"units": 1000, "issued": 24}));
    let claims = packet_claims(answer["packets"][0].as_str().unwrap());
    assert_eq!(
        (claims.seq, claims.amt, claims.sub.as_str()),
        (1, 24, "hh-1")
    );
    assert!(claims.exp <= claims.iat + 2_592_000);
    device.apply(&answer);
    assert_eq!(device.meter.state().reported().last_seq, 1);
    assert_eq!(device.meter.state().reported().balance, 24);
    assert_eq!(ledger(&env, "LIC-M"), (24, 1, 1));
    assert_eq!(env.db.count("audit_log", "action = 'usage.provisioned'"), 1);
    let facts = env
        .db
        .scalar_text("SELECT usage AS v FROM federation_events WHERE kind = 'usage.provisioned'");
    let facts: Value = serde_json::from_str(&facts).unwrap();
    assert_eq!(
        facts,
        json!({"amt": 24, "unit": "device_hour", "issued": 24, "units": 1000, "packet": 1})
    );

    // The next packet after applying the first: seq 2, reported state stored.
    let request = device.request(12, false);
    let (status, answer) = send(&server, &device.seat, &request).await;
    assert_eq!(status, 201, "{answer}");
    device.apply(&answer);
    assert_eq!(device.meter.state().reported().last_seq, 2);
    assert_eq!(ledger(&env, "LIC-M"), (36, 2, 2));
    assert_eq!(
        env.db.scalar(&format!(
            "SELECT reported_last_seq AS v FROM seats WHERE id = '{}'",
            device.seat
        )),
        1
    );

    // The same device id with another key.
    let (status, body) = server
        .post(
            "/api/v1/activations",
            &json!({"key_file": key_file, "device_id": "hh-1", "user_name": "Ada",
                    "device_jwk": jwk(&SigningKey::from_bytes(&[9; 32]))}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_key_mismatch"))
    );

    // A reinstall: an admin retires the seat, the device activates with its new key and a
    // fresh state; its packets are numbered from 1 again and apply.
    env.cli_ok(&["seats", "retire", &device.seat]);
    let mut reinstalled = register(&env, &server, &key_file, "hh-1").await;
    assert_eq!(reinstalled.seat, device.seat);
    let (status, answer) = reinstalled.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(packet_claims(answer["packets"][0].as_str().unwrap()).seq, 1);
    reinstalled.apply(&answer);
    assert_eq!(reinstalled.meter.state().reported().balance, 24);
    assert_eq!(ledger(&env, "LIC-M"), (60, 3, 3));
    env.db.assert_journal_gapless();
}
both_backends!(metered_packets_reach_the_device, packets_reach_the_device);

/// The same bytes again: the same packet, charged once; the same id with another body: 422;
/// a packet whose token was lost between commit and signing is signed from its frozen claims.
async fn repeats_are_idempotent(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-R", 5, 1000).await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let request = device.request(24, false);
    let (status, first) = send(&server, &device.seat, &request).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = send(&server, &device.seat, &request).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["packets"], first["packets"]);
    assert_eq!(ledger(&env, "LIC-R"), (24, 1, 1));

    let jti = packet_claims(first["packets"][0].as_str().unwrap()).req;
    let other = device.crafted(
        &server_id(&env),
        "LIC-R",
        &jti,
        10,
        ReportedState {
            last_seq: 0,
            used: 0,
            balance: 0,
        },
    );
    let (status, body) = send(&server, &device.seat, &other).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("request_id_reused"))
    );
    assert_eq!(ledger(&env, "LIC-R"), (24, 1, 1));

    // A crash after the commit, before the token was stored.
    let mut conn = env.db.connect();
    diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE meter_packets SET token = NULL"),
        &mut conn,
    )
    .unwrap();
    let (status, retried) = send(&server, &device.seat, &request).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(
        retried["packets"], first["packets"],
        "EdDSA: the same claims, the same bytes"
    );
    assert_eq!(env.db.count("meter_packets", "token IS NOT NULL"), 1);
    assert_eq!(ledger(&env, "LIC-R"), (24, 1, 1));
    device.apply(&retried);
    assert_eq!(device.meter.state().reported().balance, 24);
}
both_backends!(metered_repeats_are_idempotent, repeats_are_idempotent);

/// A spent pool answers 409 with the figures; `partial` takes exactly what is left.
async fn exhausted_and_partial(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-X", 5, 50).await;
    let mut a = register(&env, &server, &key_file, "hh-a").await;
    let mut b = register(&env, &server, &key_file, "hh-b").await;
    let (status, answer) = a.ask(&server, 40, false).await;
    assert_eq!(status, 201, "{answer}");
    a.apply(&answer);
    let (status, body) = b.ask(&server, 24, false).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "usage_exhausted");
    assert_eq!(
        (&body["units"], &body["issued"], &body["available"]),
        (&json!(50), &json!(40), &json!(10))
    );
    assert_eq!(ledger(&env, "LIC-X"), (40, 1, 1));
    let (status, answer) = b.ask(&server, 24, true).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        packet_claims(answer["packets"][0].as_str().unwrap()).amt,
        10
    );
    assert_eq!(answer["pool"], json!({"units": 50, "issued": 50}));
    b.apply(&answer);
    assert_eq!(
        env.db.count(
            "notifications",
            "kind = 'usage_exhausted' AND recipients LIKE '%buyer@customer.example%'"
        ),
        1,
        "the packet that spent the pool told the admins"
    );
    assert_eq!(env.db.count("notifications", "kind = 'usage_threshold'"), 0);
    // The database itself holds issued <= cap, whatever a statement tries.
    let mut conn = env.db.connect();
    let overdraw = diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE licenses SET meter_issued = meter_cap + 1 WHERE id = 'LIC-X'"),
        &mut conn,
    );
    assert!(
        overdraw.is_err_and(|e| e.to_string().contains("licenses_meter_issued_bounds")),
        "the CHECK refuses issuing past the cap"
    );
    let (status, body) = b.ask(&server, 1, true).await;
    assert_eq!((status, &body["available"]), (409, &json!(0)), "{body}");
    assert_eq!(ledger(&env, "LIC-X"), (50, 2, 2));
    let status = env.cli_ok(&["--json", "usage", "status", "--license", "LIC-X"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        (&status["issued"], &status["available"]),
        (&json!(50), &json!(0))
    );
    let devices = env.cli_ok(&["--json", "usage", "devices", "--license", "LIC-X"]);
    let devices: Value = serde_json::from_str(&devices).unwrap();
    assert_eq!(devices[0]["issued"], 40);
    assert_eq!(devices[1]["issued"], 10);
}
both_backends!(metered_exhausted_and_partial, exhausted_and_partial);

/// Two packets unapplied: a third request gets those two again, and nothing is charged.
async fn outstanding_packets_are_capped(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-O", 5, 1000).await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let mut packets = Vec::new();
    for _ in 0..2 {
        let (status, answer) = device.ask(&server, 24, false).await;
        assert_eq!(status, 201, "{answer}");
        packets.push(answer["packets"][0].clone());
    }
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["packets"], Value::Array(packets));
    assert_eq!(ledger(&env, "LIC-O"), (48, 2, 3));
    // The device applies both (the third answer carries them in order) and may ask again.
    device.apply(&answer);
    assert_eq!(device.meter.state().reported().last_seq, 2);
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(packet_claims(answer["packets"][0].as_str().unwrap()).seq, 3);
}
both_backends!(
    metered_outstanding_packets_are_capped,
    outstanding_packets_are_capped
);

/// A report that goes backwards, or spends more than was issued: 409, flagged, audited and
/// federated; nothing until `usage reset-device`.
async fn impossible_states_flag_the_device(backend: Backend) {
    let (env, key_file, server) = metered_site(
        TestEnv::with_config(backend, "[notify]\noperators = [\"ops@site.example\"]\n"),
        "LIC-S",
        5,
        1000,
    )
    .await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    device.apply(&answer);
    let aud = server_id(&env);
    let state = |used, balance| ReportedState {
        last_seq: 1,
        used,
        balance,
    };
    let (status, body) = send(
        &server,
        &device.seat,
        &device.crafted(&aud, "LIC-S", "report-used-five-0001", 0, state(5, 19)),
    )
    .await;
    assert_eq!(status, 200, "amt 0 reports and asks for the time: {body}");
    assert_eq!(body["packets"], json!([]));
    let before = ledger(&env, "LIC-S");
    let (status, body) = send(
        &server,
        &device.seat,
        &device.crafted(&aud, "LIC-S", "report-used-three-001", 24, state(3, 21)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_state_invalid")),
        "{body}"
    );
    assert!(
        body["reason"].as_str().unwrap().contains("used went back"),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-S"), before);
    assert_eq!(env.db.count("seats", "meter_flag IS NOT NULL"), 1);
    assert_eq!(
        env.db.count("audit_log", "action = 'usage.state_invalid'"),
        1
    );
    assert_eq!(
        env.db
            .count("federation_events", "kind = 'usage.state_invalid'"),
        1
    );
    assert_eq!(
        env.db.count(
            "notifications",
            "kind = 'usage_state_invalid' AND recipients LIKE '%ops@site.example%'"
        ),
        1,
        "the operators are told"
    );
    // Flagged: even a possible report gets nothing.
    let (status, body) = device.ask(&server, 24, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_state_invalid"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("reset-device"),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-S"), before);

    let out = env.cli_ok(&["usage", "reset-device", &device.seat]);
    assert!(out.contains("flag cleared"), "{out}");
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'usage.device_reset' AND actor = 'cli'"
        ),
        1
    );
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    device.apply(&answer);

    // Spending more than the packets applied gave.
    let (status, body) = send(
        &server,
        &device.seat,
        &device.crafted(
            &aud,
            "LIC-S",
            "report-overspent-0001",
            24,
            ReportedState {
                last_seq: 2,
                used: 60,
                balance: 0,
            },
        ),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_state_invalid"))
    );
    assert!(
        body["reason"].as_str().unwrap().contains("more than"),
        "{body}"
    );
    env.db.assert_journal_gapless();
}
both_backends!(
    metered_impossible_states_flag_the_device,
    impossible_states_flag_the_device
);

/// A renewal lowering the pool below what was issued stops issuing until a top-up.
async fn renewals_move_the_pool(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-N", 5, 50).await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let (status, answer) = device.ask(&server, 48, false).await;
    assert_eq!(status, 201, "{answer}");
    device.apply(&answer);
    // 48 of 50: past the 90 % threshold, once.
    assert_eq!(env.db.count("notifications", "kind = 'usage_threshold'"), 1);
    import(
        &env,
        "n2.seatkey",
        &metered_key_file(&env, "LIC-N", 2, 5, 40),
    );
    let status: Value =
        serde_json::from_str(&env.cli_ok(&["--json", "usage", "status", "--license", "LIC-N"]))
            .unwrap();
    assert_eq!(
        (&status["units"], &status["issued"], &status["available"]),
        (&json!(40), &json!(48), &json!(0))
    );
    let (status, body) = device.ask(&server, 1, true).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("usage_exhausted")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-N").0, 48);
    import(
        &env,
        "n3.seatkey",
        &metered_key_file(&env, "LIC-N", 3, 5, 100),
    );
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["pool"], json!({"units": 100, "issued": 72}));
}
both_backends!(metered_renewals_move_the_pool, renewals_move_the_pool);

/// Each bad input gets its code, and the pool, packets and request records stay as they were.
async fn bad_requests_change_nothing(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-B", 5, 1000).await;
    let plain = env.import_license("LIC-PLAIN", 5);
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let aud = server_id(&env);
    let zero = ReportedState {
        last_seq: 0,
        used: 0,
        balance: 0,
    };
    let mut impostor = register(&env, &server, &key_file, "hh-2").await;
    impostor.seat = device.seat.clone();
    impostor.id = device.id.clone();
    let too_large = "a".repeat(16 * 1024 + 1);
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "signed by another key",
            impostor.crafted(&aud, "LIC-B", "another-key-000000001", 24, zero),
            "application/jose",
            401,
            "invalid_device_signature",
        ),
        (
            "not a JWS",
            "garbage".into(),
            "application/jose",
            400,
            "invalid_packet_request",
        ),
        (
            "another server",
            device.crafted(&"0".repeat(64), "LIC-B", "another-aud-000000001", 24, zero),
            "application/jose",
            400,
            "invalid_packet_request",
        ),
        (
            "amt over packet.max",
            device.crafted(&aud, "LIC-B", "too-much-0000000000001", 49, zero),
            "application/jose",
            400,
            "amount_out_of_range",
        ),
        (
            "JSON content type",
            device.request(24, false),
            "application/json",
            400,
            "invalid_request",
        ),
        (
            "16 KiB + 1",
            too_large,
            "application/jose",
            413,
            "invalid_request",
        ),
    ];
    for (what, body, content_type, status, code) in cases {
        let (got, answer) = send_as(&server, &device.seat, &body, content_type).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
        assert_eq!(ledger(&env, "LIC-B"), (0, 0, 0), "{what}");
    }
    let (status, body) = send(
        &server,
        "st_AAAAAAAAAAAAAAAAAAAAAA",
        &device.request(24, false),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_seat")));

    // A seat of a license that is not metered, with a registered key.
    let key = SigningKey::from_bytes(&[7; 32]);
    let (status, body) = server
        .post(
            "/api/v1/activations",
            &json!({"key_file": plain, "device_id": "pc-1", "user_name": "Ada", "device_jwk": jwk(&key)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let plain_device = Device {
        id: "pc-1".into(),
        key,
        seat: body["seat"].as_str().unwrap().into(),
        meter: device.meter,
        started: Instant::now(),
    };
    let (status, body) = send(
        &server,
        &plain_device.seat,
        &plain_device.crafted(&aud, "LIC-PLAIN", "not-metered-000000001", 24, zero),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("meter_not_enabled")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-B"), (0, 0, 0));
}
both_backends!(
    metered_bad_requests_change_nothing,
    bad_requests_change_nothing
);

/// Three instances on PostgreSQL, many devices asking at once: `issued` is the sum of the
/// packets, never over the cap, and every seat's packets are numbered 1..n.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metered_three_instances_share_one_pool() {
    let env = TestEnv::new(Backend::Postgres);
    let key_file = metered_key_file(&env, "LIC-P", 1, 50, 1000);
    import(&env, "p.seatkey", &key_file);
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Arc::new(TestServer::start(&env.config, &[]).await));
    }
    let mut devices = Vec::new();
    for i in 0..50 {
        devices.push(register(&env, &servers[i % 3], &key_file, &format!("hh-{i}")).await);
    }
    let tasks = devices.into_iter().enumerate().map(|(i, mut device)| {
        let servers = servers.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for round in 0..10 {
                let server = &servers[(i + round) % 3];
                let (status, answer) = device.ask(server, 24, true).await;
                if status == 201 {
                    device.apply(&answer);
                }
                answers.push((status, answer));
            }
            answers
        })
    });
    let mut granted = 0;
    let mut exhausted = 0;
    for task in tasks {
        for (status, answer) in task.await.unwrap() {
            match status {
                201 => {
                    granted += packet_claims(answer["packets"][0].as_str().unwrap()).amt;
                }
                409 => {
                    assert_eq!(answer["code"], "usage_exhausted", "{answer}");
                    exhausted += 1;
                }
                other => panic!("unexpected {other}: {answer}"),
            }
        }
    }
    let issued = env
        .db
        .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-P'");
    let stored = env
        .db
        .scalar("SELECT COALESCE(SUM(amount), 0)::BIGINT AS v FROM meter_packets");
    assert_eq!(
        issued, 1000,
        "500 requests of 24 over a pool of 1000 spend it all"
    );
    assert_eq!(stored, issued);
    assert_eq!(granted, issued);
    assert!(exhausted > 0);
    let gaps = env.db.scalar(
        "SELECT COUNT(*) AS v FROM (SELECT seat_id, MAX(seq) AS top, COUNT(*) AS n \
         FROM meter_packets GROUP BY seat_id) s WHERE top <> n",
    );
    assert_eq!(gaps, 0, "per-seat seq 1..n without gaps");
    env.db.assert_journal_gapless();
}

/// Revocation, an untrusted clock and retirement stop packets as they stop seats, and
/// change nothing; `/metrics` reports the pool.
async fn seat_rules_hold_for_packets(backend: Backend) {
    let (env, key_file, mut server) = metered_site(TestEnv::new(backend), "LIC-L", 5, 1000).await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    device.apply(&answer);
    let metrics = server.metrics().await;
    for line in [
        "seatkeep_usage_units{license=\"LIC-L\"} 1000",
        "seatkeep_usage_units_issued_total{license=\"LIC-L\"} 24",
        "seatkeep_usage_packets_issued_total{license=\"LIC-L\"} 1",
        "seatkeep_usage_devices_flagged{license=\"LIC-L\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let before = ledger(&env, "LIC-L");

    env.cli_ok(&["licenses", "revoke", "LIC-L", "--reason", "unpaid"]);
    let (status, body) = device.ask(&server, 24, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("license_revoked")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-L"), before);
    env.cli_ok(&["licenses", "reinstate", "LIC-L"]);

    // A server that ran two days ahead left its high-water mark; one on the real clock
    // signs nothing.
    server.kill();
    let mut ahead = env.serve_at_offset(48 * 3600).await;
    assert_eq!(ahead.get("/readyz").await.0, 200);
    ahead.kill();
    let mut server = env.serve().await;
    let reported = device.meter.state().reported();
    let request = device.crafted(
        &server_id(&env),
        "LIC-L",
        "clock-behind-000000001",
        24,
        reported,
    );
    let (status, body) = send(&server, &device.seat, &request).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("clock_untrusted")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-L"), before);
    server.kill();

    let server = env.serve_at_offset(48 * 3600).await;
    env.cli_ok(&["seats", "retire", &device.seat]);
    let request = device.crafted(
        &server_id(&env),
        "LIC-L",
        "after-retire-00000001",
        24,
        reported,
    );
    let (status, body) = send(&server, &device.seat, &request).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seat_not_active")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-L"), before);
}
both_backends!(
    metered_seat_rules_hold_for_packets,
    seat_rules_hold_for_packets
);

/// A device proof for `action` on the device's seat.
fn proof(
    device: &Device,
    aud: &str,
    action: ProofAction,
    user_name: Option<&str>,
    jti: &str,
) -> String {
    seatkeep_device::proof::sign(
        &device.key,
        &ProofClaims {
            iss: device.id.clone(),
            aud: aud.into(),
            seat: device.seat.clone(),
            action,
            user_name: user_name.map(str::to_owned),
            jti: jti.into(),
            iat: now(),
        },
    )
}

/// Reissue and return work for metered seats (with the device's proofs): the reissued key
/// still binds the device's key, packets go on after a reissue, and a returned seat gets
/// none until the device takes it back with the same key and state.
async fn reissue_and_return_keep_working(backend: Backend) {
    let (env, key_file, server) = metered_site(TestEnv::new(backend), "LIC-C", 5, 1000).await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    device.apply(&answer);
    let aud = server_id(&env);

    let renamed = proof(
        &device,
        &aud,
        ProofAction::Reissue,
        Some("Grace"),
        "reissue-proof-0001",
    );
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{}/reissue", device.seat),
            &json!({"proof": renamed, "user_name": "Grace"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let verified = verify_answer(&env, &body, "hh-1");
    assert_eq!(verified.device_key_claims.r#gen, 2);
    assert_eq!(
        verified.device_key_claims.cnf.map(|c| c.jkt),
        Some(DeviceJwk::from_key(&device.key.verifying_key()).thumbprint())
    );
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(packet_claims(answer["packets"][0].as_str().unwrap()).seq, 2);
    device.apply(&answer);

    let give_back = proof(
        &device,
        &aud,
        ProofAction::Return,
        None,
        "return-proof-00001",
    );
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{}/return", device.seat),
            &json!({"proof": give_back}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("returned")),
        "{body}"
    );
    let (status, body) = device.ask(&server, 24, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seat_not_active")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-C").0, 48);

    // Back with the same key and state: numbering goes on.
    let (status, body) = server
        .post(
            "/api/v1/activations",
            &json!({"key_file": key_file, "device_id": "hh-1", "user_name": "Grace",
                    "device_jwk": jwk(&device.key)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, answer) = device.ask(&server, 24, false).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(packet_claims(answer["packets"][0].as_str().unwrap()).seq, 3);
    device.apply(&answer);
    assert_eq!(device.meter.state().reported().last_seq, 3);
}
both_backends!(
    metered_reissue_and_return_keep_working,
    reissue_and_return_keep_working
);

/// `usage.provisioned` events reach the provider with their figures, and `provider report`
/// counts the units issued per license, month and channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metered_units_reach_the_provider_report() {
    use crate::federation_support::{
        CollectorProcess, FAST_PUSH, stored_events, to, wait_delivered,
    };
    let env = TestEnv::with_config(Backend::Sqlite, FAST_PUSH);
    let collector = CollectorProcess::start(&env, 0);
    let mut claims = serde_json::to_value(env.claims("lic-met", 5)).unwrap();
    claims["model"] = json!("metered");
    claims["meter"] = json!({"unit": "device_day", "units": 100});
    claims["federation"] = serde_json::to_value(to(&collector.url())).unwrap();
    claims["channel"] = json!({"distributor": "dist-7"});
    let key_file = env.sign(&serde_json::from_value(claims).unwrap());
    import(&env, "met.seatkey", &key_file);
    std::fs::create_dir_all(env.path("issued")).unwrap();
    std::fs::write(env.path("issued/lic-met.seatkey"), &key_file).unwrap();
    let server = env.serve().await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    for amt in [24, 10] {
        let (status, answer) = device.ask(&server, amt, false).await;
        assert_eq!(status, 201, "{answer}");
        device.apply(&answer);
    }
    wait_delivered(&env, "lic-met").await;
    let provisioned: Vec<Value> = stored_events(&collector.data)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e["type"] == "usage.provisioned")
        .collect();
    assert_eq!(provisioned.len(), 2);
    assert_eq!(
        (
            &provisioned[1]["amt"],
            &provisioned[1]["issued"],
            &provisioned[1]["units"]
        ),
        (&json!(10), &json!(34), &json!(100))
    );
    assert_eq!(
        (&provisioned[1]["unit"], &provisioned[1]["packet"]),
        (&json!("device_day"), &json!(2))
    );
    let report: Value = crate::federation_support::provider_report(&collector.data);
    let row = &report[0];
    assert_eq!(row["units_issued"], 34, "{report}");
    assert_eq!(row["unit_channels"]["distributor:dist-7"], 34);
    assert_eq!(row["registrations"], 1);
}

/// The reference client, as a product maker would try it: activate, locked without
/// balance, ask for a packet, active, tick, and the state survives between runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metered_reference_client_end_to_end() {
    let env = TestEnv::new(Backend::Sqlite);
    let mut claims = serde_json::to_value(env.claims("LIC-D", 5)).unwrap();
    claims["model"] = json!("metered");
    claims["meter"] =
        json!({"unit": "device_day", "units": 100, "packet": {"default": 10, "min": 1, "max": 30}});
    let key_file = env.sign(&serde_json::from_value(claims).unwrap());
    let key_path = env.write("d.seatkey", &key_file);
    env.cli_ok(&["keyfile", "import", key_path.to_str().unwrap()]);
    let server = env.serve().await;
    let saved = env.path("hh.json");
    let saved = saved.to_str().unwrap();
    crate::metered_client::activate(&server, &key_path, "hh-1", saved);
    let usage = |args: &[&str]| -> Value {
        let (command, extra) = args.split_first().unwrap();
        crate::metered_client::json(&crate::metered_client::usage(&env, saved, command, extra))
    };
    let status = usage(&["status"]);
    assert_eq!(status["enforcement"], "locked: no_balance", "{status}");
    let got = usage(&["request", "--units", "3"]);
    assert_eq!(
        (&got["usage"]["enforcement"], &got["usage"]["balance_units"]),
        (&json!("active"), &json!(3.0)),
        "{got}"
    );
    assert_eq!(
        (&got["pool_units"], &got["pool_issued"]),
        (&json!(100), &json!(3))
    );
    let ticked = usage(&["tick"]);
    assert_eq!(
        (&ticked["used_units"], &ticked["balance_units"]),
        (&json!(1.0), &json!(2.0)),
        "{ticked}"
    );
    let again = usage(&["tick"]);
    assert_eq!(
        again["used_units"], 1.0,
        "one device_day per UTC day: {again}"
    );
    let more = usage(&["request"]);
    assert_eq!(
        (
            &more["usage"]["balance_units"],
            &more["usage"]["last_packet"]
        ),
        (&json!(12.0), &json!(2)),
        "{more}"
    );
    assert_eq!(ledger(&env, "LIC-D"), (13, 2, 2));
    assert_eq!(
        env.db.scalar("SELECT reported_used AS v FROM seats"),
        1,
        "the second request reported the day used"
    );
}

/// Past the license's federation grace with events unacknowledged, no packet is issued (and
/// nothing charged); the device's balance is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metered_federation_overdue_issues_nothing() {
    let env = TestEnv::with_config(Backend::Sqlite, crate::federation_support::MANUAL_PUSH);
    let mut claims = serde_json::to_value(env.claims("LIC-G", 5)).unwrap();
    claims["model"] = json!("metered");
    claims["meter"] = json!({"unit": "device_hour", "units": 100});
    claims["federation"] = json!({"url": "http://127.0.0.1:9/federation", "grace": 2});
    let key_file = env.sign(&serde_json::from_value(claims).unwrap());
    import(&env, "g.seatkey", &key_file);
    let server = env.serve().await;
    let mut device = register(&env, &server, &key_file, "hh-1").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (status, body) = device.ask(&server, 24, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("federation_overdue")),
        "{body}"
    );
    assert_eq!(ledger(&env, "LIC-G"), (0, 0, 0));
}

/// One packet request of the kill -9 load: who sent it, its id and exact body, and the
/// answer if one arrived before the kill.
struct Sent {
    device: usize,
    jti: String,
    body: String,
    answer: Option<(u16, Value)>,
}

/// A packet row as committed: `(seq, amount, packet jti, claims JSON, token)`.
fn committed_packet(
    env: &TestEnv,
    seat: &str,
    request_jti: &str,
) -> Option<(i64, i64, String, String, Option<String>)> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        seq: i64,
        #[diesel(sql_type = BigInt)]
        amount: i64,
        #[diesel(sql_type = Text)]
        claims: String,
        #[diesel(sql_type = Nullable<Text>)]
        token: Option<String>,
    }
    let mut conn = env.db.connect();
    let rows: Vec<Row> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT seq, amount, claims, token FROM meter_packets \
             WHERE seat_id = '{seat}' AND request_jti = '{request_jti}'"
        )),
        &mut conn,
    )
    .unwrap();
    assert!(
        rows.len() <= 1,
        "request {request_jti} issued {} packets",
        rows.len()
    );
    rows.into_iter().next().map(|r| {
        let claims: PacketClaims = serde_json::from_str(&r.claims).unwrap();
        (r.seq, r.amount, claims.jti, r.claims, r.token)
    })
}

/// Devices asking for packets as fast as they can until the server is killed with SIGKILL
/// once `kill_after` more packets are committed. A device stops at its first request
/// without an answer (its next packet would be out of order until that one is retried).
async fn load_then_kill(
    env: &TestEnv,
    key_file: &str,
    round: usize,
    kill_after: i64,
) -> (Vec<Device>, Vec<Sent>) {
    const DEVICES: usize = 24;
    let mut server = env.serve().await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        devices.push(register(env, &server, key_file, &format!("kill-{round}-{i}")).await);
    }
    let before = env.db.count("meter_packets", "");
    let url = server.url.clone();
    let tasks: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, mut device)| {
            let (http, url) = (server.http.clone(), url.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                // 1..=48 units, different per device, so the sums below mean something.
                let amt = 1 + (i as i64 * 7) % 48;
                for _ in 0..400 {
                    let body = device.request(amt, false);
                    let jti: PacketRequestClaims = serde_json::from_slice(
                        &seatkeep::jws::parse_compact(&body).unwrap().payload,
                    )
                    .unwrap();
                    let response = http
                        .post(format!("{url}/api/v1/activations/{}/packets", device.seat))
                        .header("content-type", "application/jose")
                        .body(body.clone())
                        .send()
                        .await;
                    let answer = match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            r.json::<Value>().await.ok().map(|v| (status, v))
                        }
                        Err(_) => None,
                    };
                    let stop = answer.is_none();
                    if let Some((201, answer)) = &answer {
                        device.apply(answer);
                    } else if let Some((status, answer)) = &answer {
                        panic!("under load: {status} {answer}");
                    }
                    sent.push(Sent {
                        device: i,
                        jti: jti.jti,
                        body,
                        answer,
                    });
                    if stop {
                        break;
                    }
                }
                (device, sent)
            })
        })
        .collect();
    for _ in 0..2000 {
        if env.db.count("meter_packets", "") >= before + kill_after {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill(); // SIGKILL to the child, then wait
    let mut devices = Vec::new();
    let mut sent = Vec::new();
    for task in tasks {
        let (device, mine) = task.await.unwrap();
        devices.push(device);
        sent.extend(mine);
    }
    (devices, sent)
}

/// `kill -9` under a load of packet requests, for real (no failpoint): after the restart the
/// database shows requests whose packet was committed while their answer never arrived, and
/// the retry of each unanswered request with the same bytes gets the frozen packet (same
/// seq, amount and jti), verified and applied by the device crate; the pool is charged once
/// per request id and every seat's packets are numbered 1..n.
async fn kill_nine_between_commit_and_answer(backend: Backend) {
    const ROUNDS: usize = 6;
    let env = TestEnv::new(backend);
    let key_file = metered_key_file(&env, "LIC-K9", 1, 1000, 10_000_000);
    import(&env, "k9.seatkey", &key_file);
    let mut devices: Vec<Device> = Vec::new();
    let mut unanswered: Vec<(usize, Sent)> = Vec::new();
    let mut answered_units = 0;
    let mut between = 0;
    let mut rounds = 0;
    let mut restarted: Option<TestServer> = None;
    while between == 0 && rounds < ROUNDS {
        drop(restarted.take()); // one server at a time on the database
        let (round_devices, sent) =
            load_then_kill(&env, &key_file, rounds, 40 + 20 * rounds as i64).await;
        rounds += 1;
        let offset = devices.len();
        devices.extend(round_devices);
        // Restarted on the same database; nothing is retried before the reading below.
        restarted = Some(env.serve().await);
        for s in sent {
            match &s.answer {
                Some((201, answer)) => {
                    answered_units += packet_claims(answer["packets"][0].as_str().unwrap()).amt;
                }
                Some((status, answer)) => panic!("{status}: {answer}"),
                None => {
                    let seat = devices[offset + s.device].seat.clone();
                    if committed_packet(&env, &seat, &s.jti).is_some() {
                        between += 1;
                    }
                    unanswered.push((offset + s.device, s));
                }
            }
        }
        eprintln!(
            "round {rounds}: {} unanswered so far, {between} committed without an answer, \
             {} packets stored, {} without a token",
            unanswered.len(),
            env.db.count("meter_packets", ""),
            env.db.count("meter_packets", "token IS NULL"),
        );
    }
    assert!(
        between > 0,
        "after {ROUNDS} kill -9 rounds no request was committed without its answer \
         ({} unanswered)",
        unanswered.len()
    );

    // Read before any retry: the frozen claims of the committed ones.
    let frozen: Vec<_> = unanswered
        .iter()
        .map(|(d, s)| committed_packet(&env, &devices[*d].seat, &s.jti))
        .collect();
    let server = restarted.expect("the server restarted after the last kill");
    let mut retried_units = 0;
    for ((d, sent), frozen) in unanswered.iter().zip(&frozen) {
        let device = &mut devices[*d];
        let (status, answer) = send(&server, &device.seat, &sent.body).await;
        let packets = answer["packets"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(packets.len(), 1, "{answer}");
        let claims = packet_claims(packets[0].as_str().unwrap());
        assert_eq!(claims.req, sent.jti);
        match frozen {
            Some((seq, amount, jti, stored_claims, token)) => {
                assert_eq!(
                    status, 200,
                    "a committed request is answered again: {answer}"
                );
                assert_eq!((claims.seq, claims.amt, &claims.jti), (*seq, *amount, jti));
                assert_eq!(
                    serde_json::to_value(&claims).unwrap(),
                    serde_json::from_str::<Value>(stored_claims).unwrap(),
                    "the frozen claims, exactly"
                );
                if let Some(token) = token {
                    assert_eq!(packets[0].as_str().unwrap(), token);
                }
            }
            None => assert_eq!(status, 201, "never committed: issued now: {answer}"),
        }
        retried_units += claims.amt;
        // The device crate verifies it (server key from the key file, its own key, its
        // pending request) and applies it.
        let before = device.meter.state().reported();
        device.apply(&answer);
        let after = device.meter.state().reported();
        assert_eq!(after.last_seq, claims.seq);
        assert_eq!(after.balance, before.balance + claims.amt);
    }
    let issued = env
        .db
        .scalar("SELECT meter_issued AS v FROM licenses WHERE id = 'LIC-K9'");
    let stored = env
        .db
        .scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS v FROM meter_packets");
    assert_eq!(issued, stored, "the pool is the sum of the packets stored");
    assert_eq!(
        issued,
        answered_units + retried_units,
        "charged once per request id"
    );
    assert_eq!(
        env.db.scalar(
            "SELECT COUNT(*) AS v FROM (SELECT request_jti FROM meter_packets \
             GROUP BY seat_id, request_jti HAVING COUNT(*) > 1) d"
        ),
        0,
        "no request id has two packets"
    );
    assert_eq!(
        env.db.scalar(
            "SELECT COUNT(*) AS v FROM (SELECT seat_id, MAX(seq) AS top, COUNT(*) AS n, \
             MIN(seq) AS low FROM meter_packets GROUP BY seat_id) s WHERE top <> n OR low <> 1"
        ),
        0,
        "per-seat seq 1..n without gap or duplicate"
    );
    assert_eq!(env.db.count("meter_packets", "token IS NULL"), 0);
    for device in &devices {
        assert_eq!(
            device.meter.state().reported().last_seq,
            env.db
                .count("meter_packets", &format!("seat_id = '{}'", device.seat)),
            "device {} applied every packet of its seat",
            device.id
        );
    }
    eprintln!(
        "kill -9: {rounds} round(s), {between} committed without an answer, {} unanswered \
         retried, {issued} units issued",
        unanswered.len()
    );
    env.db.assert_journal_gapless();
}
both_backends!(
    metered_kill_nine_between_commit_and_answer,
    kill_nine_between_commit_and_answer
);
