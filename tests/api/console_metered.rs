//! The console's metered pages over HTTP, on both backends: a metered license shows its pool
//! (figures, a gauge, units issued per day drawn on the server), a seat shows its packets and
//! what its device reported, and the Offline page (role admin) fulfils an uploaded request
//! file and hands back the response file — the same bytes again for the same file, nothing
//! charged twice. Refused files answer 413 `request_too_large` / 400 `invalid_request_file`
//! and change nothing.

use std::path::Path;

use crate::both_backends;
use crate::console_support::{add_admin, sign_in};
use crate::helpers::{Backend, TestEnv, run};
use crate::metered::{import, metered_key_file};
use crate::metered_client::{activate, json, usage};
use crate::offline::request_activation;

const LIC: &str = "LIC-POOL";

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// What a refused upload must leave alone.
fn state(env: &TestEnv) -> (i64, i64, i64, i64, i64) {
    (
        env.db.count("audit_log", ""),
        env.db.count("seats", ""),
        env.db.count("meter_packets", ""),
        env.db.count("offline_exchanges", ""),
        env.db.scalar(&format!(
            "SELECT meter_issued AS v FROM licenses WHERE id = '{LIC}'"
        )),
    )
}

/// The text of the element with `id` in `html` (the first one), tags stripped.
fn by_id(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in the page: {html}"));
    let open_end = start + html[start..].find('>').unwrap() + 1;
    let mut depth = 0usize;
    let mut text = String::new();
    let mut rest = &html[open_end..];
    loop {
        let lt = rest.find('<').unwrap();
        text.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if rest.starts_with("</") {
            if depth == 0 {
                return text.trim().to_owned();
            }
            depth -= 1;
        } else if !rest.starts_with("<br") {
            depth += 1;
        }
        rest = &rest[rest.find('>').unwrap() + 1..];
    }
}

async fn console_metered_pages(backend: Backend) {
    let env = TestEnv::new(backend);
    add_admin(&env, "alice", "admin");
    add_admin(&env, "victor", "viewer");
    let key_file = metered_key_file(&env, LIC, 1, 3, 1000);
    import(&env, "pool.seatkey", &key_file);
    let key_path = env.write("site.seatkey", &key_file);
    // A seat license beside it: its page has no pool.
    env.import_license("LIC-SEATS", 5);
    let server = env.serve().await;

    // dev-1 registers and gets two packets (24 and 5 units) through the reference client.
    let saved_path = env.path("dev-1.device.json");
    let saved = p(&saved_path);
    activate(&server, &key_path, "dev-1", saved);
    assert_eq!(json(&usage(&env, saved, "request", &[]))["status"], 201);
    assert_eq!(
        json(&usage(&env, saved, "request", &["--units", "5"]))["status"],
        201
    );
    let seat = env.db.scalar_text(&format!(
        "SELECT id AS v FROM seats WHERE license_id = '{LIC}'"
    ));

    let alice = sign_in(&server, "alice").await;
    let victor = sign_in(&server, "victor").await;

    // The license page: the pool's figures, a gauge, and today's bar in the daily chart.
    let (status, page) = victor.get(&format!("/console/licenses/{LIC}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(by_id(&page, "pool-issued"), "29");
    assert_eq!(by_id(&page, "pool-units"), "1000");
    assert_eq!(by_id(&page, "pool-available"), "971");
    assert_eq!(by_id(&page, "pool-cap"), "1000");
    assert_eq!(by_id(&page, "pool-packets"), "2");
    assert_eq!(by_id(&page, "pool-flagged"), "0");
    assert!(
        page.contains("aria-label=\"29 of 1000 device_hour issued\""),
        "the gauge: {page}"
    );
    let today = seatkeep::console::view::time(seatkeep::clock::TimeSource::now(
        &seatkeep::clock::SystemTime,
    ))[..10]
        .to_owned();
    let daily = by_id(&page, "chart-units-30d");
    assert!(
        page.contains(&format!("<title>{today}: 29</title>")),
        "today's bar in {daily}"
    );
    assert!(page.contains("id=\"chart-units-12m\""));
    let (_, seats_page) = victor.get("/console/licenses/LIC-SEATS").await;
    assert!(!seats_page.contains("id=\"pool\""), "{seats_page}");

    // The seat page: its packets, newest first, and what the device reported: its second
    // request reported packet 1 applied.
    let (status, page) = victor.get(&format!("/console/seats/{seat}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(by_id(&page, "seat-packets"), "2");
    assert_eq!(by_id(&page, "seat-issued"), "29");
    assert_eq!(by_id(&page, "seat-reported-seq"), "1");
    assert_eq!(by_id(&page, "seat-flag"), "none");
    let table = &page[page.find("id=\"packets-table\"").unwrap()..];
    let (second, first) = (
        table.find("<td class=\"num\">2</td>").unwrap(),
        table.find("<td class=\"num\">1</td>").unwrap(),
    );
    assert!(second < first, "newest first: {table}");
    assert_eq!(table.matches(">signed<").count(), 2, "{table}");
    // The seat license's seats have no usage section.
    let (_, body) = server
        .activate(&env.sign(&env.claims("LIC-SEATS", 5)), "pc-1", "Bo")
        .await;
    let (_, page) = victor
        .get(&format!(
            "/console/seats/{}",
            body["seat"].as_str().unwrap()
        ))
        .await;
    assert!(!page.contains("id=\"seat-usage\""), "{page}");

    // The Offline page is for admins: a viewer neither sees it in the menu nor uses it.
    assert_eq!(victor.get("/console/offline").await.0, 403);
    let (_, menu) = victor.get("/console").await;
    assert!(!menu.contains("href=\"/console/offline\""));
    let (status, form) = alice.get("/console/offline").await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("id=\"offline-form\""));

    // An air-gapped device's activation request: uploaded, fulfilled as admin:alice; the
    // response file downloads and completes the device's activation.
    let (request, offline_saved) = (env.path("dev-2.req"), env.path("dev-2.device.json"));
    request_activation(&key_path, "dev-2", &offline_saved, &request);
    let request_bytes = std::fs::read(&request).unwrap();
    let (status, _) = victor.upload_to("/console/offline", &request_bytes).await;
    assert_eq!(status, 403);
    let (status, result) = alice.upload_to("/console/offline", &request_bytes).await;
    assert_eq!(status, 200, "{result}");
    assert!(result.contains("<tr class=\"answered\">"), "{result}");
    assert!(!result.contains("id=\"replayed\""));
    let link_start = result.find("/console/offline/").unwrap();
    let link = &result[link_start..link_start + result[link_start..].find('"').unwrap()];
    assert!(link.ends_with("/response"), "{link}");
    let download = alice
        .http
        .get(format!("{}{link}", server.url))
        .header("Cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"seatkeep-response-"),
    );
    let response = download.bytes().await.unwrap().to_vec();
    assert!(response.starts_with(b"-----BEGIN SEATKEEP RESPONSE-----"));
    assert_eq!(
        env.db.count(
            "audit_log",
            &format!(
                "action = 'seat.activated' AND actor = 'admin:alice' AND license_id = '{LIC}'"
            )
        ),
        1
    );
    let response_path = env.write("dev-2.resp", &response);
    let applied = json(&run(&[
        "--json",
        "device",
        "offline-apply",
        p(&response_path),
        "--saved",
        p(&offline_saved),
        "--provider-key",
        p(&env.provider_pub),
    ]));
    assert!(
        applied
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "device_key"),
        "{applied}"
    );

    // The same file again: the stored response, the same bytes, nothing new.
    let before = state(&env);
    let (status, again) = alice.upload_to("/console/offline", &request_bytes).await;
    assert_eq!(status, 200, "{again}");
    assert!(again.contains("id=\"replayed\""), "{again}");
    assert_eq!(
        by_id(&again, "response-text"),
        by_id(&result, "response-text"),
        "the same response on the page"
    );
    let (_, downloaded) = alice.get(link).await;
    assert_eq!(downloaded.as_bytes(), response.as_slice());
    assert_eq!(state(&env), before);

    // Refused files, each with its code's status and message, nothing changed.
    let mut too_large = b"-----BEGIN SEATKEEP REQUEST-----\n".to_vec();
    too_large.resize(16 * 1024 + 1, b'a');
    let not_armor = b"hello, this is not a request file".to_vec();
    for (file, status, words) in [
        (too_large, 413, "request_too_large"),
        (not_armor, 400, "invalid_request_file"),
        (b"   \n".to_vec(), 400, "Choose a request file"),
    ] {
        let (got, body) = alice.upload_to("/console/offline", &file).await;
        assert_eq!(got, status, "{body}");
        assert!(body.contains(words), "{words}: {body}");
        assert_eq!(state(&env), before);
    }
    // Without the form's CSRF token: 403, nothing run.
    let forged = crate::console_support::HttpSession {
        csrf: "forged".into(),
        ..alice.clone()
    };
    let (status, body) = forged.upload_to("/console/offline", &request_bytes).await;
    assert_eq!(status, 403, "{body}");
    // An unknown or malformed exchange: 404.
    for bad in ["0".repeat(64), "not-a-digest".into(), "A".repeat(64)] {
        let (status, _) = alice.get(&format!("/console/offline/{bad}/response")).await;
        assert_eq!(status, 404, "{bad}");
    }
    assert_eq!(victor.get(link).await.0, 403);
    assert_eq!(state(&env), before);
    env.db.assert_journal_gapless();
}

both_backends!(console_metered, console_metered_pages);

/// The same pages in headless Chromium: the pool's gauge and chart drawn, a seat's packets,
/// and the Offline page fulfilling a request file chosen in the file input.
async fn metered_console_in_a_browser(backend: Backend) {
    use fantoccini::Locator;
    let label = format!("metered-{backend:?}").to_lowercase();
    let Some(b) = crate::console_support::browser(&label).await else {
        return;
    };
    let env = TestEnv::new(backend);
    add_admin(&env, "alice", "admin");
    let key_file = metered_key_file(&env, LIC, 1, 3, 100);
    import(&env, "pool.seatkey", &key_file);
    let key_path = env.write("site.seatkey", &key_file);
    let server = env.serve().await;
    let base = server.url.clone();
    let saved_path = env.path("dev-1.device.json");
    activate(&server, &key_path, "dev-1", p(&saved_path));
    assert_eq!(
        json(&usage(&env, p(&saved_path), "request", &[]))["status"],
        201
    );
    let request = env.path("dev-2.req");
    request_activation(&key_path, "dev-2", &env.path("dev-2.device.json"), &request);

    b.sign_in(&base, "alice", crate::console_support::PASSWORD)
        .await;
    b.goto(&format!("{base}/console/licenses/{LIC}")).await;
    assert_eq!(b.text("#pool-issued").await, "24");
    assert_eq!(b.text("#pool-available").await, "76");
    assert!(b.exists("#pool svg.usage rect.fill").await);
    assert_eq!(
        b.client
            .find_all(Locator::Css("#chart-units-30d rect.bar"))
            .await
            .unwrap()
            .len(),
        30
    );
    b.shot("metered-license").await;
    b.click("a.seat-link").await;
    assert_eq!(b.text("#seat-packets").await, "1");
    assert_eq!(b.text("#seat-issued").await, "24");
    b.shot("metered-seat").await;

    b.click("a[href='/console/offline']").await;
    b.client
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(p(&request))
        .await
        .unwrap();
    b.click("#fulfil").await;
    let shot = b.shot("offline").await;
    assert!(
        b.exists("#offline-lines tr.answered").await,
        "{}: {}",
        b.text("#offline-lines").await,
        shot.display()
    );
    assert!(
        b.text("#response-text")
            .await
            .starts_with("-----BEGIN SEATKEEP RESPONSE-----")
    );
    assert_eq!(
        env.db.count(
            "seats",
            &format!("license_id = '{LIC}' AND device_id = 'dev-2'")
        ),
        1
    );
    b.quit().await;
}

both_backends!(console_metered_browser, metered_console_in_a_browser);
