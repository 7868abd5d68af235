//! `backup` while a load of new activations runs, `restore` into a new folder, serve: every
//! seat in the backup answers a repeat activation with its original key, counters match,
//! the journal is whole. Restore refuses a non-empty database and a file that is no backup.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use seatkeep::db::models::Seat;
use seatkeep::db::schema::seats;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv};

const CLIENTS: usize = 8;

async fn backup_under_load(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-B", 100_000);
    let server = env.serve().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, key_file, stop) = (
            server.http.clone(),
            format!("{}/api/v1/activations", server.url),
            key_file.clone(),
            Arc::clone(&stop),
        );
        clients.push(tokio::spawn(async move {
            let mut granted = Vec::new();
            for i in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let device = format!("dev-{client}-{i}");
                let body = serde_json::json!({
                    "key_file": key_file, "device_id": device, "user_name": "load"
                });
                let response = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 201);
                let answer: serde_json::Value = response.json().await.unwrap();
                granted.push((device, answer["device_key"].as_str().unwrap().to_owned()));
            }
            granted
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let out = env.path("seatkeep.backup");
    let out_text = out.to_str().unwrap().to_owned();
    let printed = tokio::task::block_in_place(|| {
        env.cli_ok(&["backup", "--out", &out_text, "--include-server-key"])
    });
    assert!(printed.contains("backup written to"), "{printed}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut granted = Vec::new();
    for client in clients {
        granted.extend(client.await.unwrap());
    }
    drop(server);
    let answered: std::collections::HashMap<String, String> = granted.into_iter().collect();

    // A second backup to the same file is refused; nothing is overwritten.
    let before = std::fs::read(&out).unwrap();
    let err = env.cli_err(&["backup", "--out", &out_text]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // Restore into a new folder: its own database, the provider key of the first.
    let fresh = TestEnv::new(backend);
    std::fs::copy(&env.provider_pub, &fresh.provider_pub).unwrap();
    std::fs::remove_file(fresh.path("server-key.pem")).unwrap();
    let not_backup = fresh.write("not.backup", "hello");
    let err = fresh.cli_err(&["restore", not_backup.to_str().unwrap()]);
    assert!(
        err.contains("not a Seatkeep backup") || err.contains("pg_restore"),
        "{err}"
    );
    let printed = fresh.cli_ok(&["restore", &out_text, "--include-server-key"]);
    assert!(printed.contains("restored 1 licenses"), "{printed}");
    let mut conn = fresh.db.connect();
    let restored: Vec<Seat> = seats::table
        .select(Seat::as_select())
        .load(&mut conn)
        .unwrap();
    assert!(
        restored.len() > 10,
        "the backup caught the load: {}",
        restored.len()
    );
    assert_eq!(
        fresh.db.scalar("SELECT in_use AS v FROM licenses"),
        restored.len() as i64,
        "in_use equals the active seats in the backup"
    );
    fresh.db.assert_journal_gapless();

    let server = fresh.serve().await;
    for chunk in restored.chunks(32) {
        let repeats = chunk
            .iter()
            .map(|s| server.activate(&key_file, &s.device_id, "load"));
        for (seat, (status, again)) in chunk.iter().zip(futures::future::join_all(repeats).await) {
            assert_eq!(status, 200, "{}: {again}", seat.device_id);
            assert_eq!(again["seat"], seat.id.as_str());
            assert_eq!(again["device_key"], seat.device_key.as_str());
            assert_eq!(
                Some(&seat.device_key),
                answered.get(&seat.device_id),
                "the key first answered"
            );
        }
    }
    drop(server);

    // Restoring again into the now non-empty database is refused, naming what it holds.
    let audit = fresh.db.count("audit_log", "");
    let err = fresh.cli_err(&["restore", &out_text]);
    assert!(
        err.contains("not empty") && err.contains("rows in seats"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(fresh.db.count("audit_log", ""), audit);
    let printed = fresh.cli_ok(&["restore", &out_text, "--force"]);
    assert!(printed.contains("restored 1 licenses"), "{printed}");
}
both_backends!(backup_during_load_then_restore, backup_under_load);
