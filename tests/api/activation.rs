//! The device API: activation, repeat, reissue, return, retire, lookup, limits, clock watch,
//! and every bad input with its problem code.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestEnv};

/// Decodes a compact JWS's header and claims (no verification: the verifier tests do that).
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    let claims = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&claims).unwrap(),
    )
}

async fn lifecycle(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-A", 2);
    let server = env.serve().await;
    let server_id = std::fs::read_to_string(env.path("server-key.pub.pem"))
        .map(|p| seatkeep::signing::spki_fingerprint(pem::parse(p).unwrap().contents()))
        .unwrap();

    let (status, first) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(status, 201, "{first}");
    for field in [
        "seat",
        "device_key",
        "key_file",
        "state",
        "expires_at",
        "return_token",
    ] {
        assert!(!first[field].is_null(), "response has {field}: {first}");
    }
    assert_eq!(first["state"], "active");
    let (header, claims) = decode(first["device_key"].as_str().unwrap());
    assert_eq!(header["typ"], "seatkeep-device+jwt");
    assert_eq!(header["kid"], server_id);
    assert_eq!(claims["iss"], server_id);
    assert_eq!(claims["sub"], "dev-1");
    assert_eq!(claims["name"], "Ada");
    assert_eq!(claims["lic"], "LIC-A");
    assert_eq!(claims["seat"], first["seat"]);
    assert_eq!(claims["gen"], 1);
    assert_eq!(claims["product"], json!({"id": "wordsmith", "edition": 2}));
    assert_eq!(claims["model"], "node_locked");

    // Same device again: same seat, same key (safe to retry), and no return token: only the
    // 201 that created the seat carries it (DESIGN §5).
    let (status, again) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(status, 200);
    for field in ["seat", "device_key"] {
        assert_eq!(again[field], first[field], "{field}");
    }
    assert!(again.get("return_token").is_none(), "{again}");
    // The bare compact JWS proves possession too.
    let bare = seatkeep::keyfile::dearmor(key_file.as_bytes()).unwrap();
    assert_eq!(server.activate(&bare, "dev-1", "Ada").await.0, 200);
    // Another name on the same device needs a reissue.
    let (status, body) = server.activate(&key_file, "dev-1", "Grace").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reissue_required"))
    );
    assert!(
        !body.to_string().contains("Ada"),
        "the refusal names nobody: {body}"
    );

    let seat = first["seat"].as_str().unwrap();
    let (status, state) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!((status, state["state"].as_str()), (200, Some("active")));

    assert_eq!(server.activate(&key_file, "dev-2", "Bob").await.0, 201);
    let (status, body) = server.activate(&key_file, "dev-3", "Cy").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seats_exhausted")),
        "{body}"
    );
    assert_eq!(
        (body["seats"].as_i64(), body["in_use"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(env.db.refusals(), 1, "the refusal is counted");

    // An admin retires dev-1: it learns so, and dev-3 gets the seat.
    let out = env.cli_ok(&["seats", "retire", seat]);
    assert!(out.contains("retired"), "{out}");
    let (_, state) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!(state["state"], "retired");
    let (status, third) = server.activate(&key_file, "dev-3", "Cy").await;
    assert_eq!(status, 201, "{third}");

    // Reissue (name change): gen + 1, new key, same seat.
    let token = third["return_token"].as_str().unwrap();
    let seat3 = third["seat"].as_str().unwrap();
    let (status, renamed) = server
        .post(
            &format!("/api/v1/activations/{seat3}/reissue"),
            &json!({"return_token": token, "user_name": "Cyrus"}),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    let (_, claims) = decode(renamed["device_key"].as_str().unwrap());
    assert_eq!(
        (claims["gen"].as_i64(), claims["name"].as_str()),
        (Some(2), Some("Cyrus"))
    );
    assert_eq!(renamed["seat"], third["seat"]);

    // Key repository: that user's active keys on the device, nobody else's.
    let (status, keys) = server
        .post(
            "/api/v1/keys/lookup",
            &json!({"key_file": key_file, "device_id": "dev-3", "user_name": "Cyrus"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["keys"][0]["device_key"], renamed["device_key"]);
    let (status, none) = server
        .post(
            "/api/v1/keys/lookup",
            &json!({"key_file": key_file, "device_id": "dev-3", "user_name": "Cy"}),
        )
        .await;
    assert_eq!(
        (status, none["keys"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Return: wrong token refused and nothing changes; right token frees the seat.
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{seat3}/return"),
            &json!({"return_token": "nope"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_return_token"))
    );
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 2);
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{seat3}/return"),
            &json!({"return_token": token}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("returned")),
        "{body}"
    );
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 1);
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{seat3}/reissue"),
            &json!({"return_token": token, "user_name": "Cyd"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seat_not_active"))
    );

    assert_eq!(
        env.db.scalar("SELECT in_use AS v FROM licenses"),
        env.db.count("seats", "state = 'active'")
    );
    let listed = env.cli_ok(&["seats", "list", "--license", "LIC-A", "--search", "dev-"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let audit = env.db.count("audit_log", "action LIKE 'seat.%'");
    assert_eq!(audit, 6, "activated×3, retired, reissued, returned");
}
both_backends!(activation_lifecycle, lifecycle);

async fn top_up_and_down_renewal(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut claims = env.claims("LIC-T", 1);
    let key_file = env.sign(&claims);
    let path = env.write("t1.seatkey", &key_file);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve().await;
    assert_eq!(server.activate(&key_file, "d1", "u").await.0, 201);
    assert_eq!(server.activate(&key_file, "d2", "u").await.0, 409);
    assert_eq!(server.activate(&key_file, "d3", "u").await.0, 409);

    // Top-up: refused devices now succeed, with the old key file still in hand.
    claims.seq = 2;
    claims.seats = 3;
    let renewed = env.sign(&claims);
    let path = env.write("t2.seatkey", &renewed);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let (status, body) = server.activate(&key_file, "d2", "u").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["key_file"].as_str().unwrap(),
        renewed,
        "the answer carries the current key file"
    );
    assert_eq!(server.activate(&key_file, "d3", "u").await.0, 201);

    // Down-renewal to 1 seat: the 3 seats in use stay, nothing new is granted until usage
    // drops below the new count.
    claims.seq = 3;
    claims.seats = 1;
    let path = env.write("t3.seatkey", env.sign(&claims));
    let out = env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    assert!(out.contains("2 seats over-allocated"), "{out}");
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 3);
    assert_eq!(
        server.activate(&key_file, "d1", "u").await.0,
        200,
        "held seats keep working"
    );
    assert_eq!(server.activate(&key_file, "d4", "u").await.0, 409);
    for seat in env
        .cli_ok(&["--json", "seats", "list", "--license", "LIC-T"])
        .parse::<Value>()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["device_id"] != "d1")
    {
        env.cli_ok(&["seats", "retire", seat["id"].as_str().unwrap()]);
        assert_eq!(
            server.activate(&key_file, "d4", "u").await.0,
            409,
            "still at or over 1 seat"
        );
    }
    let (_, d1) = server.activate(&key_file, "d1", "u").await;
    env.cli_ok(&["seats", "retire", d1["seat"].as_str().unwrap()]);
    assert_eq!(server.activate(&key_file, "d4", "u").await.0, 201);
    assert_eq!(env.db.scalar("SELECT ceiling AS v FROM licenses"), 1);
}
both_backends!(top_up_and_lower_renewal, top_up_and_down_renewal);

async fn limits(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut claims = env.claims("LIC-L", 2);
    claims.policy.reissue_limit = 2;
    claims.policy.return_limit = 1;
    let key_file = env.sign(&claims);
    let path = env.write("l.seatkey", &key_file);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve().await;
    let (_, first) = server.activate(&key_file, "dev", "n0").await;
    let seat = first["seat"].as_str().unwrap().to_owned();
    let token = first["return_token"].as_str().unwrap().to_owned();
    for name in ["n1", "n2"] {
        let (status, body) = server
            .post(
                &format!("/api/v1/activations/{seat}/reissue"),
                &json!({"return_token": token, "user_name": name}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let response = server
        .http
        .post(format!("{}/api/v1/activations/{seat}/reissue", server.url))
        .json(&json!({"return_token": token, "user_name": "n3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 364 * 86400 && retry_after <= 365 * 86400,
        "{retry_after}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "reissue_limit_reached");
    let (_, state) = server.activate(&key_file, "dev", "n2").await;
    assert_eq!(
        state["generation"], 3,
        "seat unchanged by the refused reissue"
    );

    // Return, activate again (same seat), return again: over the limit.
    let (status, _) = server
        .post(
            &format!("/api/v1/activations/{seat}/return"),
            &json!({"return_token": token}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, back) = server.activate(&key_file, "dev", "n2").await;
    assert_eq!(status, 201);
    assert_eq!(back["seat"], seat.as_str(), "the device gets its seat back");
    let new_token = back["return_token"].as_str().unwrap();
    assert_ne!(new_token, token, "a new activation has a new return token");
    let response = server
        .http
        .post(format!("{}/api/v1/activations/{seat}/return", server.url))
        .json(&json!({"return_token": new_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "return_limit_reached"
    );
    let (_, state) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!(
        state["state"], "active",
        "seat unchanged by the refused return"
    );
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 1);
    env.db.assert_journal_gapless();
}
both_backends!(reissue_and_return_limits, limits);

/// Every bad request gets its problem code and writes nothing.
async fn bad_requests(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-B", 3);
    // Valid for a day when imported; the server below runs two days later.
    let mut expiring = env.claims("LIC-EXPIRED", 3);
    expiring.exp = Some(seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime) + 86400);
    let expired = env.sign(&expiring);
    let path = env.write("expiring.seatkey", &expired);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let mut never = env.claims("LIC-NEVER", 3);
    never.jti = "never-imported".into();
    let never_imported = env.sign(&never);
    let mut foreign = env.claims("LIC-B", 3);
    foreign.server = seatkeep::keyfile::server_claim(
        seatkeep::signing::SigningKey::from_pem(
            seatkeep::signing::KeyType::Ed25519
                .generate_pem()
                .unwrap()
                .as_bytes(),
            None,
        )
        .unwrap()
        .spki_der(),
    );
    let foreign = env.sign(&foreign);
    let tampered = key_file.replacen("eyJ", "eyK", 1);
    let server = env.serve_at_offset(2 * 86400).await;
    let audit_before = env.db.count("audit_log", "");
    let ok = json!({"key_file": key_file, "device_id": "dev-1", "user_name": "Ada"});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = ok.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("no key_file", without("key_file"), 400, "invalid_request"),
        ("no device_id", without("device_id"), 400, "invalid_request"),
        ("no user_name", without("user_name"), 400, "invalid_request"),
        (
            "empty key_file",
            with("key_file", json!("")),
            400,
            "invalid_request",
        ),
        (
            "empty device_id",
            with("device_id", json!("")),
            400,
            "invalid_request",
        ),
        (
            "empty user_name (node_locked)",
            with("user_name", json!("")),
            400,
            "invalid_request",
        ),
        (
            "device_id 129 chars",
            with("device_id", json!("d".repeat(129))),
            400,
            "invalid_request",
        ),
        (
            "device_id with a space",
            with("device_id", json!("dev 1")),
            400,
            "invalid_request",
        ),
        (
            "device_id with a slash",
            with("device_id", json!("dev/1")),
            400,
            "invalid_request",
        ),
        (
            "device_id non-ASCII",
            with("device_id", json!("dév")),
            400,
            "invalid_request",
        ),
        (
            "user_name 65 chars",
            with("user_name", json!("é".repeat(65))),
            400,
            "invalid_request",
        ),
        (
            "control char in user_name",
            with("user_name", json!("Ada\u{7}")),
            400,
            "invalid_request",
        ),
        (
            "newline in user_name",
            with("user_name", json!("Ada\nB")),
            400,
            "invalid_request",
        ),
        (
            "device_id a number",
            with("device_id", json!(5)),
            400,
            "invalid_request",
        ),
        (
            "user_name null",
            with("user_name", Value::Null),
            400,
            "invalid_request",
        ),
        (
            "key_file an object",
            with("key_file", json!({})),
            400,
            "invalid_request",
        ),
        (
            "device_info a string",
            with("device_info", json!("x")),
            400,
            "invalid_request",
        ),
        ("body an array", json!([1, 2]), 400, "invalid_request"),
        (
            "key file never imported",
            with("key_file", json!(never_imported)),
            404,
            "unknown_license",
        ),
        (
            "key file of another server",
            with("key_file", json!(foreign)),
            400,
            "invalid_key_file",
        ),
        (
            "tampered key file",
            with("key_file", json!(tampered)),
            400,
            "invalid_key_file",
        ),
        (
            "garbage key file",
            with("key_file", json!("not a key file")),
            400,
            "invalid_key_file",
        ),
        (
            "expired license",
            with("key_file", json!(expired)),
            403,
            "license_expired",
        ),
    ];
    for (name, body, status, code) in cases {
        let response = server
            .http
            .post(format!("{}/api/v1/activations", server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{name}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code, "{name}: {problem}");
        assert_eq!(problem["status"], status, "{name}");
        assert!(
            !problem["detail"].as_str().unwrap_or_default().is_empty(),
            "{name}"
        );
    }
    // Not JSON, wrong content type, too large.
    let raw = |body: Vec<u8>, content_type: &'static str| {
        server
            .http
            .post(format!("{}/api/v1/activations", server.url))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = raw(b"{not json".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "invalid_request"
    );
    let response = raw(b"key_file=x".to_vec(), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let mut big = serde_json::to_vec(&with("user_name", json!("x".repeat(17 * 1024)))).unwrap();
    big.truncate(17 * 1024);
    let response = raw(big, "application/json").await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "invalid_request"
    );

    // Seat endpoints: unknown seat, wrong token, bad bodies.
    assert_eq!(
        server.get("/api/v1/activations/st_nope").await.1["code"],
        "unknown_seat"
    );
    let (status, body) = server
        .post(
            "/api/v1/activations/st_nope/return",
            &json!({"return_token": "x"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_seat")));
    let (status, body) = server
        .post(
            "/api/v1/activations/st_nope/reissue",
            &json!({"return_token": "x", "user_name": "y"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_seat")));
    let (status, body) = server
        .post("/api/v1/activations/st_nope/return", &json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = server
        .post(
            "/api/v1/keys/lookup",
            &json!({"key_file": key_file, "device_id": "bad id", "user_name": "Ada"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );

    assert_eq!(env.db.count("seats", ""), 0, "no seat written");
    assert_eq!(env.db.count("refusal_counts", ""), 0);
    assert_eq!(
        env.db.count("audit_log", ""),
        audit_before,
        "no audit row written"
    );
    assert_eq!(env.db.scalar("SELECT SUM(in_use) AS v FROM licenses"), 0);
}
both_backends!(
    bad_requests_get_problem_codes_and_write_nothing,
    bad_requests
);

async fn clock_watch(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-C", 3);
    let two_days = 48 * 3600;
    // A server whose clock ran two days ahead stores that time as the high-water mark...
    let mut ahead = env.serve_at_offset(two_days).await;
    assert_eq!(ahead.activate(&key_file, "dev-0", "Ada").await.0, 201);
    ahead.kill();
    let high_water = env
        .db
        .scalar("SELECT value AS v FROM server_state WHERE name = 'clock_high_water'");
    let real_now = seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime);
    assert!(
        high_water > real_now + two_days - 600,
        "{high_water} vs {real_now}"
    );
    // ...so a server on the real clock, now two days behind it, signs nothing.
    let mut server = env.serve().await;
    let (status, body) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("clock_untrusted")),
        "{body}"
    );
    assert_eq!(
        env.db.count("seats", ""),
        1,
        "no seat written while untrusted"
    );
    server.kill();
    // Once the clock is right again (here: ahead as before), signing resumes.
    let server = env.serve_at_offset(two_days).await;
    assert_eq!(server.activate(&key_file, "dev-1", "Ada").await.0, 201);
}
both_backends!(clock_gone_back_stops_signing, clock_watch);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_device_license_first_device_wins() {
    let env = TestEnv::new(Backend::Sqlite);
    let mut claims = env.claims("LIC-S", 1);
    claims.model = seatkeep::keyfile::LicenseModel::SingleDevice;
    let key_file = env.sign(&claims);
    let path = env.write("s.seatkey", &key_file);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve().await;
    let (status, body) = server.activate(&key_file, "only-one", "").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.activate(&key_file, "only-one", "").await.0, 200);
    assert_eq!(
        server.activate(&key_file, "second", "").await.1["code"],
        "seats_exhausted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_the_device_api() {
    let env = TestEnv::new(Backend::Sqlite);
    let server = env.serve().await;
    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/activations",
        "/api/v1/activations/{seat}",
        "/api/v1/activations/{seat}/reissue",
        "/api/v1/activations/{seat}/return",
        "/api/v1/keys/lookup",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    // The rules the server enforces, as the document states them.
    let proof = &doc["components"]["schemas"]["DeviceProof"];
    assert_eq!(
        proof["maxLength"].as_u64(),
        Some(seatkeep_device::proof::MAX_PROOF_BYTES as u64)
    );
    let text = proof["description"].as_str().unwrap();
    assert!(
        text.contains("16 to 128 characters of `[A-Za-z0-9_-]`"),
        "{text}"
    );
    let conflict = doc["paths"]["/api/v1/activations"]["post"]["responses"]["409"]["description"]
        .as_str()
        .unwrap();
    assert!(!conflict.contains("with `seat`"), "{conflict}");
    // And the answer it describes: no seat in a reissue_required.
    let key_file = env.import_license("LIC-DOC", 2);
    assert_eq!(server.activate(&key_file, "dev-doc", "Ada").await.0, 201);
    let (status, body) = server.activate(&key_file, "dev-doc", "Grace").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reissue_required"))
    );
    assert!(body.get("seat").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overage_allowance_is_flagged() {
    let env = TestEnv::new(Backend::Sqlite);
    let mut claims = env.claims("LIC-O", 2);
    claims.policy.overage_percent = 50;
    let key_file = env.sign(&claims);
    let path = env.write("o.seatkey", &key_file);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve().await;
    for device in ["a", "b"] {
        let (status, body) = server.activate(&key_file, device, "u").await;
        assert_eq!((status, body["overage"].as_bool()), (201, Some(false)));
    }
    let (status, body) = server.activate(&key_file, "c", "u").await;
    assert_eq!(
        (status, body["overage"].as_bool()),
        (201, Some(true)),
        "{body}"
    );
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'seat.activated' AND detail LIKE '%\"overage\":true%'"
        ),
        1
    );
    let (status, body) = server.activate(&key_file, "d", "u").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seats_exhausted"))
    );
}
