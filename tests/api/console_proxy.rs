//! Sign-in throttling behind a reverse proxy (SQLite): the failures are counted per client
//! address as the device API's rate limit sees it, the forwarded one when the peer is in
//! `server.trusted_proxies`, so one client behind the proxy cannot lock the others out; without
//! a trusted proxy `X-Forwarded-For` is ignored.

use crate::console_support::plain_client;
use crate::helpers::{Backend, TestEnv, TestServer};

/// A wrong password for `user`, as the proxy forwards it from `client`; the status.
async fn fail(server: &TestServer, user: &str, client: &str) -> u16 {
    plain_client()
        .post(format!("{}/console/login", server.url))
        .header("Origin", &server.url)
        .header("X-Forwarded-For", client)
        .form(&[("username", user), ("password", "wrong password!")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn console_sign_in_throttling_follows_the_trusted_proxy() {
    let env = TestEnv::new(Backend::Sqlite);
    let proxy = [("SEATKEEP__SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")];
    let server = TestServer::start(&env.config, &proxy).await;
    // Five failures from one client behind the proxy, each for another user name.
    for i in 0..5 {
        assert_eq!(fail(&server, &format!("user-{i}"), "10.0.0.1").await, 401);
    }
    // That client is throttled now, whatever the name; another client is not.
    assert_eq!(fail(&server, "user-5", "10.0.0.1").await, 429);
    assert_eq!(fail(&server, "user-6", "10.0.0.2").await, 401);
    assert_eq!(
        env.db.count("login_failures", "client = '10.0.0.1'"),
        5,
        "the throttled attempt is not counted"
    );
    assert_eq!(env.db.count("login_failures", "client = '10.0.0.2'"), 1);
    drop(server);

    // Without a trusted proxy the header is the client's word: ignored, the peer counts.
    let env = TestEnv::new(Backend::Sqlite);
    let server = env.serve().await;
    for i in 0..5 {
        let client = format!("10.0.1.{i}");
        assert_eq!(fail(&server, &format!("user-{i}"), &client).await, 401);
    }
    assert_eq!(fail(&server, "user-5", "10.0.2.1").await, 429);
    assert_eq!(env.db.count("login_failures", "client = '127.0.0.1'"), 5);
}
