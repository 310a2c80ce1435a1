//! Live settings end to end.
//!
//! - Two `nexus serve` replicas on one PostgreSQL database: a provider's base URL set through
//!   `PUT /v1/settings` on one replica moves the other's traffic to that server, and a second
//!   change moves both to another — with no restart. Secrets read back masked and are stored
//!   sealed; every change is an `admin_change` ledger entry with digests, never the secret;
//!   bad values, unknown names, pinned and bootstrap settings are refused naming the setting,
//!   and change nothing; only operator admins may read or change settings. The environment was
//!   imported on first start.
//! - The command line on SQLite: a secret set from standard input, masked everywhere; a wrong or
//!   missing master key refused before anything is read; rekey; export and import round trip.
//! - A Telegram bot token set through the API starts the bot on a running server; its plugin
//!   disabled stops the bot, enabled starts it again.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::fake_openai::FakeOpenAi;
use crate::replicas::{Backend, Options, Replicas};
use crate::support::{Env, assert_clean_failure};

const BRAVE_KEY: &str = "brave-SECRET-0123456789";

async fn put(cluster: &Replicas, i: usize, key: &str, values: Value) -> (StatusCode, Value) {
    let response = cluster
        .client
        .put(cluster.url(i, "/v1/settings"))
        .bearer_auth(key)
        .json(&json!({ "values": values }))
        .send()
        .await
        .expect("PUT /v1/settings");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn settings(cluster: &Replicas, i: usize, key: &str) -> Vec<Value> {
    let response =
        cluster.client.get(cluster.url(i, "/v1/settings")).bearer_auth(key).send().await.expect("GET /v1/settings");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    body["settings"].as_array().expect("settings").clone()
}

fn setting<'a>(list: &'a [Value], key: &str) -> &'a Value {
    list.iter().find(|s| s["key"] == key).unwrap_or_else(|| panic!("{key} is listed"))
}

/// Sends chat completions to replica `i` until `upstream` has answered one (the change is in
/// force there), failing after 10 s.
async fn until_served_by(cluster: &Replicas, i: usize, key: &str, upstream: &FakeOpenAi) {
    let before = upstream.calls();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = cluster.chat(i, key, "hello").await;
        if response.status().is_success() && upstream.calls() > before {
            return;
        }
        assert!(Instant::now() < deadline, "replica {i} never moved to {}", upstream.base_url());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_provider_address_changed_live_moves_every_replica_without_a_restart() {
    // The harness sets OPENAI_BASE_URL, which would pin the setting; blank, it pins nothing.
    let options =
        Options { replicas: 2, backend: Backend::Postgres, env: vec![("OPENAI_BASE_URL".into(), String::new())] };
    let Some(cluster) = Replicas::start_with(options).await else { return };
    let second = FakeOpenAi::start();
    let admin = cluster.admin_key("demo").await;

    // Set on replica 0; replica 1 uses it within a second.
    let (status, report) =
        put(&cluster, 0, &admin, json!({"providers.openai.base_url": cluster.provider.base_url()})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["changed"][0]["key"], "providers.openai.base_url");
    assert_eq!(report["changed"][0]["live"], true);
    let revision = report["revision"].as_i64().expect("revision");
    until_served_by(&cluster, 1, &admin, &cluster.provider).await;

    // Changed on replica 1; both move to the second server, and the first gets nothing more.
    let (status, report) = put(&cluster, 1, &admin, json!({"providers.openai.base_url": second.base_url()})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["revision"].as_i64(), Some(revision + 1));
    until_served_by(&cluster, 0, &admin, &second).await;
    until_served_by(&cluster, 1, &admin, &second).await;
    let (first_calls, second_calls) = (cluster.provider.calls(), second.calls());
    for i in [0, 1, 0, 1] {
        assert!(cluster.chat(i, &admin, "hello").await.status().is_success());
    }
    assert_eq!(cluster.provider.calls(), first_calls, "no call reached the old address");
    assert_eq!(second.calls(), second_calls + 4);

    // A secret: stored sealed, shown masked, its digest keyed.
    let (status, report) = put(&cluster, 0, &admin, json!({"tools.brave_api_key": BRAVE_KEY})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let list = settings(&cluster, 1, &admin).await;
    let brave = setting(&list, "tools.brave_api_key");
    assert_eq!(
        (&brave["value"], &brave["source"], &brave["secret"]),
        (&json!("********"), &json!("database"), &json!(true))
    );
    let openai_key = setting(&list, "providers.openai.api_key");
    assert_eq!((&openai_key["value"], &openai_key["source"]), (&json!("********"), &json!("env")));
    assert_eq!(openai_key["pinned_by"], "OPENAI_API_KEY");
    assert_eq!(setting(&list, "providers.openai.base_url")["value"], second.base_url());
    assert_eq!(setting(&list, "limits.key_requests_per_minute")["stored"], true, "the environment was imported");
    assert!(!list.iter().any(|s| s.to_string().contains(BRAVE_KEY) || s.to_string().contains("sk-fake")));
    let mut db = sqlx::PgConnection::connect(&cluster.database_url()).await.expect("connect");
    let stored: (String, bool) =
        sqlx::query_as("SELECT value, encrypted FROM settings WHERE key = 'tools.brave_api_key'")
            .fetch_one(&mut db)
            .await
            .expect("the row");
    assert!(stored.1 && stored.0.starts_with("v1:") && !stored.0.contains(BRAVE_KEY), "{stored:?}");

    // Refusals name the setting and change nothing.
    for (values, status, field) in [
        (json!({"tools.smtp.port": 0}), StatusCode::UNPROCESSABLE_ENTITY, "tools.smtp.port"),
        (json!({"log.level": "nexus=[oops"}), StatusCode::UNPROCESSABLE_ENTITY, "log.level"),
        (json!({"limits.key_requests_per_minute": 5}), StatusCode::CONFLICT, "limits.key_requests_per_minute"),
        (json!({"models.normal": "nosuch/model"}), StatusCode::UNPROCESSABLE_ENTITY, "models.normal"),
        (
            json!({"providers.openai.base_url": "ftp://x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "providers.openai.base_url",
        ),
        (
            json!({"limits.key_requests_per_minut": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "limits.key_requests_per_minut",
        ),
        (json!({"providers.openai.api_key": "sk-other"}), StatusCode::CONFLICT, "providers.openai.api_key"),
        (json!({"database_url": "sqlite:///tmp/x.db"}), StatusCode::CONFLICT, "database_url"),
        // All or none: the valid first change is not kept either.
        (
            json!({"tools.smtp.host": "mail.example", "jobs.workers": "many"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "jobs.workers",
        ),
    ] {
        let (got, body) = put(&cluster, 0, &admin, values.clone()).await;
        assert_eq!(got, status, "{values}: {body}");
        assert_eq!(body["error"]["field"], field, "{values}: {body}");
    }
    let (_, unknown) = put(&cluster, 0, &admin, json!({"limits.key_requests_per_minut": 5})).await;
    assert!(unknown["error"]["message"].as_str().unwrap_or("").contains("did you mean limits.key_requests_per_minute"));
    let after = settings(&cluster, 0, &admin).await;
    assert_eq!(setting(&after, "tools.smtp.host")["source"], "unset");
    assert_eq!(setting(&after, "tools.smtp.port")["stored"], false);
    assert_eq!(setting(&after, "providers.openai.base_url")["value"], second.base_url());
    let (_, noop) = put(&cluster, 0, &admin, json!({"tools.searxng_url": "http://127.0.0.1:9"})).await;
    assert_eq!(noop["revision"].as_i64(), Some(revision + 3), "the refusals moved no revision: {noop}");

    // Only operator admins.
    let member = cluster
        .nexus(&["keys", "create", "--tenant", "demo", "--name", "member", "--role", "member", "--level", "3"])
        .await;
    let (status, _) = put(&cluster, 0, member.trim(), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = cluster.admin_key("acme").await;
    let (status, _) = put(&cluster, 0, &other, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The ledger has each change, with digests and never a secret.
    let ledger: Value = cluster
        .client
        .get(cluster.url(0, "/v1/ledger?kind=admin_change&limit=500"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("ledger")
        .json()
        .await
        .expect("JSON");
    let entries: Vec<&Value> = ledger["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["payload"]["action"] == "setting.changed")
        .collect();
    let base_urls: Vec<&&Value> =
        entries.iter().filter(|e| e["payload"]["setting"] == "providers.openai.base_url").collect();
    assert_eq!(base_urls.len(), 2, "{entries:#?}");
    let expected =
        format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(second.base_url().as_bytes())));
    assert!(base_urls.iter().any(|e| e["payload"]["new_digest"] == expected.as_str()), "{base_urls:#?}");
    let brave: Vec<&&Value> = entries.iter().filter(|e| e["payload"]["setting"] == "tools.brave_api_key").collect();
    assert_eq!(brave.len(), 1);
    assert!(brave[0]["payload"]["new_digest"].as_str().unwrap_or("").starts_with("hmac-sha256:"));
    assert_eq!(brave[0]["payload"]["old_digest"], Value::Null);
    assert!(!ledger.to_string().contains(BRAVE_KEY));

    // The log filter changes live on every replica.
    let (status, report) =
        put(&cluster, 0, &admin, json!({"log.level": "debug,sqlx=warn,hyper=info,hyper_util=info"})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.log(1).iter().any(|l| l.contains("log.level changed")) {
        assert!(Instant::now() < deadline, "replica 1 never applied the new log level");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each replica reports the settings it runs with.
    for i in [0, 1] {
        let health: Value = cluster
            .client
            .get(cluster.url(i, "/v1/health/components"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("JSON");
        let settings = &health["components"]["settings"];
        assert_eq!(settings["ok"], true, "{health}");
        assert_eq!(settings["master_key_id"].as_str().map(str::len), Some(16), "{health}");
    }
}

#[test]
fn the_command_line_seals_masks_rekeys_and_refuses_a_wrong_key() {
    let env = Env::sqlite();
    env.ok(&["seed"]);
    let key_file = env.data_dir().join("keys").join("master.key");
    assert!(key_file.is_file(), "the master key was made on first start");

    // A secret from standard input, never echoed back.
    let mut set = env.command(&["settings", "set", "providers.openai.api_key"]);
    set.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = set.spawn().expect("run");
    {
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(b"sk-cli-SECRET-42\n").expect("write");
    }
    let out = child.wait_with_output().expect("finishes");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&["settings", "set", "models.normal", "openai/gpt-4o"]);
    let shown = env.ok(&["settings", "get", "providers.openai.api_key"]);
    assert!(shown.contains("********") && shown.contains("database") && !shown.contains("sk-cli"), "{shown}");
    let listed = env.ok(&["settings", "list", "--json"]);
    assert!(!listed.contains("sk-cli"));
    let exported = env.ok(&["settings", "export"]);
    assert!(exported.contains("\"sealed\"") && !exported.contains("sk-cli"), "{exported}");
    let database = std::fs::read(env.data_dir().join("nexus.db")).expect("read the database");
    assert!(!database.windows(16).any(|w| w == b"sk-cli-SECRET-42"), "the secret is stored sealed");

    // Mistakes change nothing and name the setting.
    assert_clean_failure(&env.run(&["settings", "set", "models.normal", "nosuch/model"]), 2, "models.normal");
    assert_clean_failure(&env.run(&["settings", "set", "jobs.workers", "65"]), 2, "jobs.workers");
    assert_clean_failure(&env.run(&["settings", "set", "server.listen", "0.0.0.0:1"]), 2, "nexus.toml");
    assert!(env.ok(&["settings", "get", "models.normal"]).contains("openai/gpt-4o"));

    // A wrong key is refused before anything is read; a missing key file is never replaced.
    let wrong = "11".repeat(32);
    let out = env.command(&["settings", "list"]).env("NEXUS_MASTER_KEY", &wrong).output().expect("run");
    assert_clean_failure(&out, 2, "is not the key this database's secrets were sealed with");
    let out = env.command(&["seed"]).env("NEXUS_MASTER_KEY", &wrong).output().expect("run");
    assert_clean_failure(&out, 2, "not the key");
    let aside = env.path("master.key.aside");
    std::fs::rename(&key_file, &aside).expect("move the key away");
    assert_clean_failure(&env.run(&["seed"]), 2, "master key");
    assert!(!key_file.exists(), "no new key was made over sealed secrets");
    std::fs::rename(&aside, &key_file).expect("put the key back");

    // Rekey: the secrets open under the new key, the old one is kept, an old export no longer
    // imports, a new one round-trips.
    let before_id: Value = serde_json::from_str(&exported).expect("JSON");
    env.ok(&["settings", "rekey"]);
    assert!(env.data_dir().join("keys").join("master.key.old").is_file());
    let after: Value = serde_json::from_str(&env.ok(&["settings", "export"])).expect("JSON");
    assert_ne!(before_id["key_id"], after["key_id"]);
    assert!(env.ok(&["settings", "get", "providers.openai.api_key"]).contains("********"));
    let old_export = env.path("old.json");
    std::fs::write(&old_export, &exported).expect("write");
    env.ok(&["settings", "unset", "providers.openai.api_key"]);
    let refused = env.run(&["settings", "import", old_export.to_str().expect("path")]);
    assert_clean_failure(&refused, 2, "not the key");
    let new_export = env.path("new.json");
    std::fs::write(&new_export, serde_json::to_string(&after).expect("JSON")).expect("write");
    env.ok(&["settings", "import", new_export.to_str().expect("path")]);
    let back = env.ok(&["settings", "get", "providers.openai.api_key"]);
    assert!(back.contains("********") && back.contains("database"), "{back}");
    env.ok(&["verify"]);
}

#[tokio::test]
async fn a_bot_token_set_live_starts_the_telegram_bot_without_a_restart() {
    const TOKEN: &str = "4242:SECRET-live-telegram-token";
    let telegram = channels::testing::FakeTelegram::start(TOKEN).await;
    let options = Options { replicas: 1, backend: Backend::Sqlite, env: Vec::new() };
    let Some(cluster) = Replicas::start_with(options).await else { return };
    let admin = cluster.admin_key("demo").await;
    let ready = |cluster: &Replicas| {
        let (client, url) = (cluster.client.clone(), cluster.url(0, "/ready"));
        async move { client.get(url).send().await.expect("ready").json::<Value>().await.expect("JSON") }
    };
    assert!(ready(&cluster).await.to_string().contains("unconfigured"), "no token yet");

    let (status, report) = put(
        &cluster,
        0,
        &admin,
        json!({"channels.telegram.bot_token": TOKEN, "channels.telegram.api_url": telegram.url, "channels.telegram.admission": "closed"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report["changed"].as_array().expect("changed").iter().all(|c| c["live"] == true), "{report}");
    // A stranger writes in a closed tenant: the bot, started by the change, refuses them.
    telegram.push_message(77, 77, "let me in");
    let deadline = Instant::now() + Duration::from_secs(30);
    while telegram.sent_to(77).is_empty() {
        assert!(Instant::now() < deadline, "the bot never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = settings(&cluster, 0, &admin).await;
    assert_eq!(setting(&list, "channels.telegram.bot_token")["value"], "********");

    // The channel is a plugin: disabled live, the bot stops reading; enabled, it reads again.
    let plugin = |action: &'static str| {
        let (client, url, admin) =
            (cluster.client.clone(), cluster.url(0, &format!("/v1/plugins/telegram/{action}")), admin.clone());
        async move {
            let response = client.post(url).bearer_auth(admin).send().await.expect("send");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("JSON")
        }
    };
    assert_eq!(plugin("disable").await["state"], "disabled");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready(&cluster).await.to_string().contains("plugin telegram is disabled") {
        assert!(Instant::now() < deadline, "the channel never stopped: {}", ready(&cluster).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    telegram.push_message(78, 78, "anyone there?");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(telegram.sent_to(78).is_empty(), "a disabled channel reads nothing");
    plugin("enable").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while telegram.sent_to(78).is_empty() {
        assert!(Instant::now() < deadline, "the channel never started again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !cluster.log(0).iter().any(|l| l.contains("SECRET-live-telegram-token")),
        "the token never reaches the log"
    );
}
