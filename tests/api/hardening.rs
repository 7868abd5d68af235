//! A hostile network (issue 15): stalled bodies, one client holding many requests, a flood
//! of malformed request heads. Raw TCP to loopback only, bounded in count and time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::both_backends;
use crate::helpers::{Backend, TestEnv, TestServer, ensure_crypto};

const BODY_TIMEOUT_SECS: u64 = 2;
/// The other client's address: loopback, but not the attacker's.
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The server's address from its URL.
fn addr(server: &TestServer) -> SocketAddr {
    server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("server address")
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// An HTTP client whose connections come from `ip`.
fn client_from(ip: IpAddr) -> reqwest::Client {
    ensure_crypto();
    reqwest::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The status of a GET of `url` from `ip`.
async fn status_from(ip: IpAddr, url: String) -> u16 {
    client_from(ip)
        .get(url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A POST whose body never completes: a Content-Length it does not send, or a chunked body
/// that never ends.
async fn stall(to: SocketAddr, from: Option<IpAddr>, chunked: bool) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let mut stream = socket.connect(to).await.expect("connect");
    let head = if chunked {
        "POST /api/v1/activations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\n{\"key\r\n"
    } else {
        "POST /api/v1/activations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{\"key_file\":"
    };
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Everything the server sends until it closes, or `None` if it is still open after `limit`.
async fn read_until_closed(mut stream: TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 2048];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| answer)
}

fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn serve_with_limits(env: &TestEnv, per_client: &str) -> TestServer {
    let timeout = format!("{BODY_TIMEOUT_SECS}s");
    TestServer::start(
        &env.config,
        &[
            ("SEATKEEP__SERVER__BODY_TIMEOUT", &timeout),
            ("SEATKEEP__SERVER__MAX_REQUESTS_PER_CLIENT", per_client),
        ],
    )
    .await
}

fn server_log(server: &TestServer) -> String {
    std::fs::read_to_string(&server.log).unwrap_or_default()
}

both_backends!(
    stalled_bodies_are_timed_out_and_memory_returns,
    stalled_bodies
);
async fn stalled_bodies(backend: Backend) {
    const STALLED: usize = 2_000;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let env = TestEnv::new(backend);
    let key_file = env.import_license("LIC-STALL", 50);
    let server = serve_with_limits(&env, "100000").await;
    let to = addr(&server);
    let pid = server.child.id();
    let other = client_from(OTHER);
    let activate = |device: String| {
        let body = serde_json::json!({"key_file": key_file, "device_id": device, "user_name": "u"});
        let request = other
            .post(format!("{}/api/v1/activations", server.url))
            .json(&body);
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    // Warm up the paths the attack and the other client take, then take the baseline.
    for i in 0..5 {
        assert_eq!(activate(format!("warm-{i}")).await.unwrap(), 201);
    }
    let warm = stall(to, None, false).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);

    let started = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        stalled.push(stall(to, None, i % 2 == 1).await);
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = rss_kib(pid);

    // Another address is served while the attack holds its connections.
    let served = Instant::now();
    for i in 0..5 {
        assert_eq!(activate(format!("during-{i}")).await.unwrap(), 201);
    }
    let health = other
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let served = served.elapsed();
    assert!(
        started.elapsed() < Duration::from_secs(BODY_TIMEOUT_SECS),
        "the other client must be answered while the attack is still stalled \
         ({served:?} for its requests)"
    );

    // Each stalled connection: 408 or closed within body_timeout plus a few seconds.
    let limit = Duration::from_secs(BODY_TIMEOUT_SECS + 5).saturating_sub(started.elapsed());
    let readers: Vec<_> = stalled
        .into_iter()
        .map(|s| tokio::spawn(read_until_closed(s, limit)))
        .collect();
    let (mut timed_out, mut closed_silently) = (0, 0);
    for reader in readers {
        let answer = reader
            .await
            .unwrap()
            .expect("a stalled connection still open after body_timeout + 5 s");
        match status_line(&answer).as_str() {
            "HTTP/1.1 408 Request Timeout" => timed_out += 1,
            "" => closed_silently += 1,
            other => panic!("unexpected answer to a stalled body: {other}"),
        }
    }
    let all_closed = started.elapsed();
    assert!(timed_out > STALLED / 2, "{timed_out} of {STALLED} got 408");

    // Memory comes back (jemalloc purges within about a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    println!(
        "{STALLED} stalled bodies on {backend:?}: opened in {opened:?}, other client served in \
         {served:?}, {timed_out} answered 408 and {closed_silently} closed, all within \
         {all_closed:?}; RSS before {} MiB, during {} MiB, after {} MiB",
        before / 1024,
        during / 1024,
        after / 1024
    );
    assert!(
        after <= before + 24 * 1024,
        "RSS after the attack {after} KiB, before {before} KiB"
    );
    assert_eq!(activate("after".into()).await.unwrap(), 201);
    assert!(!server_log(&server).contains("ERROR"), "no ERROR line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_client_cap_answers_429_and_spares_other_addresses() {
    const CAP: usize = 20;
    let env = TestEnv::new(Backend::Sqlite);
    let server = serve_with_limits(&env, &CAP.to_string()).await;
    let to = addr(&server);
    let mut held = Vec::new();
    for i in 0..CAP {
        held.push(stall(to, None, i % 2 == 0).await);
    }
    // Until the server has read these heads, they are not yet in progress.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut excess = Vec::new();
    for i in 0..5 {
        excess.push(stall(to, None, i % 2 == 0).await);
    }
    for stream in excess {
        let answer = read_until_closed(stream, Duration::from_secs(1))
            .await
            .expect("the excess request is answered and closed at once");
        let text = String::from_utf8_lossy(&answer).to_lowercase();
        assert_eq!(status_line(&answer), "HTTP/1.1 429 Too Many Requests");
        assert!(text.contains("retry-after: 1\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(text.contains("\"code\":\"rate_limited\""), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(BODY_TIMEOUT_SECS));

    // Another address is not affected; the held ones still run into the body timeout.
    let other = client_from(OTHER);
    let health = other
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for stream in held {
        let answer = read_until_closed(stream, Duration::from_secs(BODY_TIMEOUT_SECS + 5))
            .await
            .expect("closed after the body timeout");
        assert_eq!(status_line(&answer), "HTTP/1.1 408 Request Timeout");
    }
    // Slots are given back: the address is served again.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_request_flood_logs_one_warning_per_address() {
    const FLOOD: usize = 500;
    const MARKER: &str = "BODY-MARKER-7f3a";
    let env = TestEnv::new(Backend::Sqlite);
    let server = env.serve().await;
    let to = addr(&server);
    let garbage: [&[u8]; 4] = [
        b"GARBAGE \x01\x02 nonsense\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"POST /api/v1/activations HTTP/1.1\r\nContent-Length: x\r\n\r\nBODY-MARKER-7f3a",
    ];
    let started = Instant::now();
    for chunk in (0..FLOOD).collect::<Vec<_>>().chunks(50) {
        let sends = chunk.iter().map(|&i| async move {
            let mut stream = TcpStream::connect(to).await.expect("connect");
            stream.write_all(garbage[i % garbage.len()]).await.unwrap();
            read_until_closed(stream, Duration::from_secs(5)).await
        });
        for answer in futures::future::join_all(sends).await {
            let answer = answer.expect("a malformed request is answered and closed");
            let line = status_line(&answer);
            assert!(line.is_empty() || line.starts_with("HTTP/1.1 4"), "{line}");
        }
    }
    let flooded = started.elapsed();
    // The tally is written every second.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let log = server_log(&server);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines: {errors:#?}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    println!("{FLOOD} malformed requests in {flooded:?}; WARN lines: {warnings:#?}");
    assert!(
        (1..=2).contains(&warnings.len()),
        "one or two WARN lines, not {}",
        warnings.len()
    );
    assert!(warnings[0].contains("client=127.0.0.1"), "{}", warnings[0]);
    assert!(warnings[0].contains("count="), "{}", warnings[0]);
    assert!(!log.contains(MARKER), "a request body reached the log");
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

/// `/metrics` behind a TLS proxy on the same host: every client is a loopback peer, so a
/// forwarded request, or any request from a trusted proxy, needs the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_through_a_same_host_proxy_need_the_token() {
    const TOKEN: &str = "metrics-token-0123456789abcdef";
    let env = TestEnv::with_config(
        Backend::Sqlite,
        "[metrics]\ntoken_file = \"metrics.token\"\n",
    );
    std::fs::write(env.path("metrics.token"), format!("{TOKEN}\n")).unwrap();
    env.import_license("LIC-METRICS", 3);
    let get = |server: &TestServer, headers: &[(&str, &str)]| {
        let mut request = server.http.get(format!("{}/metrics", server.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move {
            let response = request.send().await.expect("metrics request");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let bearer = format!("Bearer {TOKEN}");

    // No trusted proxy: a direct loopback client reads them, a forwarded one does not.
    let server = env.serve().await;
    let (status, body) = get(&server, &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("seatkeep_seats{"), "{body}");
    for header in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=203.0.113.7;proto=https"),
        ("X-Real-IP", "203.0.113.7"),
    ] {
        let (status, body) = get(&server, &[header]).await;
        assert_eq!(status, 403, "{header:?}");
        assert!(!body.contains("seatkeep_seats{"), "{header:?}: {body}");
        let (status, _) = get(&server, &[header, ("Authorization", &bearer)]).await;
        assert_eq!(status, 200, "{header:?} with the token");
    }
    drop(server);

    // The proxy on this host is trusted: whatever it forwards, or when it adds no header,
    // loopback is not enough.
    let proxy = [("SEATKEEP__SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")];
    let server = TestServer::start(&env.config, &proxy).await;
    for headers in [
        &[][..],
        &[("X-Forwarded-For", "203.0.113.7")][..],
        &[("X-Forwarded-For", "127.0.0.1")][..],
    ] {
        let (status, body) = get(&server, headers).await;
        assert_eq!(status, 403, "{headers:?}");
        assert!(!body.contains("seatkeep_seats{"), "{headers:?}: {body}");
    }
    let (status, body) = get(
        &server,
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("Authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("seatkeep_seats{"), "{body}");
    // Another loopback address, not the proxy's: a direct client.
    assert_eq!(
        status_from(OTHER, format!("{}/metrics", server.url)).await,
        200
    );
}

/// Idle connections (no request head at all) are counted per address: one address holding
/// `max_connections_per_client` of them does not keep another address out, and its next
/// connection is closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_are_capped_per_address() {
    const CAP: usize = 30;
    let env = TestEnv::new(Backend::Sqlite);
    let cap = CAP.to_string();
    let server = TestServer::start(
        &env.config,
        &[("SEATKEEP__SERVER__MAX_CONNECTIONS_PER_CLIENT", &cap)],
    )
    .await;
    let to = addr(&server);
    // The test client's own keep-alive connection from start-up is gone after 5 s idle at
    // most; open the idle ones from an address it does not use.
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let connect = |from: IpAddr| async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        socket.connect(to).await.expect("connect")
    };
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(connect(attacker).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The held ones are still open.
    for stream in &idle {
        let mut buf = [0u8; 1];
        assert!(
            matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "an idle connection within the cap is open"
        );
    }
    // Another address is served.
    assert_eq!(
        status_from(OTHER, format!("{}/healthz", server.url)).await,
        200
    );
    // The attacker's next connection is closed at once, unanswered, even with a request.
    let started = Instant::now();
    let mut excess = connect(attacker).await;
    let _ = excess
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let answer = read_until_closed(excess, Duration::from_secs(2))
        .await
        .expect("the connection over the cap is closed at once");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Once the idle ones are gone (closed by the client here), the address is served again.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_from(attacker, format!("{}/healthz", server.url)).await,
        200
    );
    assert!(!server_log(&server).contains("ERROR"), "no ERROR line");
}

/// Under a descriptor limit of 256, `max_connections = 4096` cannot be kept: the server
/// serves at most three quarters of the limit (192) and says so at WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_clamped_to_the_descriptor_limit() {
    use std::io::BufRead as _;
    let env = TestEnv::new(Backend::Sqlite);
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" --config \"$1\" serve")
        .arg(crate::helpers::BIN)
        .arg(&env.config)
        .env_remove("RUST_LOG")
        .env("SEATKEEP__SERVER__MAX_CONNECTIONS", "4096")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve under ulimit -n 256");
    let stderr = child.stderr.take().expect("stderr");
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let listening = line.contains("listening");
            seen.push(line);
            if listening {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .expect("serve starts")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    let limit = lines
        .iter()
        .find(|l| l.contains("open-file limit") && l.contains("INFO"))
        .unwrap_or_else(|| panic!("no open-file limit line in:\n{log}"));
    assert!(limit.contains("soft=256"), "{limit}");
    assert!(limit.contains("max_connections=192"), "{limit}");
    let warn = lines
        .iter()
        .find(|l| l.contains("WARN") && l.contains("server.max_connections"))
        .unwrap_or_else(|| panic!("no WARN about the clamp in:\n{log}"));
    assert!(warn.contains("configured=4096"), "{warn}");
    assert!(warn.contains("serving at most 192 connections"), "{warn}");
}
