//! Who may change a seat (DESIGN §5, issue 15): an attacker on the site network holds the
//! key file (every device has it) and knows a victim's device id (a hardware serial). The
//! takeover of issue 15 fails at every step, proofs are checked, and a return followed by an
//! activation under another name counts against `reissue_limit`.

use ed25519_dalek::SigningKey;
use seatkeep_device::DeviceJwk;
use seatkeep_device::proof::{self, ProofAction, ProofClaims};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, TestServer};

fn device_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwk(key: &SigningKey) -> Value {
    serde_json::to_value(DeviceJwk::from_key(&key.verifying_key())).unwrap()
}

fn now() -> i64 {
    seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime)
}

fn server_id(env: &TestEnv) -> String {
    let pem = std::fs::read_to_string(env.path("server-key.pub.pem")).unwrap();
    seatkeep::signing::spki_fingerprint(pem::parse(pem).unwrap().contents())
}

struct Proof<'a> {
    key: &'a SigningKey,
    device: &'a str,
    aud: &'a str,
    seat: &'a str,
    action: ProofAction,
    user_name: Option<&'a str>,
    jti: &'a str,
    iat: i64,
}

impl Proof<'_> {
    fn sign(&self) -> String {
        proof::sign(
            self.key,
            &ProofClaims {
                iss: self.device.into(),
                aud: self.aud.into(),
                seat: self.seat.into(),
                action: self.action,
                user_name: self.user_name.map(str::to_owned),
                jti: self.jti.into(),
                iat: self.iat,
            },
        )
    }
}

async fn activate_with_key(
    server: &TestServer,
    key_file: &str,
    device: &str,
    user: &str,
    key: &SigningKey,
) -> (u16, Value) {
    server
        .post(
            "/api/v1/activations",
            &json!({"key_file": key_file, "device_id": device, "user_name": user, "device_jwk": jwk(key)}),
        )
        .await
}

/// Issue 15's takeover, step by step, against a victim without a device key (the token
/// path) and one with a key (the proof path).
async fn takeover(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-T", 2);
    let server = env.serve().await;
    let (status, victim) = server.activate(&key_file, "victim-1", "Alice").await;
    assert_eq!(status, 201);
    let victim_seat = victim["seat"].as_str().unwrap().to_owned();

    // 1. A wrong name: reissue_required, and nothing in it names the victim.
    let (status, refusal) = server.activate(&key_file, "victim-1", "Mallory").await;
    assert_eq!(
        (status, refusal["code"].as_str()),
        (409, Some("reissue_required"))
    );
    let text = refusal.to_string();
    assert!(
        !text.contains("Alice") && !text.contains(&victim_seat),
        "{text}"
    );
    // 2. The key repository answers only for the right user name.
    let (status, keys) = server
        .post(
            "/api/v1/keys/lookup",
            &json!({"key_file": key_file, "device_id": "victim-1", "user_name": "Mallory"}),
        )
        .await;
    assert_eq!(
        (status, keys["keys"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // 3. Even with the right name, a repeat answer carries no return token.
    let (status, repeat) = server.activate(&key_file, "victim-1", "Alice").await;
    assert_eq!(status, 200);
    assert!(repeat.get("return_token").is_none(), "{repeat}");
    // 4. So a return needs the token the attacker never saw.
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{victim_seat}/return"),
            &json!({"return_token": "guessed"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_return_token"))
    );
    // 5. The seat stays with its device, and the license is full for the attacker's.
    let (_, state) = server
        .get(&format!("/api/v1/activations/{victim_seat}"))
        .await;
    assert_eq!(state["state"], "active");

    // A victim that registered a device key: the seat answers only to that key.
    let victim_key = device_key(1);
    let attacker_key = device_key(2);
    let (status, keyed) =
        activate_with_key(&server, &key_file, "victim-2", "Bob", &victim_key).await;
    assert_eq!(status, 201, "{keyed}");
    assert!(
        keyed.get("return_token").is_none(),
        "no token for a keyed seat: {keyed}"
    );
    let seat = keyed["seat"].as_str().unwrap().to_owned();
    let (status, body) =
        activate_with_key(&server, &key_file, "victim-2", "Bob", &attacker_key).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_key_mismatch"))
    );
    let (status, body) = server.activate(&key_file, "victim-2", "Bob").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("device_key_mismatch")),
        "a repeat without the key is refused too"
    );
    let aud = server_id(&env);
    let forged = Proof {
        key: &attacker_key,
        device: "victim-2",
        aud: &aud,
        seat: &seat,
        action: ProofAction::Return,
        user_name: None,
        jti: "forged-proof-0001",
        iat: now(),
    }
    .sign();
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{seat}/return"),
            &json!({"proof": forged}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_device_proof"))
    );
    let (status, body) = server
        .post(
            &format!("/api/v1/activations/{seat}/return"),
            &json!({"return_token": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_device_proof"))
    );
    let (_, state) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!(state["state"], "active", "the seat stays with its device");
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 2);
    let (status, body) = server.activate(&key_file, "attacker", "Mallory").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seats_exhausted"))
    );
}
both_backends!(seat_takeover_fails_at_every_step, takeover);

/// A device with a key reissues and returns with proofs; stale and replayed proofs are
/// refused and change nothing.
async fn proofs(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-P", 2);
    let server = env.serve().await;
    let key = device_key(9);
    let (status, first) = activate_with_key(&server, &key_file, "dev-p", "Ada", &key).await;
    assert_eq!(status, 201, "{first}");
    let seat = first["seat"].as_str().unwrap().to_owned();
    let aud = server_id(&env);
    let proof = |action, user_name, jti, iat| {
        Proof {
            key: &key,
            device: "dev-p",
            aud: &aud,
            seat: &seat,
            action,
            user_name,
            jti,
            iat,
        }
        .sign()
    };
    let reissue = |proof: String, name: &str| json!({"proof": proof, "user_name": name});
    let path = format!("/api/v1/activations/{seat}/reissue");

    let stale = proof(
        ProofAction::Reissue,
        Some("Grace"),
        "stale-proof-00001",
        now() - 6 * 60,
    );
    let (status, body) = server.post(&path, &reissue(stale, "Grace")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_device_proof")),
        "{body}"
    );
    // A proof dated in the future past the window is refused as well (iat either way).
    let future = proof(
        ProofAction::Reissue,
        Some("Grace"),
        "future-proof-0001",
        now() + 6 * 60,
    );
    let (status, body) = server.post(&path, &reissue(future, "Grace")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_device_proof")),
        "a proof from the future: {body}"
    );
    let wrong_name = proof(
        ProofAction::Reissue,
        Some("Eve"),
        "wrong-name-000001",
        now(),
    );
    let (status, _) = server.post(&path, &reissue(wrong_name, "Grace")).await;
    assert_eq!(status, 401, "the proof binds the new name");

    let good = proof(
        ProofAction::Reissue,
        Some("Grace"),
        "good-proof-000001",
        now(),
    );
    let (status, renamed) = server.post(&path, &reissue(good.clone(), "Grace")).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["generation"], 2);
    assert!(renamed.get("return_token").is_none());
    let (status, body) = server.post(&path, &reissue(good, "Grace")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_device_proof")),
        "a replayed proof is refused"
    );

    let ret = proof(ProofAction::Return, None, "return-proof-0001", now());
    let return_path = format!("/api/v1/activations/{seat}/return");
    let (status, body) = server
        .post(&return_path, &json!({"proof": ret.clone()}))
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("returned")),
        "{body}"
    );
    let (status, _) = server.post(&return_path, &json!({"proof": ret})).await;
    assert_eq!(status, 401, "replayed");
    let (status, body) = server
        .post(
            &return_path,
            &json!({"proof": "a.b.c", "return_token": "t"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 0);
    env.db.assert_journal_gapless();
}
both_backends!(device_proofs_reissue_and_return, proofs);

/// Returning a seat and activating again under a new name is a name change.
async fn return_and_reactivate(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut claims = env.claims("LIC-R", 1);
    claims.policy.reissue_limit = 1;
    let key_file = env.sign(&claims);
    let path = env.write("r.seatkey", &key_file);
    env.cli_ok(&["keyfile", "import", path.to_str().unwrap()]);
    let server = env.serve().await;
    let name_of_round = |round: usize| format!("user-{round}");
    let (status, first) = server.activate(&key_file, "dev-r", &name_of_round(0)).await;
    assert_eq!(status, 201);
    let mut token = first["return_token"].as_str().unwrap().to_owned();
    let seat = first["seat"].as_str().unwrap().to_owned();
    // One round is allowed (the limit is 1), the second is a name change too many.
    for round in 1..=2 {
        let (status, body) = server
            .post(
                &format!("/api/v1/activations/{seat}/return"),
                &json!({"return_token": token}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = server
            .activate(&key_file, "dev-r", &name_of_round(round))
            .await;
        if round == 1 {
            assert_eq!(status, 201, "{body}");
            token = body["return_token"].as_str().unwrap().to_owned();
        } else {
            assert_eq!(
                (status, body["code"].as_str()),
                (429, Some("reissue_limit_reached")),
                "{body}"
            );
        }
    }
    assert_eq!(
        env.db.scalar("SELECT in_use AS v FROM licenses"),
        0,
        "the refusal took no seat"
    );
    // The previous name is still fine.
    assert_eq!(server.activate(&key_file, "dev-r", "user-1").await.0, 201);
    env.db.assert_journal_gapless();
}
both_backends!(
    return_then_reactivate_counts_as_a_reissue,
    return_and_reactivate
);

/// Seat ids that cannot be valid (NUL, not UTF-8, wrong shape) are refused before the
/// database, as 404 on both backends, and log nothing above WARN.
async fn impossible_seat_ids(backend: Backend) {
    let env = TestEnv::new(backend);
    let server = env.serve().await;
    let bad = [
        "%00",
        "st_AAAAAAAAAAAAAAAAAAAA%00A",
        "%FF%FE",
        "st_%C3%28AAAAAAAAAAAAAAAAAAAA",
        "xx_AAAAAAAAAAAAAAAAAAAAAA",
        "st_short",
    ];
    for seat in bad {
        let (status, body) = server.get(&format!("/api/v1/activations/{seat}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("unknown_seat")),
            "GET {seat}"
        );
        for action in ["reissue", "return"] {
            let (status, body) = server
                .post(
                    &format!("/api/v1/activations/{seat}/{action}"),
                    &json!({"return_token": "t", "user_name": "u"}),
                )
                .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (404, Some("unknown_seat")),
                "{action} {seat}"
            );
        }
        // A metered packet request (DESIGN §10.3) names the seat in its path too.
        let response = server
            .http
            .post(format!("{}/api/v1/activations/{seat}/packets", server.url))
            .header("Content-Type", "application/jose")
            .body("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("unknown_seat")),
            "packets {seat}: {body}"
        );
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
}
both_backends!(
    impossible_seat_ids_are_404_before_the_database,
    impossible_seat_ids
);

/// Bad `device_jwk`, seat changes with neither or both of token and proof, and a lookup
/// without a user name: each gets its clear 400 and writes nothing.
async fn bad_device_key_inputs(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-BAD", 2);
    let server = env.serve().await;
    let audit_before = env.db.count("audit_log", "");
    let small_order = seatkeep_device::jws::b64url(&{
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    });
    let bad_keys = [
        json!({"kty": "RSA", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": small_order}),
    ];
    for jwk in bad_keys {
        let (status, body) = server
            .post(
                "/api/v1/activations",
                &json!({"key_file": key_file, "device_id": "dev-b", "user_name": "Ada", "device_jwk": jwk}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str(), body["field"].as_str()),
            (400, Some("invalid_request"), Some("device_jwk")),
            "{jwk}: {body}"
        );
    }
    let (_, first) = server.activate(&key_file, "dev-ok", "Ada").await;
    let seat = first["seat"].as_str().unwrap().to_owned();
    let token = first["return_token"].as_str().unwrap().to_owned();
    for (path, body) in [
        (format!("/api/v1/activations/{seat}/return"), json!({})),
        (
            format!("/api/v1/activations/{seat}/reissue"),
            json!({"user_name": "Grace"}),
        ),
        (
            format!("/api/v1/activations/{seat}/reissue"),
            json!({"user_name": "Grace", "return_token": token, "proof": "a.b.c"}),
        ),
    ] {
        let (status, answer) = server.post(&path, &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_request")),
            "{path} {body}: {answer}"
        );
        assert!(
            answer["detail"].as_str().unwrap().contains("return_token"),
            "says what to send: {answer}"
        );
    }
    let (status, answer) = server
        .post(
            "/api/v1/keys/lookup",
            &json!({"key_file": key_file, "device_id": "dev-ok"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request")),
        "{answer}"
    );
    assert_eq!(env.db.count("seats", ""), 1, "only dev-ok's seat");
    assert_eq!(
        env.db.count("audit_log", ""),
        audit_before + 1,
        "only its activation"
    );
    let (_, state) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!(state["state"], "active");
}
both_backends!(
    bad_device_key_inputs_get_clear_errors,
    bad_device_key_inputs
);

/// `seatkeep device activate` whose answer is lost (the proxy cuts the connection after the
/// request reached the server): the seat exists with the device's key, so the client must
/// have kept that key; the same command again is answered 200 with the same seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_activation_answer_keeps_the_device_key() {
    use std::sync::atomic::Ordering;
    let env = TestEnv::new(Backend::Sqlite);
    let key_file = env.import_license("LIC-LOST", 2);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = crate::chaos_proxy::ChaosProxy::start(port);
    let out_file = env.path("dev-lost.json");
    let via_proxy = format!("http://127.0.0.1:{}", proxy.port);
    let activate = {
        let (via_proxy, key_path, out_file) =
            (via_proxy.clone(), key_path.clone(), out_file.clone());
        move || {
            crate::helpers::run(&[
                "device",
                "activate",
                "--server",
                &via_proxy,
                "--key-file",
                key_path.to_str().unwrap(),
                "--device-id",
                "dev-lost",
                "--user",
                "Ada",
                "--out",
                out_file.to_str().unwrap(),
            ])
        }
    };
    let secret = |path: &std::path::Path| -> String {
        let saved: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        saved["device_secret_key"].as_str().unwrap().to_owned()
    };
    proxy.answers.store(false, Ordering::SeqCst);
    let lost = tokio::task::spawn_blocking(activate.clone()).await.unwrap();
    assert!(
        !lost.status.success(),
        "the answer was lost: {}",
        String::from_utf8_lossy(&lost.stdout)
    );
    assert_eq!(
        env.db.count("seats", "state = 'active'"),
        1,
        "the request reached the server"
    );
    let kept = secret(&out_file);

    proxy.answers.store(true, Ordering::SeqCst);
    let again = tokio::task::spawn_blocking(activate.clone()).await.unwrap();
    assert!(
        again.status.success(),
        "the retry takes up the seat: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(secret(&out_file), kept, "the same device key");
    let saved: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert!(
        saved["seat"].as_str().is_some_and(|s| s.starts_with("st_")),
        "{saved}"
    );
    assert_eq!(env.db.count("seats", ""), 1, "no second seat");
}

/// A 502 from a proxy in front of the server says nothing about the seat (the server may
/// have taken it): the client keeps the key pair it sent, and a later run against the server
/// sends the same key. A 4xx refusal (a key file that is no key file: 400) drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_gateway_keeps_the_device_key() {
    use std::io::{Read, Write};
    let env = TestEnv::new(Backend::Sqlite);
    let key_file = env.import_license("LIC-502", 2);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    // A gateway that answers every request with 502.
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway_url = format!("http://{}", gateway.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in gateway.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 16384];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let out_file = env.path("dev-502.json");
    let activate = |url: &str, key: &std::path::Path| {
        crate::helpers::run(&[
            "device",
            "activate",
            "--server",
            url,
            "--key-file",
            key.to_str().unwrap(),
            "--device-id",
            "dev-502",
            "--user",
            "Ada",
            "--out",
            out_file.to_str().unwrap(),
        ])
    };
    let secret = |path: &std::path::Path| -> String {
        let saved: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        saved["device_secret_key"].as_str().unwrap().to_owned()
    };
    let bad_gateway = activate(&gateway_url, &key_path);
    assert!(!bad_gateway.status.success());
    assert!(
        String::from_utf8_lossy(&bad_gateway.stderr).contains("502"),
        "{}",
        String::from_utf8_lossy(&bad_gateway.stderr)
    );
    let kept = secret(&out_file);
    let done = activate(&server.url, &key_path);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(secret(&out_file), kept, "the key sent through the gateway");

    // A refusal took no seat: the pending file of that run goes.
    let refused_out = env.path("dev-400.json");
    let not_a_key_file = env.write("junk.seatkey", "not a key file");
    let refused = crate::helpers::run(&[
        "device",
        "activate",
        "--server",
        &server.url,
        "--key-file",
        not_a_key_file.to_str().unwrap(),
        "--device-id",
        "dev-400",
        "--user",
        "Ada",
        "--out",
        refused_out.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(!refused_out.exists(), "a 4xx refusal keeps no pending file");
}

/// Anyone who knows a seat id can send bad proofs: they must not lock the real device out.
/// After ten bad proofs (over the lockout's five) a good one still reissues and returns,
/// and nothing is stored for the bad ones; a seat without a key still locks on bad tokens.
async fn bad_proofs_lock_nobody_out(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-NOLOCK", 2);
    let server = env.serve().await;
    let key = device_key(11);
    let (status, first) = activate_with_key(&server, &key_file, "dev-k", "Ada", &key).await;
    assert_eq!(status, 201, "{first}");
    let seat = first["seat"].as_str().unwrap().to_owned();
    let aud = server_id(&env);
    let attacker = device_key(12);
    let sign = |key: &SigningKey, action, user_name, jti: &str| {
        Proof {
            key,
            device: "dev-k",
            aud: &aud,
            seat: &seat,
            action,
            user_name,
            jti,
            iat: now(),
        }
        .sign()
    };
    let reissue_path = format!("/api/v1/activations/{seat}/reissue");
    let return_path = format!("/api/v1/activations/{seat}/return");
    for i in 0..10 {
        let forged = sign(
            &attacker,
            ProofAction::Reissue,
            Some("Eve"),
            &format!("forged-proof-{i:05}"),
        );
        let (status, body) = server
            .post(&reissue_path, &json!({"proof": forged, "user_name": "Eve"}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_device_proof")),
            "bad proof {i}: {body}"
        );
        let (status, _) = server
            .post(&return_path, &json!({"return_token": "guess"}))
            .await;
        assert_eq!(status, 401, "a token for a seat with a key {i}");
    }
    assert_eq!(env.db.count("auth_failures", ""), 0, "no row per bad proof");
    let good = sign(
        &key,
        ProofAction::Reissue,
        Some("Grace"),
        "real-device-00001",
    );
    let (status, body) = server
        .post(&reissue_path, &json!({"proof": good, "user_name": "Grace"}))
        .await;
    assert_eq!(status, 200, "the real device reissues: {body}");
    let good = sign(&key, ProofAction::Return, None, "real-device-00002");
    let (status, body) = server.post(&return_path, &json!({"proof": good})).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("returned")),
        "the real device returns: {body}"
    );

    // The token path keeps its lockout.
    let (status, other) = server.activate(&key_file, "dev-t", "Bob").await;
    assert_eq!(status, 201, "{other}");
    let token_path = format!(
        "/api/v1/activations/{}/return",
        other["seat"].as_str().unwrap()
    );
    for _ in 0..5 {
        let (status, _) = server
            .post(&token_path, &json!({"return_token": "not-the-token"}))
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = server
        .post(&token_path, &json!({"return_token": other["return_token"]}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
}
both_backends!(
    bad_device_proofs_never_lock_out_the_device,
    bad_proofs_lock_nobody_out
);
