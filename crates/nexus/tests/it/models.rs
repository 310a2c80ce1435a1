//! The in-process models in the binary (with `cargo xtask models` fetched; CI always has them):
//! gate 2 measures a real intent similarity, ingest stores vectors so search is hybrid, and the
//! local model answers `nexus run` with no provider configured.

use crate::support::{Env, fake_model};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_two_is_live_and_knowledge_is_hybrid_with_the_models() {
    let Some(models) = models::testing::models_dir() else { return };
    let server = fake_model(&[
        ("Break the following task", r#"[{"action": "compute", "tool": "compute_stats", "params": {"values": [1, 2, 3, 4]}, "persona": "analyst"}]"#),
        ("Declare your intent", r#"{"planned_action": "compute the mean", "tool_params": {"values": [1, 2, 3, 4]}, "reasoning": "asked for statistics", "confidence": 0.9}"#),
        ("Answer the user", "The mean is 2.5."),
    ])
    .await;
    let env = Env::sqlite();
    let dir = env.data_dir().join("docs");
    std::fs::create_dir_all(&dir).expect("docs dir");
    std::fs::write(dir.join("ledger.md"), "# Ledger\n\nEvery action is sealed in a tamper-evident Merkle log.")
        .expect("write");
    let ingest = env
        .command(&["ingest", dir.to_str().expect("utf-8"), "--namespace", "default"])
        .env("NEXUS_MODELS_DIR", &models)
        .output()
        .expect("ingest");
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));

    let out = env
        // Planned on the normal tier whatever the classifier thinks of it: this test is about gate 2.
        .command(&["run", "--tier", "normal", "What is the mean of 1, 2, 3 and 4?"])
        .env("NEXUS_OPENAI_COMPATIBLE_BASE_URL", server.uri())
        .env("NEXUS_MODEL_NORMAL", "openai-compatible/gpt-4o-mini")
        .env("NEXUS_MODELS_DIR", &models)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() || stdout.contains("awaiting_approval"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find(|l| l.contains("analyst | compute_stats")).expect("the step line");
    let intent = line.split("intent=").nth(1).expect("intent gate");
    assert!(!intent.starts_with("skip"), "gate 2 measured a similarity: {line}");
    let score: f64 = intent.split(['(', ')']).nth(1).and_then(|s| s.parse().ok()).expect("a score");
    assert!(score > 0.0 && score <= 1.0, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_answers_when_no_provider_is_configured() {
    let Some(models) = models::testing::models_dir() else { return };
    let env = Env::sqlite();
    let out = env.command(&["run", "hello"]).env("NEXUS_MODELS_DIR", &models).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A 135M model rarely plans valid JSON; what matters is that it was called and answered
    // through the ledger, offline.
    assert!(!stderr.contains("no model provider is configured"), "{stderr}");
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", env.data_dir().join("nexus.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect");
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM ledger_entries WHERE kind = 'model_call'")
        .fetch_all(&mut conn)
        .await
        .expect("read the ledger");
    assert!(
        !payloads.is_empty() && payloads.iter().all(|p| p.contains("\"provider\":\"local\"")),
        "{payloads:?}\n{stdout}"
    );
    // Small talk is answered at once: one call, the answer, with no plan before it.
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    assert!(payloads[0].contains("\"purpose\":\"answer\""), "{payloads:?}");
    let routes: Vec<String> = sqlx::query_scalar("SELECT payload FROM ledger_entries WHERE kind = 'route'")
        .fetch_all(&mut conn)
        .await
        .expect("read the ledger");
    assert!(routes.len() == 1 && routes[0].contains("\"tier\":\"trivial\""), "{routes:?}");
    let ledger = env.ok(&["verify"]);
    assert!(ledger.contains("ok: tenant demo"), "{ledger}");
}
