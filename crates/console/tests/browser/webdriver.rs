//! A small W3C WebDriver client over reqwest, for driving Debian's chromium through its
//! chromedriver: enough to open pages, fill and submit forms, read the DOM, run a script and
//! take screenshots. The protocol is plain JSON over HTTP, so no driver crate is needed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The W3C web element identifier key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
    _profile: tempfile::TempDir,
    profile_path: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where chromium and chromedriver are, if installed.
pub fn installed() -> Option<(&'static str, &'static str)> {
    let chromium =
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let driver = ["/usr/bin/chromedriver"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    Some((chromium, driver))
}

impl Driver {
    pub async fn start(driver: &str) -> Driver {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("address").port()
        };
        #[allow(clippy::disallowed_methods)] // the test starts the real chromedriver
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let profile_path = profile.path().display().to_string();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Driver { child, url, _profile: profile, profile_path }
    }

    /// A new headless browser session (a slow first start is allowed for).
    pub async fn session(&self, chromium: &str) -> Session {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(90)).build().expect("client");
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            format!("--user-data-dir={}", self.profile_path)
        ]);
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let response: Value = http
            .post(format!("{}/session", self.url))
            .json(&body)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = response["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {response}")).to_owned();
        Session { http, base: format!("{}/session/{id}", self.url) }
    }
}

pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.expect("json");
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find_now(&self, css: &str) -> Option<String> {
        let response = self
            .http
            .post(format!("{}/element", self.base))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("find");
        let status = response.status();
        let value: Value = response.json().await.expect("json");
        if !status.is_success() {
            assert_eq!(value["value"]["error"], "no such element", "find {css}: {status} {value}");
            return None;
        }
        let id = value["value"][ELEMENT_KEY].as_str().map(str::to_owned);
        assert!(id.is_some(), "find {css}: an answer without an element: {value}");
        id
    }

    /// Waits (up to 20 s) for an element matching `css`.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(id) = self.find_now(css).await {
                return id;
            }
            if Instant::now() > deadline {
                let source = self.source().await;
                panic!("no element {css} within 20 s; page:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// Clicks the element matching `css`, waiting for it; looked up again if it went stale.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let id = self.find(css).await;
            let response = self
                .http
                .post(format!("{}/element/{id}/click", self.base))
                .json(&json!({}))
                .send()
                .await
                .expect("click");
            let status = response.status();
            if status.is_success() {
                return;
            }
            let value: Value = response.json().await.expect("json");
            assert!(replaced_mid_read(&value), "click {css}: {status} {value}");
            assert!(Instant::now() < deadline, "{css} stayed stale for 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element matching `css`, waiting for it. A page that navigates between
    /// the look-up and the read makes the element stale: it is looked up again.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(text) = self.text_now(css).await {
                return text;
            }
            assert!(Instant::now() < deadline, "no readable element {css} within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text_now(&self, css: &str) -> Option<String> {
        let id = self.find_now(css).await?;
        let response = self.http.get(format!("{}/element/{id}/text", self.base)).send().await.expect("text");
        let status = response.status();
        let value: Value = response.json().await.expect("json");
        if !status.is_success() {
            assert!(replaced_mid_read(&value), "text of {css}: {status} {value}");
            return None;
        }
        value["value"].as_str().map(str::to_owned)
    }

    /// Waits (up to 20 s) until the element matching `css` reads `expected` (after a click
    /// navigates, the old page may still be there for a moment).
    pub async fn wait_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.text_now(css).await.as_deref() == Some(expected) {
                return;
            }
            assert!(Instant::now() < deadline, "{css} did not read {expected:?} within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    pub async fn set_window(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Whether a JavaScript dialog (an `alert`) is open.
    pub async fn alert_open(&self) -> bool {
        let response = self.http.get(format!("{}/alert/text", self.base)).send().await.expect("alert");
        response.status().is_success()
    }

    /// Saves a PNG screenshot to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap_or_default()).expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, bytes).expect("write screenshot");
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

/// Whether a failed element read only means the page was replaced while it was read: the
/// driver says "stale element reference", or (when the old document goes in the middle of the
/// call) an "unknown error" whose message says the node no longer belongs to the document.
fn replaced_mid_read(answer: &Value) -> bool {
    let error = answer["value"]["error"].as_str().unwrap_or_default();
    let message = answer["value"]["message"].as_str().unwrap_or_default();
    error == "stale element reference"
        || (error == "unknown error" && message.contains("does not belong to the document"))
}
