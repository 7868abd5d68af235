//! The device API's request rate per client address: over the bucket, 429 `rate_limited`
//! with `Retry-After`; another address is unaffected; `X-Forwarded-For` counts only from a
//! trusted proxy.

use crate::helpers::{Backend, TestEnv, TestServer};

const SEAT: &str = "/api/v1/activations/st_AAAAAAAAAAAAAAAAAAAAAA";

/// GET `SEAT` from `local` with an optional `X-Forwarded-For`; status and `Retry-After`.
async fn get_from(server: &TestServer, local: &str, forwarded: Option<&str>) -> (u16, String) {
    crate::helpers::ensure_crypto();
    let http = reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut request = http.get(format!("{}{SEAT}", server.url));
    if let Some(forwarded) = forwarded {
        request = request.header("X-Forwarded-For", forwarded);
    }
    let response = request.send().await.unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status().as_u16();
    if status == 429 {
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited", "{body}");
    }
    (status, retry)
}

const SLOW: [(&str, &str); 2] = [
    ("SEATKEEP__SERVER__RATE_LIMIT_PER_SECOND", "1"),
    ("SEATKEEP__SERVER__RATE_LIMIT_BURST", "5"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_gets_429_per_address() {
    let env = TestEnv::new(Backend::Sqlite);
    let server = TestServer::start(&env.config, &SLOW).await;
    for _ in 0..5 {
        assert_eq!(get_from(&server, "127.0.0.1", None).await.0, 404);
    }
    let (status, retry) = get_from(&server, "127.0.0.1", None).await;
    assert_eq!((status, retry.as_str()), (429, "1"));
    // Without a trusted proxy the header is ignored: still this peer's bucket.
    assert_eq!(
        get_from(&server, "127.0.0.1", Some("198.51.100.7")).await.0,
        429
    );
    // Another address has its own bucket.
    assert_eq!(get_from(&server, "127.0.0.2", None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_decides() {
    let env = TestEnv::new(Backend::Sqlite);
    let mut vars = SLOW.to_vec();
    vars.push(("SEATKEEP__SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"));
    let server = TestServer::start(&env.config, &vars).await;
    for _ in 0..5 {
        assert_eq!(
            get_from(&server, "127.0.0.1", Some("203.0.113.5")).await.0,
            404
        );
    }
    assert_eq!(
        get_from(&server, "127.0.0.1", Some("203.0.113.5")).await.0,
        429
    );
    // Another client behind the same proxy, and a client spoofing a hop before it.
    assert_eq!(
        get_from(&server, "127.0.0.1", Some("203.0.113.6")).await.0,
        404
    );
    assert_eq!(
        get_from(&server, "127.0.0.1", Some("203.0.113.9, 203.0.113.5"))
            .await
            .0,
        429
    );

    // A bad CIDR stops the start with the key named.
    let bad = std::process::Command::new(crate::helpers::BIN)
        .args(["--config", env.config.to_str().unwrap(), "serve"])
        .env("SEATKEEP__SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/99\"]")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("server.trusted_proxies"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
