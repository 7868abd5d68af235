//! Console test support: admin accounts, signing in over plain HTTP (reqwest, for status
//! codes), and a real headless Chromium driven over WebDriver (chromedriver on a free
//! loopback port) with screenshots into the test output folder.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{BIN, TestEnv, TestServer};

/// A password long enough for the rules.
pub const PASSWORD: &str = "correct horse battery";

/// Creates an admin with [`PASSWORD`].
pub fn add_admin(env: &TestEnv, name: &str, role: &str) {
    let out = Command::new(BIN)
        .args([
            "--config",
            env.config.to_str().unwrap(),
            "admin",
            "add",
            name,
            "--role",
            role,
        ])
        .env("SEATKEEP_ADMIN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A signed-in plain HTTP client: its cookie and CSRF token.
#[derive(Clone)]
pub struct HttpSession {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

/// A client that follows no redirects (the tests look at each answer).
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The CSRF token in a page.
pub fn csrf_in(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a CSRF field")
        + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

/// Signs in over HTTP; panics unless the login succeeds.
pub async fn sign_in(server: &TestServer, name: &str) -> HttpSession {
    let http = plain_client();
    let response = http
        .post(format!("{}/console/login", server.url))
        .header("Origin", &server.url)
        .form(&[("username", name), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "login of {name}");
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{}/console", server.url))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    HttpSession {
        csrf: csrf_in(&page),
        http,
        base: server.url.clone(),
        cookie,
    }
}

impl HttpSession {
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POSTs a form from this server's origin, with the given fields as they are.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        self.post_from(path, fields, Some(&self.base.clone())).await
    }

    /// POSTs a form claiming `origin` (none: no Origin header).
    pub async fn post_from(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .form(fields);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POSTs a multipart upload (`csrf`, `file`) to the import preview.
    pub async fn upload(&self, file: &[u8]) -> (u16, String) {
        self.upload_to("/console/import/preview", file).await
    }

    /// POSTs a multipart upload (`csrf`, `file`) to `path`.
    pub async fn upload_to(&self, path: &str, file: &[u8]) -> (u16, String) {
        let boundary = "seatkeep-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.txt\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            self.csrf
        )
        .into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("Origin", &self.base)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Headless Chromium under chromedriver, closed on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
}

/// Starts chromedriver and a browser session; `None` (the test is skipped, with a line on
/// stderr) when Chromium is not installed, except under CI, where that fails the test.
pub async fn browser(label: &str) -> Option<Browser> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let driver_bin = "/usr/bin/chromedriver";
    let (Some(chromium), true) = (chromium, std::path::Path::new(driver_bin).exists()) else {
        assert!(
            std::env::var("CI").is_err(),
            "chromium and chromium-driver are missing: tests/run installs them (apt)"
        );
        eprintln!("SKIPPED: no chromium/chromedriver (tests/run installs them)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Its own process group, so the browsers it starts go with it (see Drop).
    let driver = Command::new(driver_bin)
        .args([
            format!("--port={port}"),
            "--allowed-ips=127.0.0.1".to_owned(),
        ])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let caps: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-background-networking",
                         "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"],
            }
        }))
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = String::new();
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join("console-screenshots")
                    .join(label);
                std::fs::create_dir_all(&shots).unwrap();
                return Some(Browser {
                    client,
                    driver,
                    shots,
                });
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start a session: {last_error}");
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The text of the first element matching `css`, waiting up to 10 s for it to appear (a
    /// click that submits a form may return before the next page is there). On a miss the
    /// panic shows the page's URL and source.
    pub async fn text(&self, css: &str) -> String {
        let found = self
            .client
            .wait()
            .at_most(std::time::Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element.text().await.unwrap(),
            Err(error) => {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let source = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {url:?} ({error}); the page:\n{source}")
            }
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks a link or submit button and waits (up to 15 s) until the next page has loaded.
    /// A WebDriver click does not always wait for the navigation it starts (Chromium 156 often
    /// returns first), so the old page is marked and the wait ends when a fresh document,
    /// without the mark, is complete. Every click in these tests loads a page.
    pub async fn click(&self, css: &str) {
        self.client
            .execute("window.__seatkeepOldPage = true;", vec![])
            .await
            .unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.__seatkeepOldPage === undefined \
                     && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            // An error is a page between documents: ask again.
            if matches!(loaded, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the click on {css} loaded no new page in 15 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Signs in through the login form.
    pub async fn sign_in(&self, base: &str, name: &str, password: &str) {
        self.goto(&format!("{base}/console/login")).await;
        self.fill("#username", name).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
    }

    /// The session cookie's value, if the browser holds one.
    pub async fn session_cookie(&self) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == "seatkeep_console")
            .map(|c| c.value().to_owned())
    }

    /// True when a JavaScript dialog is open.
    pub async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// Saves a screenshot of the page as `NAME.png` in the output folder; returns its path.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Browser {
    /// Ends the browser session (Chromium exits), then chromedriver.
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium it left. The `--` matters: procps-ng
        // 4.0.2 (Debian 12) reads `kill -KILL -1234` as kill(-1, SIGKILL), every process the
        // caller may signal, which took the whole test run down whenever the pid began with 1.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
