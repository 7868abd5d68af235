//! The license page's figures over plain HTTP, on both backends: the usage chart from the
//! journal's seat moves per day (activations two days ago, a return yesterday, an activation
//! today), the exact count of a narrow search, and a search matching more than 1,000 seats,
//! which pages only the first 1,000 and says so.

use futures::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::console_support::{add_admin, sign_in};
use crate::helpers::{Backend, TestEnv};

const LIC: &str = "LIC-LIST";
const DAY: i64 = 86_400;

/// The `(label, value)` of each bar of the chart `id` on `html`, oldest first.
fn bars(html: &str, id: &str) -> Vec<(String, i64)> {
    let start = html
        .find(&format!("<figure id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let figure = &html[start..start + html[start..].find("</figure>").unwrap()];
    figure
        .split("<title>")
        .skip(1)
        .map(|t| {
            let title = &t[..t.find("</title>").unwrap()];
            let (label, value) = title.rsplit_once(": ").unwrap();
            (label.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// `YYYY-MM-DD` of a unix time, as the charts label days.
fn day_label(at: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(at).unwrap());
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

async fn seat_list(backend: Backend) {
    let env = TestEnv::new(backend);
    add_admin(&env, "vera", "viewer");
    let key_file = env.import_license(LIC, 1100);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Two days ago: three seats. Yesterday: one returned. Today: one more.
    let mut first = env.serve_at_offset(-2 * DAY).await;
    let mut tokens = Vec::new();
    for device in ["day-a", "day-b", "day-c"] {
        let (status, body) = first.activate(&key_file, device, "Ada").await;
        assert_eq!(status, 201, "{body}");
        tokens.push((
            body["seat"].as_str().unwrap().to_owned(),
            body["return_token"].as_str().unwrap().to_owned(),
        ));
    }
    first.kill();
    let mut second = env.serve_at_offset(-DAY).await;
    let (seat, token) = &tokens[0];
    let (status, body) = second
        .post(
            &format!("/api/v1/activations/{seat}/return"),
            &json!({ "return_token": token }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    second.kill();
    let server = env.serve().await;
    assert_eq!(server.activate(&key_file, "day-d", "Bo").await.0, 201);

    let vera = sign_in(&server, "vera").await;
    let (status, page) = vera.get(&format!("/console/licenses/{LIC}")).await;
    assert_eq!(status, 200);
    let usage = bars(&page, "chart-usage-30d");
    assert_eq!(usage.len(), 30);
    let last_three: Vec<(String, i64)> = usage[27..].to_vec();
    assert_eq!(
        last_three,
        vec![
            (day_label(now - 2 * DAY), 3),
            (day_label(now - DAY), 2),
            (day_label(now), 3),
        ],
        "seats in use at the end of each day"
    );
    assert!(usage[..27].iter().all(|(_, v)| *v == 0), "{usage:?}");
    assert_eq!(bars(&page, "chart-usage-12m").last().unwrap().1, 3);
    assert_eq!(
        env.db.scalar(&format!(
            "SELECT CAST(SUM(taken) - SUM(freed) AS BIGINT) AS v FROM seat_moves_daily \
             WHERE license_id = '{LIC}'"
        )),
        3
    );

    // 1,001 more seats whose device ids all contain "bulk".
    let devices: Vec<String> = (0..1001).map(|i| format!("bulk-{i:05}")).collect();
    for chunk in devices.chunks(50) {
        let answers = join_all(chunk.iter().map(|d| server.activate(&key_file, d, "Cy"))).await;
        assert!(answers.iter().all(|(status, _)| *status == 201));
    }

    // A narrow search is counted exactly.
    let (_, narrow) = vera
        .get(&format!("/console/licenses/{LIC}?q=bulk-00042"))
        .await;
    assert!(narrow.contains("1 matching seats"), "{narrow}");
    assert!(narrow.contains("bulk-00042"));
    let (_, some) = vera
        .get(&format!("/console/licenses/{LIC}?q=bulk-0099"))
        .await;
    assert!(some.contains("10 matching seats"));

    // A broad one: the first 1,000, in order, and a request to narrow it.
    let (_, broad) = vera.get(&format!("/console/licenses/{LIC}?q=bulk")).await;
    assert!(
        broad.contains("More than 1000 seats match: the first 1000 are shown"),
        "{broad}"
    );
    assert!(broad.contains("page 1 of the first 20"), "{broad}");
    assert!(broad.contains(">bulk-00000<") && broad.contains(">bulk-00049<"));
    assert!(!broad.contains(">bulk-00050<"));
    let (_, last) = vera
        .get(&format!("/console/licenses/{LIC}?q=bulk&page=20"))
        .await;
    assert!(
        last.contains(">bulk-00999<") && !last.contains(">bulk-01000<"),
        "{last}"
    );
    let (status, past) = vera
        .get(&format!("/console/licenses/{LIC}?q=bulk&page=21"))
        .await;
    assert_eq!(status, 200);
    assert!(!past.contains(">bulk-0"), "no rows past the first 1000");

    // Without a search: every seat, counted exactly.
    let (_, all) = vera.get(&format!("/console/licenses/{LIC}")).await;
    assert!(all.contains("1005 matching seats"), "{all}");
}

both_backends!(console_seat_list, seat_list);
