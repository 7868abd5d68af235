//! Federation air-gapped and under bad input (DESIGN §7): export, `provider collect
//! --import`, `federation ack`; grace; acks and batches that must not verify; bad URLs and
//! answers.

use std::io::{Read, Write};
use std::path::Path;

use seatkeep::federation::wire::{ACK_TYP, AckClaims, BATCH_TYP, BatchClaims, Event};
use seatkeep::signing::{KeyType, SigningKey};
use seatkeep_device::armor::{Label, armor};
use seatkeep_device::keyfile::Federation;

use crate::both_backends;
use crate::federation_support::{
    MANUAL_PUSH, acked, assert_gapless, import_federated, stored_events, to,
};
use crate::helpers::{Backend, KID, PROVIDER, TestEnv, run};

/// `provider collect --import FILE --ack-out ACKS` for `env`'s provider.
fn collect_import(env: &TestEnv, file: &Path, acks: &Path) -> std::process::Output {
    run(&[
        "provider",
        "collect",
        "--import",
        file.to_str().unwrap(),
        "--ack-out",
        acks.to_str().unwrap(),
        "--data",
        env.path("collector").to_str().unwrap(),
        "--issued",
        env.path("issued").to_str().unwrap(),
        "--key",
        env.provider_key.to_str().unwrap(),
        "--kid",
        KID,
    ])
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn server_id(env: &TestEnv) -> String {
    let spki = pem::parse(std::fs::read(&env.server_pub).unwrap()).unwrap();
    seatkeep::keyfile::server_claim(spki.contents()).id
}

async fn offline_round_trip(backend: Backend) {
    let env = TestEnv::with_config(backend, MANUAL_PUSH);
    let plain = import_federated(&env, "lic-off", 10, 1, None);
    let raw = import_federated(
        &env,
        "lic-raw",
        10,
        1,
        Some(Federation {
            url: "https://provider.example/f".into(),
            grace: None,
            user_data: true,
        }),
    );
    let server = env.serve().await;
    for i in 0..5 {
        assert_eq!(
            server.activate(&plain, &format!("off{i}"), "Ann").await.0,
            201
        );
    }
    assert_eq!(server.activate(&raw, "raw-dev", "Rae").await.0, 201);
    let (f1, f2) = (env.path("f1.txt"), env.path("f2.txt"));
    env.cli_ok(&["federation", "export", "--out", f1.to_str().unwrap()]);
    env.cli_ok(&["federation", "export", "--out", f2.to_str().unwrap()]);
    let (a1, a2) = (env.path("a1.txt"), env.path("a2.txt"));
    ok(&collect_import(&env, &f1, &a1));
    ok(&collect_import(&env, &f2, &a2));
    let held = stored_events(&env.path("collector"));
    let of = |lic: &str| {
        held.iter()
            .filter(|(l, _)| l == lic)
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>()
    };
    assert_gapless(&of("lic-off"), 6);
    assert_gapless(&of("lic-raw"), 2);
    // user_data: raw ids; without it, only the hash.
    assert_eq!(of("lic-raw")[1]["device_id"], "raw-dev");
    assert_eq!(of("lic-raw")[1]["user"], "Rae");
    assert!(of("lic-off")[1].get("device_id").is_none() && of("lic-off")[1].get("user").is_none());
    assert_ne!(of("lic-off")[1]["device"], "off0");
    env.cli_ok(&["federation", "ack", a1.to_str().unwrap()]);
    assert_eq!((acked(&env, "lic-off"), acked(&env, "lic-raw")), (6, 2));
    let again = env.cli_ok(&["federation", "ack", a1.to_str().unwrap()]);
    assert!(again.contains("already acknowledged"), "{again}");
    assert_eq!(server.activate(&plain, "off9", "Ann").await.0, 201);
    let (f3, a3) = (env.path("f3.txt"), env.path("a3.txt"));
    env.cli_ok(&[
        "federation",
        "export",
        "--out",
        f3.to_str().unwrap(),
        "--license",
        "lic-off",
    ]);
    ok(&collect_import(&env, &f3, &a3));
    env.cli_ok(&["federation", "ack", a3.to_str().unwrap()]);
    env.cli_ok(&["federation", "ack", a2.to_str().unwrap()]);
    assert_eq!(
        acked(&env, "lic-off"),
        7,
        "an old ack does not move the mark back"
    );
    let status: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["--json", "federation", "status"])).unwrap();
    assert_eq!(status[0]["license"], "lic-off");
    assert_eq!(status[0]["pending"], 0);
}
both_backends!(offline_round_trip_keeps_one_copy, offline_round_trip);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grace_stops_new_activations_until_the_provider_acknowledges() {
    let env = TestEnv::with_config(Backend::Sqlite, MANUAL_PUSH);
    let fed = Federation {
        url: "http://127.0.0.1:9/closed".into(),
        grace: Some(600),
        user_data: false,
    };
    let key_file = import_federated(&env, "lic-grace", 10, 1, Some(fed));
    let mut server = env.serve().await;
    assert_eq!(server.activate(&key_file, "early", "Ann").await.0, 201);
    server.kill();
    let server = env.serve_at_offset(3600).await;
    let (status, body) = server.activate(&key_file, "late", "Bob").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("federation_overdue")),
        "{body}"
    );
    assert_eq!(env.db.count("seats", "device_id = 'late'"), 0);
    assert_eq!(
        server.activate(&key_file, "early", "Ann").await.0,
        200,
        "repeats still work"
    );
    let (file, acks) = (env.path("g.txt"), env.path("g-acks.txt"));
    env.cli_ok(&["federation", "export", "--out", file.to_str().unwrap()]);
    ok(&collect_import(&env, &file, &acks));
    env.cli_ok(&["federation", "ack", acks.to_str().unwrap()]);
    assert_eq!(server.activate(&key_file, "late", "Bob").await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_waiting_past_alert_after_tell_the_operators_once() {
    let env = TestEnv::with_config(
        Backend::Sqlite,
        &format!(
            "{MANUAL_PUSH}alert_after = \"1h\"\n\n[notify]\noperators = [\"ops@site.example\"]\n"
        ),
    );
    import_federated(&env, "lic-late", 5, 1, None);
    let overdue = "kind = 'federation_overdue'";
    let status: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["--json", "federation", "status"])).unwrap();
    assert_eq!(
        status[0]["alerting"], false,
        "not yet past alert_after: {status}"
    );
    for _ in 0..2 {
        let mut server = env.serve_at_offset(7200).await;
        for _ in 0..100 {
            if env.db.count("notifications", overdue) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server.kill();
    }
    assert_eq!(
        env.db.count("notifications", overdue),
        1,
        "one email per episode"
    );
    assert_eq!(
        env.db.count(
            "notifications",
            "kind = 'federation_overdue' AND recipients LIKE '%ops@site.example%'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_that_do_not_verify_change_nothing() {
    let env = TestEnv::with_config(Backend::Sqlite, MANUAL_PUSH);
    import_federated(&env, "lic-a", 10, 1, None);
    import_federated(&env, "lic-b", 10, 1, None);
    let me = server_id(&env);
    let ack = |key: &SigningKey, sub: &str, lic: &str| {
        key.sign_jws(
            ACK_TYP,
            KID,
            &AckClaims {
                iss: PROVIDER.into(),
                sub: sub.into(),
                lic: lic.into(),
                acked: 1,
                iat: 0,
            },
        )
        .unwrap()
    };
    let stranger =
        SigningKey::from_pem(KeyType::Ed25519.generate_pem().unwrap().as_bytes(), None).unwrap();
    let provider = env.provider_signing_key();
    let armored = |token: &str| {
        format!(
            "-----BEGIN SEATKEEP FEDERATION ACKS-----\n{token}\n-----END SEATKEEP FEDERATION ACKS-----\n"
        )
    };
    let cases = [
        (
            "untrusted key",
            armored(&ack(&stranger, &me, "lic-a")),
            "signature",
        ),
        (
            "another server",
            armored(&ack(&provider, &"0".repeat(64), "lic-a")),
            "for server",
        ),
        (
            "unknown license",
            armored(&ack(&provider, &me, "lic-zz")),
            "unknown license",
        ),
        ("not a JWS", armored("not.a-jws"), "not an ack"),
        (
            "garbage file",
            "hello\n".to_owned(),
            "not a federation acks file",
        ),
    ];
    for (what, text, reason) in cases {
        let path = env.write("bad-ack.txt", text);
        let message = env.cli_err(&["federation", "ack", path.to_str().unwrap()]);
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(
            env.db.count("federation_state", "acked_seq > 0"),
            0,
            "{what}"
        );
    }
    // A good ack next to a bad one: nothing applied.
    let mixed = format!(
        "-----BEGIN SEATKEEP FEDERATION ACKS-----\n{}\n{}\n-----END SEATKEEP FEDERATION ACKS-----\n",
        ack(&provider, &me, "lic-b"),
        ack(&stranger, &me, "lic-a")
    );
    let path = env.write("mixed.txt", mixed);
    env.cli_err(&["federation", "ack", path.to_str().unwrap()]);
    assert_eq!(env.db.count("federation_state", "acked_seq > 0"), 0);
}

fn event(seq: i64) -> Event {
    Event {
        seq,
        kind: "seat.activated".into(),
        at: 0,
        seat: Some("s".into()),
        device: Some("d".into()),
        device_id: None,
        user: None,
        in_use: 1,
        seats: 10,
        overage: false,
        key_file_seq: 1,
        channel: None,
        usage: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_batches_are_refused_and_nothing_is_stored() {
    let env = TestEnv::new(Backend::Sqlite);
    import_federated(&env, "lic-f", 10, 1, None);
    let me = server_id(&env);
    let server_key =
        SigningKey::from_pem(&std::fs::read(env.path("server-key.pem")).unwrap(), None).unwrap();
    let other =
        SigningKey::from_pem(KeyType::Ed25519.generate_pem().unwrap().as_bytes(), None).unwrap();
    let batch = |key: &SigningKey, lic: &str, first: i64| {
        let claims = BatchClaims {
            iss: me.clone(),
            lic: lic.into(),
            iat: 0,
            events: vec![event(first), event(first + 1)],
        };
        key.sign_jws(BATCH_TYP, &me, &claims).unwrap()
    };
    let good = batch(&server_key, "lic-f", 1);
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        ("bad signature", tampered, "signature"),
        (
            "another server's key",
            batch(&other, "lic-f", 1),
            "signature",
        ),
        ("seq gap", batch(&server_key, "lic-f", 3), "past"),
        (
            "license not issued to it",
            batch(&server_key, "lic-other", 1),
            "not issued",
        ),
        ("not a JWS", "garbage".into(), "not a compact JWS"),
    ];
    for (what, token, reason) in cases {
        let file = env.write(
            "forged.txt",
            format!(
                "-----BEGIN SEATKEEP FEDERATION-----\n{token}\n-----END SEATKEEP FEDERATION-----\n"
            ),
        );
        let message = err(&collect_import(&env, &file, &env.path("acks.txt")));
        assert!(message.contains(reason), "{what}: {message}");
        assert!(
            stored_events(&env.path("collector")).is_empty(),
            "{what}: stored"
        );
    }
    let garbage = env.write("garbage.txt", "not armor\n");
    assert!(
        err(&collect_import(&env, &garbage, &env.path("acks.txt")))
            .contains("not a federation file")
    );
}

/// A one-shot HTTP answerer on a free port: reads a request, then does `answer`.
fn answering(answer: fn(&mut std::net::TcpStream)) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            answer(&mut stream);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_bad_answers_are_refused_clearly() {
    let env = TestEnv::with_config(Backend::Sqlite, MANUAL_PUSH);
    // Plain http to a non-loopback host: refused at import, nothing stored.
    let mut claims = env.claims("lic-http", 5);
    claims.federation = to("http://provider.example/f");
    // Signed as-is: `provider issue` itself refuses such claims.
    let token = env
        .provider_signing_key()
        .sign_jws("seatkeep-keyfile+jwt", KID, &claims)
        .unwrap();
    let path = env.write("http.seatkey", armor(Label::KeyFile, &token));
    let message = env.cli_err(&["keyfile", "import", path.to_str().unwrap()]);
    assert!(
        message.contains("plain http is allowed only to a loopback host"),
        "{message}"
    );
    assert_eq!(env.db.count("licenses", "1=1"), 0);
    let garbage = answering(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/jose\r\nContent-Length: 9\r\n\r\nnot a jws");
    });
    let huge = answering(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/jose\r\n\r\n");
        let _ = s.write_all(&vec![b'a'; 2 << 20]);
    });
    let slow = answering(|_| std::thread::sleep(std::time::Duration::from_secs(8)));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (lic, port) in [
        ("lic-garbage", garbage),
        ("lic-huge", huge),
        ("lic-slow", slow),
        ("lic-unreachable", closed),
    ] {
        import_federated(&env, lic, 5, 1, to(&format!("http://127.0.0.1:{port}/f")));
    }
    let out = env.cli(&["federation", "flush"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{report}");
    for (lic, reason) in [
        ("lic-garbage", "not an ack"),
        ("lic-huge", "answer larger than"),
        ("lic-slow", "timed out"),
        ("lic-unreachable", "FAILED"),
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(lic))
            .unwrap_or_default();
        assert!(
            line.contains("FAILED") && line.contains(reason),
            "{lic}: {report}"
        );
    }
    assert_eq!(env.db.count("federation_state", "acked_seq > 0"), 0);
    assert_eq!(
        env.db.count("federation_state", "last_error IS NOT NULL"),
        4
    );
}
