//! Key files: import, inspect, renewals, every bad input of issue 3, and a file signed by an
//! independent JWS implementation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use seatkeep::jws;
use seatkeep::keyfile;
use seatkeep::signing::{KeyType, SigningKey};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, KID, TestEnv};

/// Signs any header and payload JSON with a key (for files the provider CLI would refuse).
fn sign_raw(header: &Value, payload: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    keyfile::armor(&jws::assemble(&input, &signature))
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "seatkeep-keyfile+jwt", "kid": kid})
}

/// Flips one bit of the decoded part `index` (0 header, 1 payload, 2 signature).
fn flip_bit(armored: &str, index: usize) -> String {
    let compact = keyfile::dearmor(armored.as_bytes()).unwrap();
    let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[index]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    parts[index] = URL_SAFE_NO_PAD.encode(bytes);
    keyfile::armor(&parts.join("."))
}

fn tables_empty(env: &TestEnv) {
    env.cli_ok(&["migrate"]);
    for table in ["licenses", "key_files", "audit_log", "seats"] {
        assert_eq!(env.db.count(table, ""), 0, "{table} must stay empty");
    }
}

/// Every malformed, forged or unsuitable key file is refused with a clear reason, and
/// nothing is written.
async fn bad_key_files(backend: Backend) {
    let env = TestEnv::new(backend);
    env.cli_ok(&["migrate"]);
    let key = env.provider_signing_key();
    let claims = env.claims("LIC-BAD", 5);
    let good = env.sign(&claims);
    let payload = serde_json::to_value(&claims).unwrap();
    let untrusted =
        SigningKey::from_pem(KeyType::Ed25519.generate_pem().unwrap().as_bytes(), None).unwrap();
    let public_pem = std::fs::read(&env.provider_pub).unwrap();
    let hs256 = {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header("HS256", KID).to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&public_pem).unwrap();
        mac.update(input.as_bytes());
        keyfile::armor(&format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    };
    let unsigned = keyfile::armor(&format!(
        "{}.{}.AA",
        URL_SAFE_NO_PAD
            .encode(json!({"alg": "none", "typ": "seatkeep-keyfile+jwt", "kid": KID}).to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    ));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut p = payload.clone();
        f(&mut p);
        sign_raw(&header("EdDSA", KID), &p, &key)
    };
    let now = seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime);
    let mut other_server = env.claims("LIC-BAD", 5);
    let other_key =
        SigningKey::from_pem(KeyType::Ed25519.generate_pem().unwrap().as_bytes(), None).unwrap();
    other_server.server = keyfile::server_claim(other_key.spki_der());

    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "flipped bit in payload".into(),
            flip_bit(&good, 1).into_bytes(),
            "signature is invalid",
        ),
        (
            "flipped bit in signature".into(),
            flip_bit(&good, 2).into_bytes(),
            "signature is invalid",
        ),
        (
            "signed by an untrusted key".into(),
            sign_raw(&header("EdDSA", KID), &payload, &untrusted).into_bytes(),
            "signature is invalid",
        ),
        (
            "alg none".into(),
            unsigned.into_bytes(),
            "alg 'none' is not allowed",
        ),
        (
            "HS256 with the public key as secret".into(),
            hs256.into_bytes(),
            "alg 'HS256' is not allowed",
        ),
        (
            "alg other than the pinned one".into(),
            sign_raw(&header("RS256", KID), &payload, &key).into_bytes(),
            "alg 'RS256' is not allowed for key",
        ),
        (
            "unknown kid".into(),
            sign_raw(&header("EdDSA", "someone-else"), &payload, &key).into_bytes(),
            "unknown key 'someone-else'",
        ),
        (
            "wrong typ".into(),
            sign_raw(
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": KID}),
                &payload,
                &key,
            )
            .into_bytes(),
            "typ must be",
        ),
        (
            "exp as a string".into(),
            with(&|p| p["exp"] = json!("99999999999")).into_bytes(),
            "invalid type: string",
        ),
        (
            "seats as a string".into(),
            with(&|p| p["seats"] = json!("5")).into_bytes(),
            "invalid type: string",
        ),
        (
            "seats 0".into(),
            with(&|p| p["seats"] = json!(0)).into_bytes(),
            "seats: must be an integer ≥ 1",
        ),
        (
            // Nothing from a key file may reach an email header (issue 10).
            "CR/LF in customer.name".into(),
            with(&|p| p["customer"]["name"] = json!("Acme\r\nBcc: evil@x.example")).into_bytes(),
            "customer.name: must be at most",
        ),
        (
            "seats negative".into(),
            with(&|p| p["seats"] = json!(-3)).into_bytes(),
            "seats: must be an integer ≥ 1",
        ),
        (
            "metered without meter terms".into(),
            with(&|p| p["model"] = json!("metered")).into_bytes(),
            "meter: is required for a metered license",
        ),
        (
            "meter terms on a node-locked license".into(),
            with(&|p| p["meter"] = json!({"unit": "device_hour", "units": 100})).into_bytes(),
            "meter: is only for metered licenses",
        ),
        (
            "metered: no units".into(),
            with(&|p| {
                p["model"] = json!("metered");
                p["meter"] = json!({"unit": "device_hour", "units": 0});
            })
            .into_bytes(),
            "meter.units: must be between 1 and",
        ),
        (
            "metered: unknown unit".into(),
            with(&|p| {
                p["model"] = json!("metered");
                p["meter"] = json!({"unit": "device_week", "units": 10});
            })
            .into_bytes(),
            "unknown variant `device_week`",
        ),
        (
            "metered: packet min above max".into(),
            with(&|p| {
                p["model"] = json!("metered");
                p["meter"] =
                    json!({"unit": "device_day", "units": 10, "packet": {"min": 50, "max": 10}});
            })
            .into_bytes(),
            "meter.packet: must have min",
        ),
        (
            "metered: packet_ttl of a minute".into(),
            with(&|p| {
                p["model"] = json!("metered");
                p["meter"] = json!({"unit": "device_day", "units": 10, "packet_ttl": 60});
            })
            .into_bytes(),
            "meter.packet_ttl: must be between",
        ),
        (
            "metered: overdraft over 100 %".into(),
            with(&|p| {
                p["model"] = json!("metered");
                p["meter"] = json!({"unit": "device_day", "units": 10, "overdraft_percent": 150});
            })
            .into_bytes(),
            "meter.overdraft_percent: must be between 0 and 100",
        ),
        (
            "seq 0".into(),
            with(&|p| p["seq"] = json!(0)).into_bytes(),
            "seq: must be an integer ≥ 1",
        ),
        (
            "exp in the past".into(),
            with(&|p| p["exp"] = json!(now - 3600)).into_bytes(),
            "license expired",
        ),
        (
            "nbf in the future".into(),
            with(&|p| p["nbf"] = json!(now + 3600)).into_bytes(),
            "not valid before",
        ),
        (
            "wrong issuer".into(),
            with(&|p| p["iss"] = json!("impostor.example")).into_bytes(),
            "issuer 'impostor.example' does not match",
        ),
        (
            "bound to another server".into(),
            env.sign(&other_server).into_bytes(),
            "bound to another server",
        ),
        (
            "server.key not matching server.id".into(),
            with(&|p| {
                p["server"]["key"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(other_key.spki_der()))
            })
            .into_bytes(),
            "server.key does not match",
        ),
        (
            "broken armor".into(),
            good.replace("-----END SEATKEEP KEY FILE-----", "-----END KEY-----")
                .into_bytes(),
            "armor",
        ),
        (
            "trailing garbage".into(),
            format!("{good}trailing garbage\n").into_bytes(),
            "unexpected data after",
        ),
        ("empty file".into(), Vec::new(), "the file is empty"),
        (
            "10 MiB file".into(),
            vec![b'A'; 10 * 1024 * 1024],
            "too large",
        ),
        (
            "not UTF-8".into(),
            vec![0xff, 0xfe, 0x00, 0x41],
            "not UTF-8",
        ),
        (
            "not a JWS".into(),
            b"hello.world".to_vec(),
            "not a compact JWS",
        ),
    ];
    for claim in [
        "iss", "jti", "lic", "seq", "iat", "customer", "product", "model", "seats", "admins",
        "server",
    ] {
        cases.push((
            format!("missing claim {claim}"),
            with(&|p| {
                p.as_object_mut().unwrap().remove(claim);
            })
            .into_bytes(),
            "missing field",
        ));
    }
    for (name, bytes, expected) in cases {
        let path = env.write("bad.seatkey", &bytes);
        let err = env.cli_err(&["keyfile", "import", path.to_str().unwrap()]);
        assert!(
            err.contains(expected),
            "{name}: expected '{expected}' in: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        let err = env.cli_err(&["keyfile", "inspect", path.to_str().unwrap()]);
        assert!(
            err.contains(expected),
            "inspect {name}: expected '{expected}' in: {err}"
        );
    }
    tables_empty(&env);
}
both_backends!(
    bad_key_files_are_refused_and_nothing_is_written,
    bad_key_files
);

/// Import, identical re-import (no-op), renewal, stale files.
async fn renewals(backend: Backend) {
    let env = TestEnv::new(backend);
    let mut claims = env.claims("LIC-RENEW", 5);
    let first = env.write("v1.seatkey", env.sign(&claims));
    let out = env.cli_ok(&["keyfile", "import", first.to_str().unwrap()]);
    assert!(
        out.contains("imported license LIC-RENEW (seq 1, 5 seats)"),
        "{out}"
    );
    let out = env.cli_ok(&["keyfile", "import", first.to_str().unwrap()]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(env.db.count("key_files", ""), 1);
    assert_eq!(env.db.count("audit_log", ""), 1);

    // Same seq, other content: stale.
    claims.seats = 6;
    let same_seq = env.write("v1b.seatkey", env.sign(&claims));
    let err = env.cli_err(&["keyfile", "import", same_seq.to_str().unwrap()]);
    assert!(
        err.contains("stale key file") && err.contains("seq 1"),
        "{err}"
    );

    // Higher seq: renewal replaces seats and term.
    claims.seq = 2;
    claims.seats = 10;
    claims.exp =
        Some(seatkeep::clock::TimeSource::now(&seatkeep::clock::SystemTime) + 2 * 365 * 86400);
    let second = env.write("v2.seatkey", env.sign(&claims));
    let out = env.cli_ok(&["keyfile", "import", second.to_str().unwrap()]);
    assert!(
        out.contains("renewed license LIC-RENEW to seq 2 (10 seats"),
        "{out}"
    );
    assert_eq!(env.db.scalar("SELECT seats AS v FROM licenses"), 10);
    assert_eq!(env.db.scalar("SELECT seq AS v FROM licenses"), 2);

    // The old file again: known bytes, no-op; a new lower-seq file: stale.
    let out = env.cli_ok(&["keyfile", "import", first.to_str().unwrap()]);
    assert!(out.contains("unchanged"), "{out}");
    claims.seq = 1;
    claims.seats = 50;
    let lower = env.write("v1c.seatkey", env.sign(&claims));
    let err = env.cli_err(&["keyfile", "import", lower.to_str().unwrap()]);
    assert!(err.contains("stale"), "{err}");
    assert_eq!(env.db.count("key_files", ""), 2);
    assert_eq!(env.db.scalar("SELECT seats AS v FROM licenses"), 10);

    // A renewal may not turn the license into another product.
    claims.seq = 3;
    claims.product.id = "other-product".into();
    let other = env.write("v3.seatkey", env.sign(&claims));
    let err = env.cli_err(&["keyfile", "import", other.to_str().unwrap()]);
    assert!(err.contains("changes the product"), "{err}");

    // inspect prints the claims, --json too.
    let out = env.cli_ok(&["keyfile", "inspect", second.to_str().unwrap()]);
    assert!(
        out.contains("LIC-RENEW") && out.contains("10 seats"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&env.cli_ok(&[
        "--json",
        "keyfile",
        "inspect",
        second.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(json["claims"]["seq"], 2);
    let listed: Value = serde_json::from_str(&env.cli_ok(&["--json", "licenses", "list"])).unwrap();
    assert_eq!(listed[0]["id"], "LIC-RENEW");
}
both_backends!(imports_renewals_and_stale_files, renewals);

/// Several trusted keys at once (rotation), an RSA provider key, and the provider CLI.
#[test]
fn provider_cli_with_rotated_rsa_key() {
    let env = TestEnv::new(Backend::Sqlite);
    let out = crate::helpers::run_ok(&[
        "provider",
        "keygen",
        "--out",
        env.path("provider").to_str().unwrap(),
        "--kid",
        "rsa-2027",
        "--algorithm",
        "rsa-2048",
        "--provider",
        crate::helpers::PROVIDER,
    ]);
    assert!(
        out.contains("[[provider.trusted_keys]]") && out.contains("RS256"),
        "{out}"
    );
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!(
        "\n[[provider.trusted_keys]]\nkid = \"rsa-2027\"\nprovider = \"{}\"\nalgorithm = \"PS256\"\npublic_key_file = \"provider/rsa-2027.pub.pem\"\n",
        crate::helpers::PROVIDER
    ));
    std::fs::write(&env.config, config).unwrap();
    let claims_file = env.write(
        "claims.toml",
        "iss = \"provider.test\"\nlic = \"LIC-RSA\"\nmodel = \"node_locked\"\nseats = 3\nadmins = [\"a@b.example\"]\n\
         [customer]\nid = \"c\"\nname = \"C\"\n[product]\nid = \"p\"\nname = \"P\"\n",
    );
    let out_file = env.path("rsa.seatkey");
    let issue = |alg: &str| {
        crate::helpers::run(&[
            "provider",
            "issue",
            "--key",
            env.path("provider/rsa-2027.pem").to_str().unwrap(),
            "--kid",
            "rsa-2027",
            "--algorithm",
            alg,
            "--claims",
            claims_file.to_str().unwrap(),
            "--server-key",
            env.server_pub.to_str().unwrap(),
            "--expires-in",
            "30d",
            "--out",
            out_file.to_str().unwrap(),
        ])
    };
    // RS256 is not the algorithm pinned for this kid.
    assert!(issue("RS256").status.success());
    let err = env.cli_err(&["keyfile", "import", out_file.to_str().unwrap()]);
    assert!(
        err.contains("alg 'RS256' is not allowed for key 'rsa-2027' (pinned: PS256)"),
        "{err}"
    );
    assert!(issue("PS256").status.success());
    let out = env.cli_ok(&["keyfile", "import", out_file.to_str().unwrap()]);
    assert!(out.contains("imported license LIC-RSA"), "{out}");
    // The first key still works alongside.
    env.import_license("LIC-ED", 2);
    assert_eq!(env.db.count("licenses", ""), 2);
}

/// A key file made by another language's JWS library imports; altering any one claim of it
/// after signing breaks it.
#[test]
fn key_file_from_an_independent_implementation() {
    let python = std::env::var("SEATKEEP_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SEATKEEP_TEST_PYTHON is not set: run the suite with tests/run (it installs PyJWT)")
    });
    let env = TestEnv::new(Backend::Sqlite);
    let claims = serde_json::to_value(env.claims("LIC-PY", 7)).unwrap();
    let claims_path = env.write("py-claims.json", claims.to_string());
    let out_path = env.path("py.seatkey");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/tools/independent_sign.py"
    );
    let status = std::process::Command::new(python)
        .args([
            script,
            "--key",
            env.provider_key.to_str().unwrap(),
            "--kid",
            KID,
            "--alg",
            "EdDSA",
            "--claims",
            claims_path.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
            "--wrap",
            "76",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "independent signer failed");
    let text = std::fs::read_to_string(&out_path).unwrap();

    let compact = keyfile::dearmor(text.as_bytes()).unwrap();
    let (head, rest) = compact.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let object = claims.as_object().unwrap();
    for field in object.keys() {
        let mut altered = claims.clone();
        altered[field.as_str()] = match &claims[field.as_str()] {
            Value::Number(n) => json!(n.as_i64().unwrap() + 1),
            Value::String(s) => json!(format!("{s}x")),
            Value::Array(_) => json!(["someone@else.example"]),
            Value::Object(_) => json!({"id": "x", "name": "y", "key": "z"}),
            other => other.clone(),
        };
        let forged = keyfile::armor(&format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(altered.to_string())
        ));
        let path = env.write("forged.seatkey", forged);
        let err = env.cli_err(&["keyfile", "import", path.to_str().unwrap()]);
        assert!(
            err.contains("signature is invalid"),
            "altered {field}: {err}"
        );
    }
    env.cli_ok(&["migrate"]);
    assert_eq!(env.db.count("licenses", ""), 0);
    let out = env.cli_ok(&["keyfile", "import", out_path.to_str().unwrap()]);
    assert!(
        out.contains("imported license LIC-PY (seq 1, 7 seats)"),
        "{out}"
    );
}

/// `admin add` and `admin passwd`: Argon2id hashes, clear refusals, nothing written on error.
#[test]
fn admin_accounts() {
    let env = TestEnv::new(Backend::Sqlite);
    let password = env.write("pw.txt", "correct horse battery staple\n");
    let short = env.write("short.txt", "short");
    let pw = password.to_str().unwrap();
    let out = env.cli_ok(&[
        "admin",
        "add",
        "alice",
        "--role",
        "owner",
        "--password-file",
        pw,
    ]);
    assert!(out.contains("admin 'alice' added as owner"), "{out}");
    let hash_prefix = env.db.count("admins", "password_hash LIKE '$argon2id$%'");
    assert_eq!(hash_prefix, 1, "stored as an Argon2id PHC string");
    let err = env.cli_err(&[
        "admin",
        "add",
        "alice",
        "--role",
        "viewer",
        "--password-file",
        pw,
    ]);
    assert!(err.contains("admin 'alice' already exists"), "{err}");
    let err = env.cli_err(&[
        "admin",
        "add",
        "bob",
        "--role",
        "admin",
        "--password-file",
        short.to_str().unwrap(),
    ]);
    assert!(err.contains("at least 12 characters"), "{err}");
    let err = env.cli_err(&[
        "admin",
        "add",
        "bad name",
        "--role",
        "admin",
        "--password-file",
        pw,
    ]);
    assert!(err.contains("admin name"), "{err}");
    let err = env.cli_err(&["admin", "passwd", "nobody", "--password-file", pw]);
    assert!(err.contains("no admin 'nobody'"), "{err}");
    assert_eq!(env.db.count("admins", ""), 1);
    let new_password = env.write("pw2.txt", "another long passphrase");
    env.cli_ok(&[
        "admin",
        "passwd",
        "alice",
        "--password-file",
        new_password.to_str().unwrap(),
    ]);
    assert_eq!(env.db.count("audit_log", "action LIKE 'admin.%'"), 2);
    // Without a file or terminal, a password is generated and shown once.
    let out = env.cli_ok(&["admin", "add", "carol", "--role", "viewer"]);
    assert!(out.contains("password (shown once): "), "{out}");
}
