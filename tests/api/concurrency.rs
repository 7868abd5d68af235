//! Exactness under load: seat counts hold with many concurrent devices, several server
//! processes on one PostgreSQL database, and a server killed mid-load.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, TestServer};

/// Sends one activation per device concurrently; returns (device, status, seat).
async fn activate_all(
    servers: &[Arc<TestServer>],
    key_file: &str,
    devices: impl Iterator<Item = String>,
) -> Vec<(String, u16, Option<String>)> {
    let tasks = devices.enumerate().map(|(i, device)| {
        let server = Arc::clone(&servers[i % servers.len()]);
        let key_file = key_file.to_owned();
        tokio::spawn(async move {
            let result = server
                .http
                .post(format!("{}/api/v1/activations", server.url))
                .json(&serde_json::json!({"key_file": key_file, "device_id": device, "user_name": "load"}))
                .send()
                .await;
            match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    (device, status, body["seat"].as_str().map(str::to_owned))
                }
                Err(_) => (device, 0, None),
            }
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

fn assert_consistent(env: &TestEnv, expected_active: i64) {
    assert_eq!(env.db.count("seats", "state = 'active'"), expected_active);
    assert_eq!(
        env.db.scalar("SELECT in_use AS v FROM licenses"),
        expected_active
    );
    // The day moves the console charts read were added up per batch: they agree too (a
    // refused or failed grant took its move back with its savepoint).
    assert_eq!(
        env.db.scalar(
            "SELECT CAST(COALESCE(SUM(taken) - SUM(freed), 0) AS BIGINT) AS v FROM seat_moves_daily"
        ),
        expected_active,
        "seat_moves_daily"
    );
    env.db.assert_journal_gapless();
}

/// 50 seats, 500 concurrent distinct devices: exactly 50 granted, 450 refused, no 5xx.
async fn exhaustion_under_load(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-LOAD", 50);
    let server = Arc::new(env.serve().await);
    let results = activate_all(
        &[server],
        &key_file,
        (0..500).map(|i| format!("device-{i}")),
    )
    .await;
    let created = results.iter().filter(|r| r.1 == 201).count();
    let refused = results.iter().filter(|r| r.1 == 409).count();
    let other: Vec<_> = results
        .iter()
        .filter(|r| r.1 != 201 && r.1 != 409)
        .collect();
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert_eq!((created, refused), (50, 450));
    assert_consistent(&env, 50);
    assert_eq!(env.db.refusals(), 450, "every refusal counted");
    assert!(
        env.db.count("refusal_counts", "") <= 2,
        "450 refusals cost one row per hour"
    );
}
both_backends!(fifty_seats_five_hundred_devices, exhaustion_under_load);

/// One device asking 20 times at once: one seat, 20 identical keys.
async fn same_device_concurrently(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-ONE", 5);
    let server = Arc::new(env.serve().await);
    let tasks = (0..20).map(|_| {
        let server = Arc::clone(&server);
        let key_file = key_file.clone();
        tokio::spawn(async move { server.activate(&key_file, "the-device", "Ada").await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        results.iter().all(|(s, _)| *s == 200 || *s == 201),
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "exactly one took the seat"
    );
    let keys: HashSet<&str> = results
        .iter()
        .map(|(_, b)| b["device_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "all 20 answers carry the same key");
    // Only the answer that created the seat carries the return token.
    let tokens: Vec<&str> = results
        .iter()
        .filter_map(|(_, b)| b["return_token"].as_str())
        .collect();
    assert_eq!(tokens.len(), 1, "one return token, in the one 201");
    assert_consistent(&env, 1);
}
both_backends!(one_device_twenty_times, same_device_concurrently);

/// Three `seatkeep serve` processes on one PostgreSQL database, 2,000 devices over two
/// licenses (100 and 50 seats): each seat sold once, and no batch of one instance deadlocks
/// with another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_postgres_sell_each_seat_once() {
    let env = TestEnv::new(Backend::Postgres);
    let key_a = env.import_license("LIC-MULTI-A", 100);
    let key_b = env.import_license("LIC-MULTI-B", 50);
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Arc::new(TestServer::start(&env.config, &[]).await));
    }
    let (a, b) = tokio::join!(
        activate_all(&servers, &key_a, (0..1200).map(|i| format!("pc-a-{i}"))),
        activate_all(&servers[1..], &key_b, (0..800).map(|i| format!("pc-b-{i}"))),
    );
    for (results, seats) in [(&a, 100), (&b, 50)] {
        let other: Vec<_> = results
            .iter()
            .filter(|r| r.1 != 201 && r.1 != 409)
            .collect();
        assert!(
            other.is_empty(),
            "unexpected answers: {:?}",
            &other[..other.len().min(5)]
        );
        assert_eq!(results.iter().filter(|r| r.1 == 201).count(), seats);
    }
    for lic in ["LIC-MULTI-A", "LIC-MULTI-B"] {
        assert_eq!(
            env.db.count(
                "seats",
                &format!("state = 'active' AND license_id = '{lic}'")
            ),
            env.db.scalar(&format!(
                "SELECT in_use AS v FROM licenses WHERE id = '{lic}'"
            ))
        );
    }
    assert_eq!(env.db.count("seats", "state = 'active'"), 150);
    env.db.assert_journal_gapless();
}

/// `kill -9` in the middle of a load, then restart: every 201 a client saw is a seat, and the
/// counter matches the seats.
async fn kill_during_load(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-KILL", 5000);
    let server = Arc::new(env.serve().await);
    let pid = server.child.id();
    let killer = async {
        // Kill once the load is well under way (at least 50 seats granted).
        for _ in 0..600 {
            if env.db.count("seats", "") >= 50 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    };
    let targets = [Arc::clone(&server)];
    let load = activate_all(&targets, &key_file, (0..1500).map(|i| format!("k-{i}")));
    let ((), results) = tokio::join!(killer, load);
    let granted: Vec<&String> = results
        .iter()
        .filter(|r| r.1 == 201)
        .filter_map(|r| r.2.as_ref())
        .collect();
    assert!(
        results.iter().any(|r| r.1 == 0),
        "the kill interrupted the load"
    );
    drop(targets);
    drop(server);
    let restarted = env.serve().await;
    for seat in &granted {
        let (status, state) = restarted.get(&format!("/api/v1/activations/{seat}")).await;
        assert_eq!(
            (status, state["state"].as_str()),
            (200, Some("active")),
            "seat {seat} was answered 201"
        );
    }
    let active = env.db.count("seats", "state = 'active'");
    assert!(active >= granted.len() as i64);
    assert_consistent(&env, active);
}
both_backends!(kill_nine_mid_load_loses_no_granted_seat, kill_during_load);

/// A device refused in a loop: 20,000 refused activations on a full license cost a couple of
/// counter rows, every refusal is counted exactly, and another license still grants.
async fn refusal_flood(backend: Backend) {
    const WORKERS: usize = 32;
    const PER_WORKER: usize = 625;
    let env = TestEnv::new(backend);
    let full = env.import_license("LIC-FULL", 1);
    let other = env.import_license("LIC-OTHER", 5);
    let server = Arc::new(env.serve().await);
    assert_eq!(server.activate(&full, "holder", "Ada").await.0, 201);
    let rows_before = env.db.count("audit_log", "")
        + env.db.count("seats", "")
        + env.db.count("refusal_counts", "");
    let workers = (0..WORKERS).map(|w| {
        let (server, full) = (Arc::clone(&server), full.clone());
        tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..PER_WORKER {
                let device = format!("flood-{w}-{}", i % 50);
                if server.activate(&full, &device, "Mallory").await.0 == 409 {
                    refused += 1;
                }
            }
            refused
        })
    });
    // Meanwhile the other license grants as usual.
    let (status, _) = server.activate(&other, "bystander", "Bob").await;
    assert_eq!(status, 201);
    let refused: usize = join_all(workers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(refused, WORKERS * PER_WORKER, "every flood request refused");
    assert_eq!(env.db.refusals(), (WORKERS * PER_WORKER) as i64);
    let rows_after = env.db.count("audit_log", "")
        + env.db.count("seats", "")
        + env.db.count("refusal_counts", "");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(&format!(
            "seatkeep_refusals_total{{license=\"LIC-FULL\"}} {}",
            WORKERS * PER_WORKER
        )),
        "{metrics}"
    );
    // The bystander's seat and audit row, and one counter row (two across an hour).
    assert!(
        rows_after - rows_before <= 4,
        "20,000 refusals added {} rows",
        rows_after - rows_before
    );
}
both_backends!(twenty_thousand_refusals_cost_a_few_rows, refusal_flood);
