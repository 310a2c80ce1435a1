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

#[test]
fn serve_answers_health_and_ready_and_stops_on_sigterm() {
    let env = Env::sqlite();
    let secret = env.ok(&["keys", "create", "--tenant", "acme", "--name", "ci"]).trim().to_owned();
    let mut child = env
        .command(&["serve", "--listen", "127.0.0.1:0"])
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

    let (status, body) = get(&address, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&address, "/ready");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"backend\":\"sqlite\"") && body.contains("\"status\":\"ready\""), "{body}");
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

    #[allow(clippy::disallowed_methods)] // signal the child the way an init system would
    let signalled = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(signalled.success());
    let status = child.wait().expect("wait");
    log.extend(lines.iter());
    assert!(status.success(), "clean exit after SIGTERM: {log:?}");
    assert!(log.iter().any(|l| l.contains("shutdown complete")), "{log:?}");
    env.ok(&["verify"]);
}
