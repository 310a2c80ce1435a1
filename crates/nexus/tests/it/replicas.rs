//! Several real `nexus serve` processes (the built binary) on one PostgreSQL database, the way
//! an operator scales out (or on one SQLite file, see [`Backend`]): one throwaway schema from
//! `NEXUS_TEST_POSTGRES_URL`, one data
//! directory (so the same ledger signing key and token secret), a port each, and a fake OpenAI
//! upstream all of them call. Any replica can be killed with SIGKILL (or stopped with SIGTERM)
//! and started again; the CLI runs against the same database.
//!
//! ```ignore
//! let Some(mut cluster) = Replicas::start(2).await else { return };   // skipped outside CI without PostgreSQL
//! let key = cluster.admin_key("acme").await;
//! let answer = cluster.chat(1, &key, "hello").await;                  // POST /v1/chat/completions on replica 1
//! cluster.kill(0);                                                    // kill -9 replica 0
//! let ledger = cluster.client.get(cluster.url(1, "/v1/ledger")).bearer_auth(&key).send().await;
//! ```
//!
//! Rate limits and the monthly budget are set far out of the way (see [`Options`]); a panicking
//! test prints the tail of every replica's log.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_openai::FakeOpenAi;
use crate::support::Env;

/// Provider settings a developer's shell may hold; replicas see only the fake upstream.
const PROVIDER_VARIABLES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "MISTRAL_API_KEY",
    "MISTRAL_BASE_URL",
    "OLLAMA_BASE_URL",
];
/// Log lines kept per replica.
const LOG_LINES: usize = 2000;

/// Where the replicas keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A throwaway schema of `NEXUS_TEST_POSTGRES_URL`.
    Postgres,
    /// One SQLite file in the shared data directory (several processes may open it; they
    /// share no notification channel, so this shows what their periodic checks alone do).
    Sqlite,
}

/// How to start the cluster.
pub struct Options {
    pub replicas: usize,
    pub backend: Backend,
    /// Extra `NEXUS_*` (or other) variables for every replica and CLI call, e.g.
    /// `("NEXUS_LOG_LEVEL", "debug")`. They override the defaults below.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self { replicas: 2, backend: Backend::Postgres, env: Vec::new() }
    }
}

/// One running `nexus serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<VecDeque<String>>>,
    /// Reads the log; ends when the process has exited and its last line is kept.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Waits for the process to exit and its log to be read to the end.
    fn reap(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }
}

pub struct Replicas {
    env: Env,
    pub provider: FakeOpenAi,
    pub client: reqwest::Client,
    variables: Vec<(String, String)>,
    servers: Vec<Option<Server>>,
    /// Logs of replicas that were killed or stopped, for the failure report.
    past_logs: Vec<(usize, Vec<String>)>,
}

impl Replicas {
    /// `count` replicas on a fresh schema, or `None` (with a message) when PostgreSQL tests are
    /// not configured outside CI. With `CI=true` a missing or unreachable PostgreSQL fails.
    pub async fn start(count: usize) -> Option<Self> {
        Self::start_with(Options { replicas: count, ..Options::default() }).await
    }

    /// As [`Self::start`], with options; a SQLite cluster always starts.
    pub async fn start_with(options: Options) -> Option<Self> {
        let env = match options.backend {
            Backend::Sqlite => Env::sqlite(),
            Backend::Postgres => {
                let Some(url) = store::test_support::postgres_schema_url().await else {
                    eprintln!("skipped: NEXUS_TEST_POSTGRES_URL is not set (multi-replica tests need PostgreSQL)");
                    return None;
                };
                Env::with_database(url)
            }
        };
        let provider = FakeOpenAi::start();
        let mut variables: Vec<(String, String)> = [
            ("OPENAI_API_KEY", "sk-fake".to_owned()),
            ("OPENAI_BASE_URL", provider.base_url()),
            ("NEXUS_RATE_LIMIT_KEY_RPM", "100000000".to_owned()),
            ("NEXUS_RATE_LIMIT_TENANT_RPM", "100000000".to_owned()),
            ("NEXUS_RATE_LIMIT_CHAINS_PER_HOUR", "100000000".to_owned()),
            ("NEXUS_BUDGET_MONTHLY_USD", "1000000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in options.env {
            variables.retain(|(k, _)| *k != key);
            variables.push((key, value));
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let mut cluster = Self { env, provider, client, variables, servers: Vec::new(), past_logs: Vec::new() };
        // One process lays out the data directory (keys, token secret) and migrates the
        // schema before the replicas start, so they never race to create either.
        cluster.nexus(&["seed"]).await;
        for _ in 0..options.replicas {
            cluster.servers.push(None);
        }
        let started: Vec<_> = (0..options.replicas).map(|i| cluster.spawn(i)).collect();
        for (i, server) in started.into_iter().enumerate() {
            cluster.servers[i] = Some(server);
        }
        for i in 0..options.replicas {
            cluster.wait_ready(i).await;
        }
        Some(cluster)
    }

    /// Number of replica slots (running or not).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// The database URL every replica uses (a schema of `NEXUS_TEST_POSTGRES_URL`, or the
    /// SQLite file).
    pub fn database_url(&self) -> String {
        self.env.url()
    }

    /// `http://127.0.0.1:PORT` of replica `i`. Panics if it is not running.
    pub fn base(&self, i: usize) -> &str {
        &self.server(i).base
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.base(i))
    }

    /// Whether replica `i` is running (not killed or stopped).
    pub fn is_running(&self, i: usize) -> bool {
        self.servers.get(i).is_some_and(Option::is_some)
    }

    /// `kill -9` replica `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let mut server = self.take(i);
        server.child.kill().expect("SIGKILL the replica");
        let _ = server.reap();
        self.keep_log(i, &server);
    }

    /// SIGTERM replica `i` and wait for it to exit; panics unless it exits cleanly.
    pub fn stop(&mut self, i: usize) {
        let mut server = self.take(i);
        #[allow(clippy::disallowed_methods)] // signal the child the way an init system would
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(signalled.success());
        let status = server.reap().expect("wait for the replica");
        self.keep_log(i, &server);
        assert!(status.success(), "replica {i} exited with {status} after SIGTERM:\n{}", lines(&server).join("\n"));
    }

    /// Starts replica `i` again (on a new port) after a kill or stop, and waits until ready.
    pub async fn restart(&mut self, i: usize) {
        assert!(!self.is_running(i), "replica {i} is still running");
        let server = self.spawn(i);
        self.servers[i] = Some(server);
        self.wait_ready(i).await;
    }

    /// Runs the CLI (`nexus ARGS`) on the cluster's data directory and database; panics
    /// unless it succeeds; returns its standard output.
    pub async fn nexus(&self, args: &[&str]) -> String {
        let out = self.nexus_output(args).await;
        assert!(out.status.success(), "nexus {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// As [`Self::nexus`], whatever the outcome.
    pub async fn nexus_output(&self, args: &[&str]) -> Output {
        self.nexus_output_with(args, &[]).await
    }

    /// As [`Self::nexus_output`], with more variables set (or overridden).
    pub async fn nexus_output_with(&self, args: &[&str], variables: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(variables.iter().copied());
        tokio::process::Command::from(command).output().await.expect("run nexus")
    }

    /// The data directory every replica and the CLI share.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.env.data_dir()
    }

    /// As [`Self::nexus`], with `input` on its standard input (e.g. `--password-stdin`).
    pub async fn nexus_with_input(&self, args: &[&str], input: &str) -> String {
        use tokio::io::AsyncWriteExt as _;
        let mut command = tokio::process::Command::from(self.command(args));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("run nexus");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).await.expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().await.expect("nexus finishes");
        assert!(out.status.success(), "nexus {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new admin key (level 5) of `tenant`, made with `nexus keys create`; returns the secret.
    pub async fn admin_key(&self, tenant: &str) -> String {
        let args = ["keys", "create", "--tenant", tenant, "--name", "admin", "--role", "admin", "--level", "5"];
        self.nexus(&args).await.trim().to_owned()
    }

    /// `POST /v1/chat/completions` on replica `i` (model `gpt-4o-mini`, answered by the fake
    /// upstream).
    pub async fn chat(&self, i: usize, key: &str, content: &str) -> reqwest::Response {
        self.client
            .post(self.url(i, "/v1/chat/completions"))
            .bearer_auth(key)
            // Durable answers: tests kill replicas and count what their answers promised.
            .header("x-nexus-ledger-ack", "durable")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}))
            .send()
            .await
            .expect("send a chat completion")
    }

    /// The last lines replica `i` logged (its current or last run).
    pub fn log(&self, i: usize) -> Vec<String> {
        match self.servers.get(i).and_then(Option::as_ref) {
            Some(server) => lines(server),
            None => self.past_logs.iter().rev().find(|(n, _)| *n == i).map(|(_, l)| l.clone()).unwrap_or_default(),
        }
    }

    fn server(&self, i: usize) -> &Server {
        self.servers.get(i).and_then(Option::as_ref).unwrap_or_else(|| panic!("replica {i} is not running"))
    }

    fn take(&mut self, i: usize) -> Server {
        self.servers.get_mut(i).and_then(Option::take).unwrap_or_else(|| panic!("replica {i} is not running"))
    }

    fn keep_log(&mut self, i: usize, server: &Server) {
        self.past_logs.push((i, lines(server)));
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.env.command(args);
        for name in PROVIDER_VARIABLES {
            command.env_remove(name);
        }
        command.envs(self.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Starts `nexus serve` on a free port; its address is read from its log.
    fn spawn(&self, i: usize) -> Server {
        let mut child = self
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nexus serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        let reader = std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Only the server's own line: other lines (a channel's debug output) name
                // other addresses, sometimes before the server listens.
                if let Some(address) =
                    line.split("nexus listening on http://").nth(1).and_then(|rest| rest.split_whitespace().next())
                    && let Some(tx) = address_tx.take()
                {
                    let _ = tx.send(address.to_owned());
                }
                let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() == LOG_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                panic!("replica {i} did not report its address within 60 s:\n{}", Vec::from(log.clone()).join("\n"));
            }
        };
        Server { child, base: format!("http://{address}"), log, reader: Some(reader) }
    }

    async fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.url(i, "/ready");
        loop {
            if let Ok(response) = self.client.get(&url).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "replica {i} not ready within 60 s:\n{}", self.log(i).join("\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn lines(server: &Server) -> Vec<String> {
    Vec::from(server.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
}

impl Drop for Replicas {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for (i, slot) in self.servers.iter_mut().enumerate() {
            if let Some(server) = slot.as_mut() {
                let _ = server.child.kill();
                let _ = server.reap();
                if panicking {
                    self.past_logs.push((i, lines(server)));
                }
            }
        }
        if panicking {
            for (i, log) in &self.past_logs {
                let tail = &log[log.len().saturating_sub(50)..];
                eprintln!("--- replica {i}, last {} log lines ---\n{}", tail.len(), tail.join("\n"));
            }
        }
    }
}

/// The harness itself: a replica killed with calls in flight drops them while the other keeps
/// answering; it comes back on a new port; a stopped one exits cleanly; every answered call is
/// in the shared ledger.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_can_be_killed_restarted_and_stopped_while_the_other_serves() {
    let Some(mut cluster) = Replicas::start(2).await else { return };
    let key = cluster.admin_key("acme").await;
    let mut answered = 0;
    for i in 0..2 {
        assert_eq!(cluster.chat(i, &key, "hello").await.status(), reqwest::StatusCode::OK, "replica {i}");
        answered += 1;
    }

    cluster.provider.set_delay(Duration::from_millis(500));
    let in_flight = cluster
        .client
        .post(cluster.url(0, "/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "slow"}]}))
        .send();
    let (dropped, ()) = tokio::join!(in_flight, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.kill(0);
    });
    assert!(dropped.is_err(), "the call in flight on the killed replica fails: {dropped:?}");
    assert!(!cluster.is_running(0));
    cluster.provider.set_delay(Duration::ZERO);
    assert_eq!(cluster.chat(1, &key, "still here").await.status(), reqwest::StatusCode::OK);
    answered += 1;

    cluster.restart(0).await;
    assert_eq!(cluster.chat(0, &key, "back").await.status(), reqwest::StatusCode::OK);
    answered += 1;
    cluster.stop(1);
    assert!(cluster.log(1).iter().any(|l| l.contains("shutdown complete")), "{:?}", cluster.log(1));
    cluster.stop(0);

    let database = sqlx::PgPool::connect(&cluster.database_url()).await.expect("connect");
    let recorded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE tenant_id = 'acme' AND kind = 'model_call'")
            .fetch_one(&database)
            .await
            .expect("count");
    assert_eq!(recorded, answered, "every answered call is in the ledger");
    assert!(cluster.nexus(&["verify"]).await.contains("ok"));
}
