//! The console's refusals over plain HTTP, on both backends: CSRF (missing, wrong, another
//! origin, no origin), a viewer's forged admin and owner requests, a 10 MiB upload, garbage,
//! foreign and stale key files, unknown ids, bad form fields, the last owner, short
//! passwords. Each: the status and a clear message, and nothing changed in the database.

use crate::both_backends;
use crate::console_support::{add_admin, sign_in};
use crate::helpers::{Backend, TestEnv};

const LIC: &str = "LIC-HTTP";

/// A fingerprint of everything a refused request must leave alone.
fn state(env: &TestEnv) -> (i64, i64, i64, i64, i64) {
    (
        env.db.count("audit_log", ""),
        env.db.count("seats", "state = 'active'"),
        env.db.count("admins", ""),
        env.db.count("key_files", ""),
        env.db.scalar("SELECT seats AS v FROM licenses"),
    )
}

async fn console_refusals(backend: Backend) {
    let env = TestEnv::new(backend);
    add_admin(&env, "alice", "admin");
    add_admin(&env, "victor", "viewer");
    add_admin(&env, "olga", "owner");
    let key_file = env.import_license(LIC, 3);
    let server = env.serve().await;
    let (_, body) = server.activate(&key_file, "dev-1", "Ada").await;
    let seat = body["seat"].as_str().unwrap().to_owned();
    let alice = sign_in(&server, "alice").await;
    let victor = sign_in(&server, "victor").await;
    let olga = sign_in(&server, "olga").await;
    let before = state(&env);
    let retire = format!("/console/seats/{seat}/retire");

    // Security headers on every page; the stylesheet is cacheable.
    let page = alice
        .http
        .get(format!("{}/console", server.url))
        .header("Cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    let h = page.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let css = alice
        .http
        .get(format!("{}/console/static/console-1.css", server.url))
        .send()
        .await
        .unwrap();
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );

    // CSRF: missing, wrong, another origin, no origin at all.
    let reason = ("reason", "test");
    for (fields, origin) in [
        (vec![reason], Some(server.url.as_str())),
        (
            vec![reason, ("csrf", "forged-token")],
            Some(server.url.as_str()),
        ),
        (
            vec![reason, ("csrf", alice.csrf.as_str())],
            Some("http://evil.example"),
        ),
        (vec![reason, ("csrf", alice.csrf.as_str())], None),
    ] {
        let (status, body) = alice.post_from(&retire, &fields, origin).await;
        assert_eq!(status, 403, "{fields:?} {origin:?}: {body}");
        assert!(body.contains("another site"), "{body}");
        assert_eq!(state(&env), before);
    }

    // A viewer replaying the admin's retire (with the viewer's own token): 403.
    let (status, body) = victor
        .post(&retire, &[reason, ("csrf", &victor.csrf)])
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("your role (viewer)"), "{body}");
    // An admin forging the owner's actions: 403.
    let (status, _) = alice
        .post(
            "/console/admins",
            &[
                ("csrf", &alice.csrf),
                ("username", "mallory"),
                ("role", "owner"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(alice.get("/console/admins").await.0, 403);
    assert_eq!(victor.get("/console/import").await.0, 403);
    assert_eq!(state(&env), before);

    // Bad form fields: an empty or overlong reason, a wrongly typed id or page.
    let (status, body) = alice
        .post(&retire, &[("csrf", &alice.csrf), ("reason", "  ")])
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("reason is required"), "{body}");
    let long = "x".repeat(501);
    let (status, body) = alice
        .post(&retire, &[("csrf", &alice.csrf), ("reason", &long)])
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("longer than 500"), "{body}");
    let (status, body) = alice
        .get(&format!("/console/licenses/{LIC}?page=abc"))
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("page: a number"), "{body}");
    assert_eq!(
        alice
            .post("/console/notifications/abc/retry", &[("csrf", &alice.csrf)])
            .await
            .0,
        404
    );
    assert_eq!(state(&env), before);

    // Unknown ids: 404 pages.
    for path in [
        "/console/licenses/NO-SUCH",
        "/console/seats/st_doesnotexist",
        "/console/no-such-page",
    ] {
        let (status, body) = alice.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("<h1>Not Found</h1>"), "{body}");
    }
    let (status, body) = alice
        .post(
            "/console/seats/st_doesnotexist0000000000/retire",
            &[("csrf", &alice.csrf), ("reason", "gone")],
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = olga
        .post(
            "/console/admins/nobody/role",
            &[("csrf", &olga.csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        alice
            .post("/console/notifications/999/retry", &[("csrf", &alice.csrf)])
            .await
            .0,
        404
    );

    // Uploads: 10 MiB, garbage, not UTF-8, bound to another server, stale.
    let (status, body) = alice.upload(&vec![b'a'; 10 * 1024 * 1024]).await;
    assert_eq!(status, 413);
    assert!(body.contains("larger than 65536 bytes"), "{body}");
    let (status, body) = alice.upload(b"this is not a key file").await;
    assert_eq!(status, 400);
    assert!(body.contains("Refused: key file armor"), "{body}");
    let (status, body) = alice.upload(&[0xff, 0xfe, 0x00, 0x80]).await;
    assert_eq!(status, 400);
    assert!(body.contains("Refused"), "{body}");
    let mut foreign = env.claims("LIC-FOREIGN", 3);
    foreign.server.id = "0".repeat(64);
    let (status, body) = alice.upload(env.sign(&foreign).as_bytes()).await;
    assert_eq!(status, 400);
    assert!(body.contains("server"), "{body}");
    let stale = env.claims(LIC, 9);
    let (status, body) = alice.upload(env.sign(&stale).as_bytes()).await;
    assert_eq!(status, 400);
    assert!(body.contains("stale key file"), "{body}");
    // Confirm re-verifies: a tampered file sent back is refused.
    let (status, body) = alice
        .post(
            "/console/import/confirm",
            &[("csrf", &alice.csrf), ("key_file", "bm90IGEga2V5IGZpbGU")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("Refused"), "{body}");
    assert_eq!(state(&env), before);

    // The last owner stays; short passwords are refused.
    let (status, body) = olga
        .post("/console/admins/olga/remove", &[("csrf", &olga.csrf)])
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("last owner"), "{body}");
    let (status, body) = olga
        .post(
            "/console/admins/olga/role",
            &[("csrf", &olga.csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("last owner"), "{body}");
    let (status, body) = alice
        .post(
            "/console/account/password",
            &[
                ("csrf", &alice.csrf),
                ("current", crate::console_support::PASSWORD),
                ("new", "short"),
                ("again", "short"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("at least 12 characters"), "{body}");
    let (status, body) = alice
        .post(
            "/console/account/password",
            &[
                ("csrf", &alice.csrf),
                ("current", "not my password"),
                ("new", "a long new password"),
                ("again", "a long new password"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("current password is wrong"), "{body}");
    assert_eq!(state(&env), before);

    // Retiring a seat that is no longer active: 409 with the device API's code, as there.
    env.cli_ok(&["seats", "retire", &seat]);
    let after_retire = state(&env);
    let (status, body) = alice
        .post(&retire, &[("csrf", &alice.csrf), ("reason", "twice")])
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not active"), "{body}");
    assert_eq!(state(&env), after_retire);

    // The audit log as CSV, filtered by action.
    let (status, csv) = victor.get("/console/audit.csv?action=seat.activated").await;
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("id,at,actor,action,license,seat,detail\r\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.contains(&format!(
            "\"device\",\"seat.activated\",\"{LIC}\",\"{seat}\""
        )),
        "{csv}"
    );
    let (status, body) = victor.get("/console/audit?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(body.contains("from: a date like"), "{body}");

    // The owner's actions work and are audited as admin:olga; a password change ends the
    // admin's sessions.
    let (status, body) = olga
        .post(
            "/console/admins",
            &[
                ("csrf", &olga.csrf),
                ("username", "newbie"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Password of newbie (shown once"), "{body}");
    let (status, _) = olga
        .post("/console/admins/alice/password", &[("csrf", &olga.csrf)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(alice.get("/console").await.0, 303, "alice's session ended");
    assert_eq!(env.db.count("audit_log", "actor = 'admin:olga'"), 2);
    let (status, _) = olga
        .post("/console/admins/newbie/remove", &[("csrf", &olga.csrf)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(env.db.count("admins", "username = 'newbie'"), 0);
}

both_backends!(console_http, console_refusals);

both_backends!(
    control_characters_are_refused_at_the_console_edge,
    control_characters_at_the_edge
);
/// NUL and other control characters in a console path, search or sign-in name: 404 for a
/// path, 400 for a field, before the database (PostgreSQL refuses NUL in text with an error
/// the server would log and answer 500 to). Nothing in the server log at ERROR.
async fn control_characters_at_the_edge(backend: Backend) {
    let env = TestEnv::new(backend);
    add_admin(&env, "olga", "owner");
    env.import_license(LIC, 3);
    let server = env.serve().await;
    let olga = sign_in(&server, "olga").await;
    let before = state(&env);
    for bad in ["%00", "%01", "%7F", "%C2%85"] {
        for path in [
            format!("/console/licenses/LIC{bad}X"),
            format!("/console/licenses/LIC{bad}X/seats.export"),
            format!("/console/seats/act_{bad}"),
            format!("/console/admins/ol{bad}ga"),
        ] {
            let (status, _) = olga.get(&path).await;
            assert_eq!(status, 404, "GET {path}");
        }
        for path in [
            format!("/console/licenses/LIC{bad}X/revoke"),
            format!("/console/licenses/LIC{bad}X/reinstate"),
            format!("/console/admins/ol{bad}ga/role"),
            format!("/console/admins/ol{bad}ga/remove"),
        ] {
            let (status, _) = olga
                .post(&path, &[("csrf", &olga.csrf), ("role", "viewer")])
                .await;
            assert_eq!(status, 404, "POST {path}");
        }
        let path = format!("/console/licenses/{LIC}?q=a{bad}b");
        let (status, _) = olga.get(&path).await;
        assert_eq!(status, 400, "GET {path}");
    }
    for name in ["\0", "ol\0ga", "a\u{1}b"] {
        let (status, body) = olga
            .post(
                "/console/admins",
                &[("csrf", &olga.csrf), ("username", name), ("role", "viewer")],
            )
            .await;
        assert_eq!(status, 400, "add {name:?}: {body}");
        // Signing in is unauthenticated: a NUL must not reach the throttle's query.
        let response = reqwest::Client::new()
            .post(format!("{}/console/login", server.url))
            .header("Origin", &server.url)
            .form(&[("username", name), ("password", "whatever it is")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "login as {name:?}");
    }
    assert_eq!(state(&env), before, "nothing changed");
    // The search and the pages still work.
    let (status, _) = olga.get(&format!("/console/licenses/{LIC}?q=dev")).await;
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines: {errors:#?}");
}
