//! `nexus serve` as a process: it answers, reports readiness, and stops cleanly on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::Env;

fn get(address: &str, path: &str) -> (u16, String) {
    get_with(address, path, "")
}

fn get_with(address: &str, path: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A `nexus serve` child, its address and its log so far (and the rest as it comes).
struct Serving {
    child: std::process::Child,
    address: String,
    log: Vec<String>,
    lines: mpsc::Receiver<String>,
}

fn serve(env: &Env, vars: &[(&str, &str)]) -> Serving {
    let mut child = env
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .envs(vars.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start nexus serve");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let address = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("server logs its address");
        log.push(line.clone());
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    Serving { child, address, log, lines }
}

impl Serving {
    /// Signals SIGTERM the way an init system would and expects a clean exit; the whole log.
    fn stop(mut self) -> Vec<String> {
        #[allow(clippy::disallowed_methods)] // signal the child the way an init system would
        let signalled = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(signalled.success());
        let status = self.child.wait().expect("wait");
        self.log.extend(self.lines.iter());
        assert!(status.success(), "clean exit after SIGTERM: {:?}", self.log);
        assert!(self.log.iter().any(|l| l.contains("shutdown complete")), "{:?}", self.log);
        self.log
    }
}

#[test]
fn serve_answers_health_and_ready_and_stops_on_sigterm() {
    let env = Env::sqlite();
    let secret = env.ok(&["keys", "create", "--tenant", "acme", "--name", "ci"]).trim().to_owned();
    let server = serve(&env, &[]);
    let address = server.address.clone();

    let (status, body) = get(&address, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&address, "/ready");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"backend\":\"sqlite\"") && body.contains("\"status\":\"ready\""), "{body}");
    // Without the models' files each model says so, and the server is ready on its fallbacks.
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ready["checks"]["models"]["embeddings"]["status"], "absent", "{body}");
    assert!(ready["checks"]["models"]["local"]["detail"].as_str().is_some_and(|d| d.contains("cargo xtask models")));
    assert_eq!(get(&address, "/no/such/route").0, 404);
    // The API answers a key made by `nexus keys create`, and counts what it served.
    let (status, body) = get_with(&address, "/v1/whoami", &format!("Authorization: Bearer {secret}\r\n"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"tenant\":\"acme\""), "{body}");
    assert_eq!(get(&address, "/v1/whoami").0, 401);
    let (status, body) = get(&address, "/openapi.json");
    assert!(status == 200 && body.contains("\"openapi\":\"3.1"), "{status}");
    let (status, body) = get(&address, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("nexus_http_requests_total"), "{body}");

    server.stop();
    env.ok(&["verify"]);
}

/// With the models present the server answers at once and loads them in the background:
/// `/ready` says `loading` (503) until they are in, then `ready` with each model's load time;
/// a request that needs the embedder meanwhile waits for it instead of failing.
#[test]
fn the_server_answers_before_its_models_are_loaded_and_is_ready_once_they_are() {
    let Some(models) = models::testing::models_dir() else { return };
    let env = Env::sqlite();
    let secret = env.ok(&["keys", "create", "--tenant", "acme", "--name", "ci"]).trim().to_owned();
    let models = models.to_str().expect("utf-8").to_owned();
    let server = serve(&env, &[("NEXUS_MODELS_DIR", &models)]);
    let address = server.address.clone();
    let (status, body) = get(&address, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&address, "/ready");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    let embeddings = ready["checks"]["models"]["embeddings"]["status"].as_str().expect("embeddings status").to_owned();
    match status {
        503 => assert_eq!(ready["status"], "not_ready", "{body}"),
        200 => assert_eq!(embeddings, "ready", "{body}"),
        other => panic!("/ready answered {other}: {body}"),
    }
    const EMBED_BODY: &str = r#"{"model":"all-MiniLM-L6-v2","input":"hello"}"#;
    // Asked for while it may still load, an embedding waits for the model and is answered.
    let embed = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        EMBED_BODY.len(),
        EMBED_BODY
    );
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream.write_all(embed.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"all-MiniLM-L6-v2\""), "{response}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let (status, body) = get(&address, "/ready");
        if status == 200 {
            break serde_json::from_str::<serde_json::Value>(&body).expect("json");
        }
        assert!(std::time::Instant::now() < deadline, "not ready within 60 s: {body}");
        #[allow(clippy::disallowed_methods)] // a plain test thread, no executor to block
        std::thread::sleep(Duration::from_millis(50));
    };
    for model in ["embeddings", "classifier", "local"] {
        let entry = &ready["checks"]["models"][model];
        assert_eq!(entry["status"], "ready", "{ready}");
        assert!(entry["detail"].as_str().is_some_and(|d| d.starts_with("loaded in ")), "{ready}");
    }
    assert_eq!(ready["checks"]["router"]["name"], "classifier", "{ready}");
    let log = server.stop();
    assert!(log.iter().any(|l| l.contains("loading the in-process models is over")), "{log:?}");
}
