//! Contract for stored plugins: a record round-trips whole (its server, pins and state), and
//! writes land only against the revision the writer read, so of several processes recording the
//! same transition exactly one does.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::Timestamp;
use domain::plugin::{McpServerSpec, PinnedTool, PluginRecord, PluginState};
use domain::ports::Store;
use store::test_support::backends;
use tokio::task::JoinSet;

fn record(name: &str) -> PluginRecord {
    PluginRecord {
        name: name.into(),
        server: Some(McpServerSpec::Stdio {
            command: "mcp-server-time".into(),
            args: vec!["--local-timezone".into(), "UTC".into()],
            env: BTreeMap::from([("TOKEN".into(), "v1:k:n:c".into())]),
            cwd: None,
        }),
        enabled: false,
        state: PluginState::Configured,
        reason: "added".into(),
        pins: vec![],
        revision: 0,
        updated_at: Timestamp::from_micros(5),
        updated_by: "cli".into(),
    }
}

#[tokio::test]
async fn plugins_are_written_against_the_revision_read() {
    for db in backends().await {
        let store = &db.store;
        assert!(store.plugins().await.expect("read").is_empty(), "{}", db.backend);
        assert!(store.put_plugin(&record("time")).await.expect("insert"), "{}", db.backend);
        assert!(!store.put_plugin(&record("time")).await.expect("insert again"), "a second insert loses");

        let stored = store.plugins().await.expect("read");
        assert_eq!(stored.len(), 1);
        let mut expected = record("time");
        expected.revision = 1;
        assert_eq!(stored[0], expected, "{}", db.backend);

        let mut active = stored[0].clone();
        active.enabled = true;
        active.state = PluginState::Active;
        active.pins =
            vec![PinnedTool { name: "get_current_time".into(), digest: "ab".repeat(32), description: "Now".into() }];
        assert!(store.put_plugin(&active).await.expect("update"));
        // The same revision again: somebody else came first.
        assert!(!store.put_plugin(&active).await.expect("stale update"));
        let after = store.plugins().await.expect("read");
        assert_eq!((after[0].revision, after[0].state, after[0].pins.len()), (2, PluginState::Active, 1));

        assert!(!store.delete_plugin("time", 1).await.expect("stale delete"));
        assert!(store.delete_plugin("time", 2).await.expect("delete"));
        assert!(store.plugins().await.expect("read").is_empty());
    }
}

#[tokio::test]
async fn of_several_writers_of_one_revision_exactly_one_wins() {
    for db in backends().await {
        let store: Arc<dyn Store> = db.store.clone();
        assert!(store.put_plugin(&record("git")).await.expect("insert"));
        let read = store.plugins().await.expect("read").remove(0);
        let mut writers = JoinSet::new();
        for i in 0..8 {
            let store = store.clone();
            let mut mine = read.clone();
            mine.reason = format!("writer {i}");
            mine.state = PluginState::Error;
            writers.spawn(async move { store.put_plugin(&mine).await.expect("write") });
        }
        let wins = writers.join_all().await.into_iter().filter(|won| *won).count();
        assert_eq!(wins, 1, "{}", db.backend);
        assert_eq!(store.plugins().await.expect("read")[0].revision, 2);
    }
}
