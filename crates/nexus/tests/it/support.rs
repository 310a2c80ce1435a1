//! Running the built `nexus` binary against a fresh data directory.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::json;
use sqlx::Connection as _;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fresh data directory, and optionally a database URL elsewhere (PostgreSQL).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
}

impl Env {
    pub fn sqlite() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir"), database_url: None }
    }

    pub fn with_database(url: String) -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir"), database_url: Some(url) }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir().join("nexus.db").display()))
    }

    /// `nexus --data-dir … [--database-url …] ARGS`, with no NEXUS_* settings inherited.
    pub fn command(&self, args: &[&str]) -> Command {
        #[allow(clippy::disallowed_methods)] // tests run the real binary
        let mut command = Command::new(env!("CARGO_BIN_EXE_nexus"));
        for (key, _) in std::env::vars() {
            if key.starts_with("NEXUS_") {
                command.env_remove(key);
            }
        }
        command.current_dir(self.dir.path()).arg("--data-dir").arg(self.data_dir());
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command.args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run nexus")
    }

    /// Runs and expects success, returning standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "nexus {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Asserts a failure reported the way users are promised: a non-zero exit, one `error:` line
/// naming `needle`, and no panic.
pub fn assert_clean_failure(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(errors.len(), 1, "exactly one line on stderr: {stderr}");
    assert!(errors[0].starts_with("error: "), "{stderr}");
    assert!(errors[0].contains(needle), "{stderr:?} should mention {needle:?}");
}

/// Changes the stored ledger the way an attacker with database access could: with the
/// append-only triggers removed.
pub async fn tamper(url: &str, statement: &str) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query("DROP TRIGGER ledger_entries_no_update").execute(&mut conn).await.expect("drop trigger");
        sqlx::query(statement).execute(&mut conn).await.expect("tamper");
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_change")
            .execute(&mut conn)
            .await
            .expect("disable trigger");
        sqlx::query(statement).execute(&mut conn).await.expect("tamper");
    }
}

/// A fake OpenAI-compatible model: each reply is chosen by a phrase its prompt contains.
pub async fn fake_model(replies: &[(&str, &str)]) -> MockServer {
    let server = MockServer::start().await;
    for (phrase, content) in replies {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(*phrase))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
            })))
            .mount(&server)
            .await;
    }
    server
}
