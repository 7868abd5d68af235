//! Clean restarts: SIGTERM during a load of new activations exits 0, and after a restart
//! every activation that was answered 201 answers a repeat with the same seat and key.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv};

/// Concurrent clients, and activations each tries at most (bounded either way).
const CLIENTS: usize = 16;
const PER_CLIENT: usize = 2_000;

async fn sigterm_under_load(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-S", 100_000);
    let mut server = env.serve().await;
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let http = server.http.clone();
        let url = format!("{}/api/v1/activations", server.url);
        let key_file = key_file.clone();
        clients.push(tokio::spawn(async move {
            let mut granted = Vec::new();
            for i in 0..PER_CLIENT {
                let device = format!("dev-{client}-{i}");
                let body = serde_json::json!({
                    "key_file": key_file, "device_id": device, "user_name": "load"
                });
                let Ok(response) = http.post(&url).json(&body).send().await else {
                    break; // the server stopped accepting
                };
                if response.status() != 201 {
                    break;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    break;
                };
                granted.push((device, answer["seat"].clone(), answer["device_key"].clone()));
            }
            granted
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "SIGTERM under load exits 0: {status:?}");
    let mut granted = Vec::new();
    for client in clients {
        granted.extend(client.await.unwrap());
    }
    assert!(
        granted.len() > 50,
        "the load ran: {} granted",
        granted.len()
    );

    let server = env.serve().await;
    for chunk in granted.chunks(32) {
        let repeats = chunk
            .iter()
            .map(|(device, _, _)| server.activate(&key_file, device, "load"));
        for ((device, seat, key), (status, again)) in
            chunk.iter().zip(futures::future::join_all(repeats).await)
        {
            assert_eq!(status, 200, "{device}: {again}");
            assert_eq!(&again["seat"], seat, "{device}");
            assert_eq!(&again["device_key"], key, "{device}");
        }
    }
    let active = env.db.count("seats", "state = 'active'");
    assert!(active >= granted.len() as i64);
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), active);
    env.db.assert_journal_gapless();
}
both_backends!(sigterm_during_activations, sigterm_under_load);
