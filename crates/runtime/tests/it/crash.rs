//! Nothing acknowledged is lost: a child process appends in a burst and reports each append
//! that returned; we SIGKILL it mid-burst, then check every reported entry is stored with the
//! fingerprint it was acknowledged with, and the ledger verifies.
//!
//! The child is this same test binary, re-run with `NEXUS_CRASH_CHILD_DB` set.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use store::test_support::{postgres_schema_url, sqlite};

use crate::support::{draft, signer, tenant};

const TEST_NAME: &str = "crash::sigkill_during_a_burst_loses_no_acknowledged_append";
const ACKS_BEFORE_KILL: usize = 400;

#[test]
fn sigkill_during_a_burst_loses_no_acknowledged_append() {
    if let Ok(url) = std::env::var("NEXUS_CRASH_CHILD_DB") {
        child(&url);
        return;
    }
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let sqlite = tokio.block_on(sqlite());
    let mut urls = vec![sqlite.url.clone()];
    urls.extend(tokio.block_on(postgres_schema_url()));
    for url in urls {
        let acked = run_and_kill(&url);
        assert!(acked.len() >= ACKS_BEFORE_KILL, "child acknowledged only {} appends", acked.len());
        tokio.block_on(check_after_crash(&url, &acked));
    }
}

/// Starts the child, reads acknowledgements until enough arrived, then kills it with SIGKILL.
fn run_and_kill(url: &str) -> Vec<(u64, String)> {
    #[allow(clippy::disallowed_methods)] // tests start the child they crash
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env("NEXUS_CRASH_CHILD_DB", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        if let Some(rest) = line.strip_prefix("ack ") {
            let (index, fingerprint) = rest.split_once(' ').expect("ack line");
            acked.push((index.parse().expect("index"), fingerprint.to_owned()));
            if acked.len() == ACKS_BEFORE_KILL {
                child.kill().expect("SIGKILL the child"); // std sends SIGKILL on Unix
                break;
            }
        }
    }
    let status = child.wait().expect("reap child");
    assert!(!status.success(), "the child was killed, not finished");
    acked
}

async fn check_after_crash(url: &str, acked: &[(u64, String)]) {
    let db = store::open(&store::DatabaseUrl::parse(url).expect("url")).await.expect("reopen after crash");
    let who = tenant("crash");
    for (index, fingerprint) in acked {
        let record =
            db.record(&who, *index).await.expect("read").unwrap_or_else(|| panic!("acknowledged entry #{index} lost"));
        assert_eq!(&record.fingerprint, fingerprint, "entry #{index} changed");
    }
    // Restarting the runtime over the crashed database works, and everything verifies.
    let rt = Runtime::start(RuntimeParts::new(Arc::clone(&db), signer(1), config(), None)).await.expect("restart");
    rt.ledger().checkpoint(&who).await.expect("checkpoint after restart");
    let report = rt.verifier().tenant(&who, None).await.expect("the ledger verifies after SIGKILL");
    assert!(report.entries >= acked.len() as u64);
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_millis(50),
        ..RuntimeConfig::default()
    }
}

/// The child: 8 writers appending as fast as they can, printing each acknowledgement.
fn child(url: &str) {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let db = store::open(&store::DatabaseUrl::parse(url).expect("url")).await.expect("open");
        let rt = Arc::new(Runtime::start(RuntimeParts::new(db, signer(1), config(), None)).await.expect("start"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..8u64 {
            let rt = rt.clone();
            writers.spawn(async move {
                let who = tenant("crash");
                let mut i = w;
                while Instant::now() < deadline {
                    let appended = rt.ledger().append(&who, draft(i)).await.expect("append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {} {}", appended.index, appended.fingerprint).expect("write ack");
                    out.flush().expect("flush ack");
                    i += 8;
                }
            });
        }
        while writers.join_next().await.is_some() {}
    });
}
