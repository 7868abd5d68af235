//! Federation online (DESIGN §7), with real processes: `seatkeep serve` pushing to
//! `seatkeep provider collect`, through a cutting proxy, from three instances at once, and to
//! an independent provider written in Python.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use futures::StreamExt as _;

use crate::both_backends;
use crate::chaos_proxy::ChaosProxy;
use crate::federation_support::{
    CollectorProcess, FAST_PUSH, MANUAL_PUSH, acked, assert_gapless, import_federated, last_seq,
    stored_events, to, wait_delivered,
};
use crate::helpers::{Backend, KID, TestEnv, TestServer};

/// Activates `devices` in parallel; returns (seat, return token) of each.
async fn activate_all(
    server: &TestServer,
    key_file: &str,
    devices: &[String],
) -> Vec<(String, String)> {
    futures::stream::iter(devices.iter().cloned())
        .map(|device| async move {
            let (status, body) = server
                .activate(key_file, &device, &format!("user {device}"))
                .await;
            assert_eq!(status, 201, "{device}: {body}");
            (
                body["seat"].as_str().unwrap().to_owned(),
                body["return_token"].as_str().unwrap().to_owned(),
            )
        })
        .buffer_unordered(16)
        .collect()
        .await
}

async fn exact_once_with_report(backend: Backend) {
    let env = TestEnv::with_config(backend, FAST_PUSH);
    let collector = CollectorProcess::start(&env, 0);
    let key_file = import_federated(&env, "lic-fed", 2000, 1, to(&collector.url()));
    let server = env.serve().await;
    let devices: Vec<String> = (0..2000).map(|i| format!("dev-{i:04}")).collect();
    let seats = activate_all(&server, &key_file, &devices).await;
    futures::stream::iter(seats.iter().take(200).cloned())
        .map(|(seat, token)| {
            let server = &server;
            async move {
                let (status, body) = server
                    .post(
                        &format!("/api/v1/activations/{seat}/return"),
                        &serde_json::json!({"return_token": token}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    for (seat, _) in seats.iter().skip(200).take(50) {
        env.cli_ok(&["seats", "retire", seat]);
    }
    import_federated(&env, "lic-fed", 2100, 2, to(&collector.url()));
    wait_delivered(&env, "lic-fed").await;
    let n = last_seq(&env, "lic-fed");
    assert_eq!(n, 1 + 2000 + 200 + 50 + 1);
    let events: Vec<_> = stored_events(&collector.data)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_gapless(&events, n);
    let mut kinds = BTreeMap::new();
    for e in &events {
        *kinds
            .entry(e["type"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    let expected: BTreeMap<String, i64> = [
        ("license.imported", 1),
        ("license.renewed", 1),
        ("seat.activated", 2000),
        ("seat.returned", 200),
        ("seat.retired", 50),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(kinds, expected);
    // The collector holds what the server's database holds, event by event.
    assert_eq!(
        env.db.count("federation_events", "license_id = 'lic-fed'"),
        n
    );
    assert_eq!(events.last().unwrap()["in_use"], 1750);
    assert_eq!(events.last().unwrap()["seats"], 2100);
    assert_eq!(events.last().unwrap()["key_file_seq"], 2);
    // Privacy: no raw device id or user name left the site.
    let raw = std::fs::read_dir(collector.data.join("events"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(
        !raw.contains("dev-0") && !raw.contains("user dev"),
        "raw ids reached the provider"
    );
    // The report matches the server's database.
    let report: serde_json::Value = crate::federation_support::provider_report(&collector.data);
    let rows = report.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    let row = &rows[0];
    let in_use_db = env
        .db
        .count("seats", "license_id = 'lic-fed' AND state = 'active'");
    assert_eq!(row["registrations"], 2000);
    assert_eq!(row["returns"], 200);
    assert_eq!(row["retirements"], 50);
    assert_eq!(row["in_use"], in_use_db);
    assert_eq!(row["channels"]["distributor:dist-7"], 2000);
    assert_eq!(row["channels"]["partner:partner-3"], 2000);
    assert_eq!(row["overage"], 0);
    env.db.assert_journal_gapless();
}
both_backends!(
    every_change_reaches_the_collector_once,
    exact_once_with_report
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collector_outages_and_lost_acks_lose_nothing_and_double_nothing() {
    let env = TestEnv::with_config(Backend::Sqlite, MANUAL_PUSH);
    // The collector is down: the URL names a proxy whose target does not listen yet.
    let mut collector = CollectorProcess::start(&env, 0);
    let port = collector.port;
    collector.kill();
    let proxy = ChaosProxy::start(port);
    let url = format!("http://127.0.0.1:{}/federation", proxy.port);
    let key_file = import_federated(&env, "lic-cut", 50, 1, to(&url));
    let server = env.serve().await;
    // Its first pass (at start) fails and lets the lease go; later passes are an hour away.
    for _ in 0..300 {
        if env.db.count(
            "federation_state",
            "last_error IS NOT NULL AND lease_owner IS NULL",
        ) == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let devices: Vec<String> = (0..20).map(|i| format!("d{i}")).collect();
    activate_all(&server, &key_file, &devices[..10]).await;
    let out = env.cli(&["federation", "flush"]);
    assert!(!out.status.success());
    assert_eq!(acked(&env, "lic-cut"), 0);
    let status = env.cli_ok(&["federation", "status"]);
    assert!(status.contains("last error"), "{status}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("seatkeep_federation_pending_events{license=\"lic-cut\"} 11"),
        "{metrics}"
    );
    // Up again; the collector stores, but the proxy cuts the connection before the ack.
    let collector = CollectorProcess::start(&env, port);
    proxy.answers.store(false, Ordering::SeqCst);
    let out = env.cli(&["federation", "flush"]);
    assert!(!out.status.success(), "no ack, no delivery");
    assert_eq!(
        acked(&env, "lic-cut"),
        0,
        "nothing marked delivered without an ack"
    );
    assert_eq!(
        stored_events(&collector.data).len(),
        11,
        "the collector stored the batch"
    );
    // Answers flow again: Seatkeep resends, the collector keeps one copy.
    proxy.answers.store(true, Ordering::SeqCst);
    env.cli_ok(&["federation", "flush"]);
    assert_eq!(acked(&env, "lic-cut"), 11);
    // A collector restart: it knows what it holds from its files.
    drop(collector);
    activate_all(&server, &key_file, &devices[10..]).await;
    let collector = CollectorProcess::start(&env, port);
    env.cli_ok(&["federation", "flush"]);
    assert_eq!(acked(&env, "lic-cut"), 21);
    let events: Vec<_> = stored_events(&collector.data)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_gapless(&events, 21);
    assert_eq!(
        env.db.count("federation_events", "1=1"),
        21,
        "events are never deleted"
    );
}

async fn three_instances(backend: Backend) {
    let env = TestEnv::with_config(backend, FAST_PUSH);
    let collector = CollectorProcess::start(&env, 0);
    let key_file = import_federated(&env, "lic-3", 300, 1, to(&collector.url()));
    let servers = [env.serve().await, env.serve().await, env.serve().await];
    let devices: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let mut tasks = Vec::new();
    for (server, chunk) in servers.iter().zip(devices.chunks(100)) {
        tasks.push(activate_all(server, &key_file, chunk));
    }
    futures::future::join_all(tasks).await;
    wait_delivered(&env, "lic-3").await;
    let events: Vec<_> = stored_events(&collector.data)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_gapless(&events, 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_postgres_deliver_each_event_once_in_order() {
    three_instances(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_independent_provider_receives_and_acknowledges_the_batches() {
    let env = TestEnv::with_config(Backend::Sqlite, MANUAL_PUSH);
    let python = std::env::var("SEATKEEP_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SEATKEEP_TEST_PYTHON is not set: run the suite with tests/run (it installs PyJWT)")
    });
    // The key file names the provider's URL, so it is issued for a port chosen first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let key_file = import_federated(&env, "lic-py", 10, 1, to(&url));
    let store = env.path("python-store.json");
    let mut provider = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tools/federation_provider.py"
        ))
        .args([
            "--key-file",
            env.path("issued/lic-py-1.seatkey").to_str().unwrap(),
        ])
        .args(["--provider-pub", env.provider_pub.to_str().unwrap()])
        .args(["--key", env.provider_key.to_str().unwrap(), "--kid", KID])
        .args(["--store", store.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(provider.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening"), "{line}");
    let server = env.serve().await;
    let devices: Vec<String> = (0..5).map(|i| format!("py{i}")).collect();
    activate_all(&server, &key_file, &devices).await;
    // The server's own first pass may still hold the lease (flush then says so): either way
    // everything arrives.
    env.cli_ok(&["federation", "flush"]);
    wait_delivered(&env, "lic-py").await;
    let _ = provider.kill();
    let _ = provider.wait();
    assert_eq!(acked(&env, "lic-py"), 6);
    let held: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    assert_gapless(&held, 6);
    assert_eq!(held[1]["type"], "seat.activated");
    assert!(held[1]["device"].as_str().unwrap().len() == 64);
}
