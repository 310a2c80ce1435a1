//! `send_email` against a fake SMTP server speaking just enough of the protocol.

use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tools::builtin::{SendEmail, SmtpTls};
use tools::{Availability, BuiltinSettings, Tool, ToolError};

use crate::support::{failed, invalid_param, no_files, settings};

/// What the fake server was told.
#[derive(Debug, Default)]
struct Captured {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

/// Accepts one SMTP session on 127.0.0.1; `reject_recipients` answers RCPT with 550.
#[allow(clippy::disallowed_methods)]
async fn fake_smtp(reject_recipients: bool) -> (SocketAddr, JoinHandle<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let session = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let mut captured = Captured::default();
        writer.write_all(b"220 fake.test ESMTP ready\r\n").await.expect("write a reply");
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await.expect("read a command") == 0 {
                break;
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                b"250 fake.test\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                captured.mail_from = command["MAIL FROM:".len()..].to_owned();
                b"250 2.1.0 OK\r\n"
            } else if upper.starts_with("RCPT TO:") {
                captured.rcpt_to.push(command["RCPT TO:".len()..].to_owned());
                if reject_recipients { b"550 5.1.1 No such user\r\n" } else { b"250 2.1.5 OK\r\n" }
            } else if upper == "DATA" {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.expect("write a reply");
                let mut data = Vec::new();
                while !data.ends_with(b"\r\n.\r\n") {
                    let mut byte = [0u8; 1];
                    reader.read_exact(&mut byte).await.expect("read data");
                    data.push(byte[0]);
                }
                captured.data = String::from_utf8(data).expect("UTF-8 data");
                b"250 2.0.0 Queued\r\n"
            } else if upper == "QUIT" {
                writer.write_all(b"221 2.0.0 Bye\r\n").await.expect("write a reply");
                break;
            } else if upper == "RSET" || upper == "NOOP" {
                b"250 OK\r\n"
            } else {
                b"502 5.5.2 Unknown command\r\n"
            };
            writer.write_all(reply).await.expect("write a reply");
        }
        captured
    });
    (address, session)
}

fn smtp_settings(address: SocketAddr) -> BuiltinSettings {
    BuiltinSettings {
        smtp_host: Some(address.ip().to_string()),
        smtp_port: Some(address.port()),
        smtp_from: Some("Nexus <nexus@example.org>".into()),
        smtp_tls: SmtpTls::None,
        ..settings()
    }
}

#[tokio::test]
async fn an_email_is_delivered_over_smtp() {
    let (address, session) = fake_smtp(false).await;
    let tool = SendEmail::new(&smtp_settings(address));
    assert_eq!(tool.availability(), Availability::Available);
    let params = json!({
        "to": ["alice@example.org", "Bob <bob@example.org>"],
        "cc": ["carol@example.org"],
        "subject": "Quarterly report",
        "body": "The numbers are in.\r\nSee you soon.",
    });
    let result = tool.call(&no_files(), params).await.unwrap();
    assert_eq!(result["sent"], true);
    assert_eq!(result["to"], json!(["alice@example.org", "Bob <bob@example.org>"]));
    let message_id = result["message_id"].as_str().unwrap().to_owned();

    let captured = session.await.unwrap();
    assert_eq!(captured.mail_from, "<nexus@example.org>");
    assert_eq!(captured.rcpt_to, ["<alice@example.org>", "<bob@example.org>", "<carol@example.org>"]);
    let data = &captured.data;
    for expected in [
        "From: Nexus <nexus@example.org>\r\n",
        "To: alice@example.org, Bob <bob@example.org>\r\n",
        "Cc: carol@example.org\r\n",
        "Subject: Quarterly report\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "\r\n\r\nThe numbers are in.\r\nSee you soon.\r\n.\r\n",
    ] {
        assert!(data.contains(expected), "missing {expected:?} in\n{data}");
    }
    assert!(data.contains(&format!("Message-ID: {message_id}\r\n")), "{data}");
}

#[tokio::test]
async fn a_single_recipient_may_be_a_string() {
    let (address, session) = fake_smtp(false).await;
    let tool = SendEmail::new(&smtp_settings(address));
    let result =
        tool.call(&no_files(), json!({"to": "dave@example.org", "subject": "Hi", "body": "Hello"})).await.unwrap();
    assert_eq!(result["to"], json!(["dave@example.org"]));
    assert_eq!(session.await.unwrap().rcpt_to, ["<dave@example.org>"]);
}

#[tokio::test]
async fn a_rejected_recipient_fails_for_good() {
    let (address, session) = fake_smtp(true).await;
    let tool = SendEmail::new(&smtp_settings(address));
    let (message, transient) =
        failed(tool.call(&no_files(), json!({"to": "ghost@example.org", "subject": "Hi", "body": "x"})).await);
    assert!(!transient, "{message}");
    assert!(session.await.unwrap().data.is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().expect("local address");
    drop(listener);
    let tool = SendEmail::new(&smtp_settings(address));
    let (message, transient) =
        failed(tool.call(&no_files(), json!({"to": "a@example.org", "subject": "Hi", "body": "x"})).await);
    assert!(transient, "{message}");
}

#[tokio::test]
async fn unconfigured_email_is_unavailable() {
    for (host, from, missing) in [
        (None, None, "NEXUS_SMTP_HOST and NEXUS_SMTP_FROM"),
        (Some("127.0.0.1"), None, "NEXUS_SMTP_FROM"),
        (None, Some("nexus@example.org"), "NEXUS_SMTP_HOST"),
        (Some("127.0.0.1"), Some("not an address"), "a valid NEXUS_SMTP_FROM"),
    ] {
        let tool = SendEmail::new(&BuiltinSettings {
            smtp_host: host.map(str::to_owned),
            smtp_from: from.map(str::to_owned),
            ..settings()
        });
        assert_eq!(tool.availability(), Availability::Unconfigured { missing: missing.into() });
        let result = tool.call(&no_files(), json!({"to": "a@example.org", "subject": "s", "body": "b"})).await;
        assert!(matches!(result, Err(ToolError::Unavailable { .. })), "{result:?}");
    }
}

#[tokio::test]
async fn bad_addresses_and_fields_are_named() {
    let tool = SendEmail::new(&smtp_settings("127.0.0.1:9".parse().unwrap()));
    let cases = [
        (json!({"to": "not-an-address", "subject": "s", "body": "b"}), "to"),
        (json!({"to": ["a@example.org", "bad@"], "subject": "s", "body": "b"}), "to"),
        (json!({"to": [], "subject": "s", "body": "b"}), "to"),
        (json!({"to": "a@example.org", "cc": ["nope"], "subject": "s", "body": "b"}), "cc"),
        (json!({"to": "a@example.org", "subject": "s\r\nBcc: evil@example.org", "body": "b"}), "subject"),
        (json!({"to": "a@example.org", "body": "b"}), "subject"),
        (json!({"to": "a@example.org", "subject": "s", "body": "b", "bcc": ["x@example.org"]}), "bcc"),
        (json!({"to": 42, "subject": "s", "body": "b"}), "to"),
    ];
    for (params, param) in cases {
        assert_eq!(invalid_param(tool.call(&no_files(), params.clone()).await), param, "{params}");
    }
}
