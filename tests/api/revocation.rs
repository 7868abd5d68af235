//! `licenses revoke|reinstate`: every device request of a revoked license answers 403
//! `license_revoked`, a seat's state reads `revoked`, reinstating gives the seats back, both
//! are audited; bad calls change nothing.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv};

async fn revoke_and_reinstate(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-R", 3);
    let server = env.serve().await;
    let (status, first) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(status, 201, "{first}");
    let seat = first["seat"].as_str().unwrap().to_owned();
    let token = first["return_token"].as_str().unwrap().to_owned();
    let audit_before = env.db.count("audit_log", "");

    // Bad calls: one clear line each, nothing changed.
    for (args, says) in [
        (
            vec!["licenses", "revoke", "LIC-R", "--reason", "  "],
            "reason must not be empty",
        ),
        (
            vec!["licenses", "revoke", "LIC-NONE", "--reason", "x"],
            "no license 'LIC-NONE'",
        ),
        (
            vec!["licenses", "reinstate", "LIC-R"],
            "license LIC-R is not revoked",
        ),
    ] {
        let err = env.cli_err(&args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let long = "x".repeat(501);
    env.cli_err(&["licenses", "revoke", "LIC-R", "--reason", &long]);
    assert_eq!(env.db.count("audit_log", ""), audit_before);
    assert_eq!(env.db.count("licenses", "status = 'active'"), 1);

    let out = env.cli_ok(&["licenses", "revoke", "LIC-R", "--reason", "contract ended"]);
    assert!(out.contains("LIC-R is revoked"), "{out}");
    let err = env.cli_err(&["licenses", "revoke", "LIC-R", "--reason", "again"]);
    assert!(err.contains("already revoked"), "{err}");
    assert_eq!(env.db.count("audit_log", ""), audit_before + 1);

    // Every device request is refused; the seat reads revoked but is kept.
    let (status, body) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("license_revoked")),
        "{body}"
    );
    let (status, body) = server.activate(&key_file, "dev-2", "Bob").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("license_revoked")),
        "{body}"
    );
    let reissue = format!("/api/v1/activations/{seat}/reissue");
    let (status, body) = server
        .post(
            &reissue,
            &json!({"return_token": token, "user_name": "Ada L."}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("license_revoked")),
        "{body}"
    );
    let give_back = format!("/api/v1/activations/{seat}/return");
    let (status, body) = server
        .post(&give_back, &json!({"return_token": token}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("license_revoked")),
        "{body}"
    );
    let lookup = json!({"key_file": key_file, "device_id": "dev-1", "user_name": "Ada"});
    let (status, body) = server.post("/api/v1/keys/lookup", &lookup).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("license_revoked")),
        "{body}"
    );
    let (status, body) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("revoked")),
        "{body}"
    );
    assert_eq!(env.db.count("seats", "state = 'active'"), 1);
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 1);

    let listed: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["--json", "licenses", "list"])).unwrap();
    assert_eq!(listed[0]["status"], "revoked");
    assert_eq!(listed[0]["admins"], json!(["buyer@customer.example"]));

    // Reinstated: the same seat and key again, and changes work.
    let out = env.cli_ok(&["licenses", "reinstate", "LIC-R"]);
    assert!(out.contains("LIC-R is active"), "{out}");
    let (status, again) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["seat"], first["seat"]);
    assert_eq!(again["device_key"], first["device_key"]);
    let (status, body) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("active")),
        "{body}"
    );
    let (status, body) = server
        .post(&give_back, &json!({"return_token": token}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Audited, numbered in the license's journal.
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'license.revoked' AND actor = 'cli' AND license_id = 'LIC-R' \
             AND detail LIKE '%contract ended%' AND license_seq IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'license.reinstated' AND actor = 'cli'"
        ),
        1
    );
    let shown = env.cli_ok(&["licenses", "show", "LIC-R"]);
    assert!(shown.contains("license.revoked"), "{shown}");
    env.db.assert_journal_gapless();
}
both_backends!(revoke_then_reinstate, revoke_and_reinstate);
