//! The reference device client: `device activate` against the real server, then
//! `device verify` offline with only the provider's public key.

use crate::helpers::{Backend, TestEnv, run};

fn verify(
    env: &TestEnv,
    device_key: &std::path::Path,
    device_id: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "device",
        "verify",
        "--provider-key",
        env.provider_pub.to_str().unwrap(),
        "--device-key",
        device_key.to_str().unwrap(),
        "--device-id",
        device_id,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

async fn activate_and_verify(rsa_server_key: bool) {
    let env = TestEnv::new(Backend::Sqlite);
    if rsa_server_key {
        run(&[
            "init",
            "--data-dir",
            env.dir.path().to_str().unwrap(),
            "--force",
            "--algorithm",
            "rsa-2048",
        ]);
    }
    let key_file = env.import_license("LIC-DEV", 1);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let out_file = env.path("dev-1.json");
    let out = run(&[
        "device",
        "activate",
        "--server",
        &server.url,
        "--key-file",
        key_path.to_str().unwrap(),
        "--device-id",
        "dev-1",
        "--user",
        "Ada Lovelace",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ok = verify(&env, &out_file, "dev-1", &["--user", "Ada Lovelace"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("valid"));

    let refuse = |output: std::process::Output, expected: &str| {
        assert!(!output.status.success(), "must be refused ({expected})");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            err.to_lowercase().contains(expected),
            "expected '{expected}' in: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    };
    refuse(verify(&env, &out_file, "dev-2", &[]), "device");
    refuse(
        verify(&env, &out_file, "dev-1", &["--user", "Grace"]),
        "user",
    );

    // The key file altered after signing.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    let mut altered = saved.clone();
    let compact =
        seatkeep::keyfile::dearmor(saved["key_file"].as_str().unwrap().as_bytes()).unwrap();
    let (head, rest) = compact.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    claims["seats"] = serde_json::json!(1000);
    let forged = format!(
        "{head}.{}.{signature}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            claims.to_string()
        )
    );
    altered["key_file"] = serde_json::json!(forged);
    let altered_path = env.write("altered.json", altered.to_string());
    refuse(verify(&env, &altered_path, "dev-1", &[]), "signature");

    // A device key signed by a server key the key file does not name (a rogue server).
    let rogue = seatkeep::identity::ServerIdentity::from_pem(
        seatkeep::signing::KeyType::Ed25519
            .generate_pem()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let (_, device_claims) = {
        let mut parts = saved["device_key"].as_str().unwrap().split('.');
        let _ = parts.next();
        let claims: seatkeep::identity::DeviceKeyClaims = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                parts.next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        ((), claims)
    };
    let rogue_key = rogue.sign_device_key(&device_claims).unwrap();
    let mut rogue_saved = saved.clone();
    rogue_saved["device_key"] = serde_json::json!(rogue_key);
    let rogue_path = env.write("rogue.json", rogue_saved.to_string());
    refuse(verify(&env, &rogue_path, "dev-1", &[]), "chain");

    // A bare device key file plus --key-file works too.
    let bare = env.write("bare.jwt", saved["device_key"].as_str().unwrap());
    let ok = verify(
        &env,
        &bare,
        "dev-1",
        &["--key-file", key_path.to_str().unwrap()],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The second device of this 1-seat license is refused with the code on stderr.
    let out = run(&[
        "device",
        "activate",
        "--server",
        &server.url,
        "--key-file",
        key_path.to_str().unwrap(),
        "--device-id",
        "dev-2",
        "--user",
        "Bob",
        "--out",
        env.path("dev-2.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("seats_exhausted"));
    assert!(!env.path("dev-2.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_then_verify_offline_ed25519() {
    activate_and_verify(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_then_verify_offline_rsa_server_key() {
    activate_and_verify(true).await;
}

/// The reference client registers a device key by default, so its seat is changed only with
/// proofs: `device reissue` and `device return` sign them from the saved file, and a copy of
/// the saved file without the key (what an attacker could guess) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reissues_and_returns_with_its_device_key() {
    let env = TestEnv::new(Backend::Sqlite);
    let key_file = env.import_license("LIC-KEY", 1);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let saved = env.path("dev-k.json");
    let activate = |extra: &[&str]| {
        let mut args = vec![
            "device",
            "activate",
            "--server",
            &server.url,
            "--key-file",
            key_path.to_str().unwrap(),
            "--device-id",
            "dev-k",
            "--user",
            "Ada",
            "--out",
            saved.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(activate(&[]));
    let text = std::fs::read_to_string(&saved).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(file["device_secret_key"].is_string(), "{file}");
    assert!(
        file.get("return_token").is_none(),
        "a keyed seat has no token"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Activating again from the same file keeps the key: a plain repeat.
    assert!(ok(activate(&[])).contains("already active"));

    let saved_arg = saved.to_str().unwrap();
    let out = ok(run(&[
        "device", "reissue", "--saved", saved_arg, "--user", "Grace",
    ]));
    assert!(out.contains("reissued"), "{out}");
    let ok_verify = verify(&env, &saved, "dev-k", &["--user", "Grace"]);
    assert!(
        ok_verify.status.success(),
        "the saved file holds the new key"
    );

    // A copy without the device key cannot return the seat.
    let mut stripped =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&saved).unwrap())
            .unwrap();
    stripped
        .as_object_mut()
        .unwrap()
        .remove("device_secret_key");
    let copy = env.write("copy.json", stripped.to_string());
    let refused = run(&["device", "return", "--saved", copy.to_str().unwrap()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("neither a device key nor a return token"),
        "{err}"
    );
    assert_eq!(
        env.db.scalar("SELECT in_use AS v FROM licenses"),
        1,
        "seat kept"
    );

    let out = ok(run(&["device", "return", "--saved", saved_arg]));
    assert!(out.contains("returned"), "{out}");
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 0);

    // Without a device key the seat takes its return token, kept in the saved file.
    let legacy = env.path("legacy.json");
    let out = run(&[
        "device",
        "activate",
        "--server",
        &server.url,
        "--key-file",
        key_path.to_str().unwrap(),
        "--device-id",
        "dev-legacy",
        "--user",
        "Bob",
        "--out",
        legacy.to_str().unwrap(),
        "--no-device-key",
    ]);
    ok(out);
    let out = ok(run(&[
        "device",
        "return",
        "--saved",
        legacy.to_str().unwrap(),
    ]));
    assert!(out.contains("returned"), "{out}");
}
