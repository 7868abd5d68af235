//! The license page's actions over HTTP, on both backends: the seat export serves the bytes
//! of `seatkeep export seats` (role admin), and revocation and reinstatement (role owner)
//! refuse the devices and let them back, audited with the admin's name. Refused requests
//! change nothing.

use crate::both_backends;
use crate::console_support::{add_admin, sign_in};
use crate::helpers::{Backend, TestEnv};

const LIC: &str = "LIC-ACTIONS";

async fn license_actions(backend: Backend) {
    let env = TestEnv::new(backend);
    add_admin(&env, "alice", "admin");
    add_admin(&env, "victor", "viewer");
    add_admin(&env, "olga", "owner");
    let key_file = env.import_license(LIC, 5);
    let server = env.serve().await;
    for (device, user) in [("dev-1", "=HYPERLINK(\"x\")"), ("dev-2", "Bob")] {
        assert_eq!(server.activate(&key_file, device, user).await.0, 201);
    }
    let alice = sign_in(&server, "alice").await;
    let victor = sign_in(&server, "victor").await;
    let olga = sign_in(&server, "olga").await;
    let page = format!("/console/licenses/{LIC}");
    let export = format!("{page}/seats.export?format=csv&state=all");

    // The export: the CLI's bytes (the formula cell neutralised), for admins only.
    let cli = env.cli_ok(&["export", "seats", "--license", LIC, "--state", "all"]);
    let (status, csv) = alice.get(&export).await;
    assert_eq!(status, 200);
    assert_eq!(csv, cli);
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    let (status, json) = alice
        .get(&format!("{page}/seats.export?format=json&state=active"))
        .await;
    assert_eq!(status, 200);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(victor.get(&export).await.0, 403);
    assert_eq!(
        alice
            .get(&format!("{page}/seats.export?format=xml"))
            .await
            .0,
        400
    );
    assert_eq!(
        alice.get("/console/licenses/NO-SUCH/seats.export").await.0,
        404
    );

    // Only the owner sees and may use revoke; an admin's forged request changes nothing.
    let (_, html) = alice.get(&page).await;
    assert!(html.contains("id=\"export-csv\"") && !html.contains("id=\"revoke\""));
    let (_, html) = victor.get(&page).await;
    assert!(!html.contains("id=\"export-csv\""));
    let audit_before = env.db.count("audit_log", "");
    let revoke = format!("{page}/revoke");
    let forged = alice
        .post(&revoke, &[("csrf", alice.csrf.as_str()), ("reason", "x")])
        .await;
    assert_eq!(forged.0, 403);
    let no_reason = olga
        .post(&revoke, &[("csrf", olga.csrf.as_str()), ("reason", " ")])
        .await;
    assert_eq!(no_reason.0, 400);
    assert!(
        no_reason.1.contains("reason is required"),
        "{}",
        no_reason.1
    );
    let no_csrf = olga.post(&revoke, &[("reason", "unpaid")]).await;
    assert_eq!(no_csrf.0, 403);
    assert_eq!(env.db.count("audit_log", ""), audit_before);
    assert_eq!(env.db.count("licenses", "status = 'revoked'"), 0);

    // The owner revokes: devices are refused, the audit log names her and the reason.
    let (status, html) = olga
        .post(
            &revoke,
            &[("csrf", olga.csrf.as_str()), ("reason", "unpaid invoice")],
        )
        .await;
    assert!(status == 200 || status == 303, "{status}");
    let (_, html_after) = olga.get(&format!("{page}?done=revoked")).await;
    assert!(html_after.contains("License revoked"), "{html}");
    assert!(html_after.contains("id=\"reinstate\""));
    // Revocation is the owner's doing, not a warning emailed: a plain badge.
    assert!(
        html_after.contains("<span class=\"badge bad\">revoked</span>"),
        "{html_after}"
    );
    let (status, body) = server.activate(&key_file, "dev-3", "Cy").await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "license_revoked");
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'license.revoked' AND actor = 'admin:olga' AND detail LIKE '%unpaid invoice%'"
        ),
        1
    );
    // Revoking twice is refused with its reason; nothing more is written.
    let again = olga
        .post(
            &revoke,
            &[("csrf", olga.csrf.as_str()), ("reason", "again")],
        )
        .await;
    assert_eq!(again.0, 400);
    assert!(again.1.contains("already revoked"), "{}", again.1);

    // Reinstated: the held seats work again.
    let (status, _) = olga
        .post(
            &format!("{page}/reinstate"),
            &[("csrf", olga.csrf.as_str())],
        )
        .await;
    assert!(status == 200 || status == 303, "{status}");
    assert_eq!(server.activate(&key_file, "dev-2", "Bob").await.0, 200);
    assert_eq!(
        env.db.count(
            "audit_log",
            "action = 'license.reinstated' AND actor = 'admin:olga'"
        ),
        1
    );

    // Out of seats: the badge links to the notifications the admins were sent.
    for device in ["dev-3", "dev-4", "dev-5"] {
        assert_eq!(server.activate(&key_file, device, "Cy").await.0, 201);
    }
    for path in ["/console", page.as_str()] {
        let (_, html) = victor.get(path).await;
        assert!(
            html.contains("<a class=\"badge bad\" href=\"/console/notifications\""),
            "{path}: {html}"
        );
    }
}
both_backends!(console_license_actions, license_actions);
