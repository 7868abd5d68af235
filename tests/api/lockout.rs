//! Guessing a seat's return token: after 5 wrong ones in an hour, the 6th and then the right
//! one get 429 `rate_limited`, the seat unchanged; the lockout holds across a restart and
//! ends when the hour has passed.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestEnv};

async fn wrong_tokens_lock_the_seat(backend: Backend) {
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-L", 2);
    let mut server = env.serve().await;
    let (status, first) = server.activate(&key_file, "dev-1", "Ada").await;
    assert_eq!(status, 201, "{first}");
    let seat = first["seat"].as_str().unwrap().to_owned();
    let token = json!({"return_token": first["return_token"]});
    let wrong = json!({"return_token": "not-the-token"});
    let give_back = format!("/api/v1/activations/{seat}/return");

    for _ in 0..5 {
        let (status, body) = server.post(&give_back, &wrong).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_return_token"))
        );
    }
    let (status, body) = server.post(&give_back, &wrong).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let retry = body["retry_after"].as_i64().unwrap();
    assert!((3590..=3600).contains(&retry), "{body}");
    let (status, body) = server.post(&give_back, &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let rename = json!({"return_token": first["return_token"], "user_name": "Eve"});
    let (status, _) = server
        .post(&format!("/api/v1/activations/{seat}/reissue"), &rename)
        .await;
    assert_eq!(status, 429);
    assert_eq!(
        env.db
            .count("seats", "state = 'active' AND user_name = 'Ada'"),
        1
    );
    assert_eq!(env.db.scalar("SELECT in_use AS v FROM licenses"), 1);
    assert_eq!(
        env.db.count("auth_failures", ""),
        5,
        "none recorded while locked"
    );

    // Stored in the database: a restart does not lift it; the passing hour does.
    server.kill();
    let server = env.serve().await;
    let (status, _) = server.post(&give_back, &token).await;
    assert_eq!(status, 429);
    drop(server);
    let later = env.serve_at_offset(3601).await;
    let (status, body) = later.post(&give_back, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "returned");
}
both_backends!(
    wrong_return_tokens_lock_the_seat,
    wrong_tokens_lock_the_seat
);
