//! The console in a real browser (headless Chromium over WebDriver) against the real
//! `seatkeep serve`, on both backends: counts match the database, search → seat → retire
//! with a reason (the device API says retired, the freed seat goes to the next device, the
//! audit page names the admin), a renewal through the upload form, a viewer without action
//! buttons, hostile user names shown as text, login throttling, idle expiry and logout.
//! Screenshots of every page go to `$CARGO_TARGET_TMPDIR/console-screenshots/`.

use crate::both_backends;
use crate::console_support::{Browser, PASSWORD, add_admin, browser, plain_client};
use crate::helpers::{Backend, TestEnv, TestServer};

const LIC: &str = "LIC-CONSOLE";
const XSS: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

async fn console_in_a_browser(backend: Backend) {
    let label = format!("{backend:?}").to_lowercase();
    let Some(b) = browser(&label).await else {
        return;
    };
    let env = TestEnv::new(backend);
    add_admin(&env, "alice", "admin");
    add_admin(&env, "victor", "viewer");
    add_admin(&env, "olga", "owner");
    let key_file = env.import_license(LIC, 3);
    let mut server = env.serve().await;
    let base = server.url.clone();
    for (device, user) in [("dev-1", "Ada"), ("dev-2", "Grace"), ("dev-3", XSS)] {
        assert_eq!(server.activate(&key_file, device, user).await.0, 201);
    }

    // Signed out, the console sends the browser to the login page.
    b.goto(&format!("{base}/")).await;
    assert_eq!(b.path().await, "/console/login");
    b.shot("login").await;
    b.sign_in(&base, "alice", PASSWORD).await;
    assert_eq!(b.path().await, "/console");
    let in_use = env.db.scalar(&format!(
        "SELECT in_use AS v FROM licenses WHERE id = '{LIC}'"
    ));
    assert_eq!(in_use, 3);
    let row = format!("tr[data-license='{LIC}'] span.usage");
    assert_eq!(b.text(&row).await, format!("{in_use} / 3"));
    assert!(
        b.text(&format!("tr[data-license='{LIC}'] .badges"))
            .await
            .contains("exhausted")
    );
    b.shot("dashboard").await;

    // The license page: the same numbers, the hostile name as text, no dialog.
    b.click(&format!("tr[data-license='{LIC}'] a.license-link"))
        .await;
    assert_eq!(b.text("#in-use").await, "3");
    let seats = env.db.count("seats", &format!("license_id = '{LIC}'"));
    assert_eq!(
        b.text("#seat-count").await,
        format!("{seats} matching seats")
    );
    let names: Vec<String> = futures::future::join_all(
        b.client
            .find_all(fantoccini::Locator::Css("td.user-name"))
            .await
            .unwrap()
            .iter()
            .map(|e| e.text()),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert!(names.iter().any(|n| n == XSS), "{names:?}");
    assert!(!b.dialog_open().await);
    b.shot("license").await;

    // Search a device, open it, retire it with a reason.
    b.fill("#q", "dev-2").await;
    b.click("#search").await;
    assert_eq!(b.text("#seat-count").await, "1 matching seats");
    b.click("a.seat-link").await;
    let seat = b.text("#seat-id").await;
    b.shot("seat").await;
    b.click("#retire").await;
    b.fill("#reason", "laptop stolen").await;
    b.shot("seat-retire").await;
    b.click("#confirm-retire").await;
    assert_eq!(b.text("#seat-state").await, "retired");
    let (status, body) = server.get(&format!("/api/v1/activations/{seat}")).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("retired")));
    assert_eq!(
        env.db.scalar(&format!(
            "SELECT in_use AS v FROM licenses WHERE id = '{LIC}'"
        )),
        2
    );
    assert_eq!(
        server.activate(&key_file, "dev-4", "Linus").await.0,
        201,
        "the freed seat"
    );
    b.goto(&format!("{base}/console/audit?action=seat.retired"))
        .await;
    let actor = b.text("#entries td.actor").await;
    assert_eq!(actor, "admin:alice");
    assert!(b.text("#entries td.detail").await.contains("laptop stolen"));
    b.shot("audit").await;

    // The hostile name on its seat page: text, no dialog.
    let xss_seat = env
        .db
        .scalar_text("SELECT id AS v FROM seats WHERE device_id = 'dev-3'");
    b.goto(&format!("{base}/console/seats/{xss_seat}")).await;
    assert_eq!(b.text("#user-name").await, XSS);
    assert!(!b.dialog_open().await);

    // A renewal through the upload form: preview, confirm, the dashboard shows 5 seats.
    let mut claims = env.claims(LIC, 5);
    claims.seq = 2;
    let renewal = env.write("renewal.seatkey", env.sign(&claims));
    b.goto(&format!("{base}/console/import")).await;
    b.shot("import").await;
    b.client
        .find(fantoccini::Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(renewal.to_str().unwrap())
        .await
        .unwrap();
    b.click("#preview-import").await;
    assert!(
        b.text("#effect").await.contains("3 → 5 seats"),
        "{}",
        b.text("#effect").await
    );
    assert_eq!(
        env.db.scalar(&format!(
            "SELECT seats AS v FROM licenses WHERE id = '{LIC}'"
        )),
        3,
        "preview stores nothing"
    );
    b.shot("import-preview").await;
    b.click("#confirm-import").await;
    assert_eq!(b.path().await, "/console");
    assert_eq!(b.text(&row).await, "3 / 5");
    b.goto(&format!("{base}/console/notifications")).await;
    b.shot("notifications").await;
    b.goto(&format!("{base}/console/account")).await;
    b.shot("account").await;

    // Logout ends the session on the server: the old cookie opens nothing.
    let old_cookie = b.session_cookie().await.expect("signed in");
    b.click("#logout").await;
    assert_eq!(b.path().await, "/console/login");
    let replay = plain_client()
        .get(format!("{base}/console"))
        .header("Cookie", format!("seatkeep_console={old_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);

    // A viewer sees no action buttons.
    b.sign_in(&base, "victor", PASSWORD).await;
    assert!(!b.exists("a[href='/console/import']").await);
    b.goto(&format!("{base}/console/seats/{xss_seat}")).await;
    assert!(!b.exists("#retire").await);
    b.goto(&format!("{base}/console/notifications")).await;
    assert!(!b.exists("button.retry").await);
    b.click("#logout").await;

    // The owner's pages.
    b.sign_in(&base, "olga", PASSWORD).await;
    b.goto(&format!("{base}/console/admins")).await;
    assert!(b.exists("tr[data-admin='alice']").await);
    b.shot("admins").await;
    b.click("#logout").await;

    throttled_then_free(&b, &env, &mut server).await;
    b.quit().await;
}

/// Six wrong passwords: 429 and no cookie, then the right one is refused too; after the
/// window (the server restarted 16 minutes later) it works; 31 idle minutes later the
/// session is gone.
async fn throttled_then_free(b: &Browser, env: &TestEnv, server: &mut TestServer) {
    for attempt in 1..=6 {
        b.sign_in(&server.url, "victor", "wrong password!").await;
        let flash = b.text("#flash").await;
        if attempt < 6 {
            assert!(
                flash.contains("Wrong user name or password"),
                "{attempt}: {flash}"
            );
        } else {
            assert!(flash.contains("Too many failed sign-ins"), "{flash}");
        }
        assert_eq!(b.session_cookie().await, None);
    }
    b.shot("login-throttled").await;
    b.sign_in(&server.url, "victor", PASSWORD).await;
    assert!(b.text("#flash").await.contains("Too many failed sign-ins"));
    assert_eq!(b.session_cookie().await, None);
    assert_eq!(
        env.db.count("login_failures", "username = 'victor'"),
        5,
        "the throttled tries are not failures"
    );

    server.terminate();
    *server = env.serve_at_offset(16 * 60).await;
    b.sign_in(&server.url, "victor", PASSWORD).await;
    assert_eq!(b.path().await, "/console");
    // Sessions live in the database: a restart keeps this one.
    server.terminate();
    *server = env.serve_at_offset(16 * 60).await;
    b.goto(&format!("{}/console", server.url)).await;
    assert_eq!(b.path().await, "/console");
    // The idle timeout (30 min by default) passes.
    server.terminate();
    *server = env.serve_at_offset(16 * 60 + 31 * 60).await;
    b.goto(&format!("{}/console", server.url)).await;
    assert_eq!(b.path().await, "/console/login");
    assert_eq!(env.db.count("console_sessions", ""), 0);
}

both_backends!(console_browser, console_in_a_browser);
