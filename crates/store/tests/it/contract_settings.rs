//! Contract for stored settings: writes apply together or not at all, only against the revision
//! the writer read (two writers never overwrite each other unseen), and the named facts beside
//! them are set and cleared in the same transaction.

use std::sync::Arc;

use domain::Timestamp;
use domain::ports::Store;
use domain::settings::{GLOBAL_SCOPE, SettingWrite, StoredSetting};
use store::test_support::backends;
use tokio::task::JoinSet;

fn put(key: &str, value: &str, encrypted: bool) -> SettingWrite {
    SettingWrite::Put(StoredSetting {
        scope: GLOBAL_SCOPE.into(),
        key: key.into(),
        value: value.into(),
        encrypted,
        updated_at: Timestamp::from_micros(7),
        updated_by: "cli".into(),
    })
}

#[tokio::test]
async fn settings_are_written_against_the_revision_read() {
    for db in backends().await {
        let store = &db.store;
        let empty = store.settings().await.expect("read");
        assert_eq!((empty.revision, empty.settings.len()), (0, 0), "{}", db.backend);

        let written = store
            .write_settings(
                0,
                &[put("models.normal", "openai/gpt-4o", false), put("providers.openai.api_key", "v1:k:n:c", true)],
                &[("key_check", Some("kcv"))],
            )
            .await
            .expect("write");
        assert_eq!(written, Some(1), "{}", db.backend);
        let read = store.settings().await.expect("read");
        assert_eq!(read.revision, 1);
        assert_eq!(
            read.settings.iter().map(|s| (s.key.as_str(), s.encrypted)).collect::<Vec<_>>(),
            [("models.normal", false), ("providers.openai.api_key", true)]
        );
        assert_eq!(store.settings_meta("key_check").await.expect("meta").as_deref(), Some("kcv"));

        // A writer that read revision 0 is refused and changes nothing.
        let stale = store
            .write_settings(0, &[put("models.normal", "anthropic/x", false)], &[("key_check", None)])
            .await
            .expect("stale");
        assert_eq!(stale, None, "{}", db.backend);
        let after = store.settings().await.expect("read");
        assert_eq!(after, read, "a refused write changes nothing ({})", db.backend);

        // Replace one, delete one, clear a fact: one revision.
        let next = store
            .write_settings(
                1,
                &[
                    put("models.normal", "anthropic/claude", false),
                    SettingWrite::Delete { scope: GLOBAL_SCOPE.into(), key: "providers.openai.api_key".into() },
                ],
                &[("key_check", None)],
            )
            .await
            .expect("write");
        assert_eq!(next, Some(2));
        let read = store.settings().await.expect("read");
        assert_eq!(read.settings.len(), 1);
        assert_eq!(read.settings[0].value, "anthropic/claude");
        assert_eq!(store.settings_meta("key_check").await.expect("meta"), None);
        assert_eq!(store.settings_revision().await.expect("revision"), 2);
    }
}

#[tokio::test]
async fn of_concurrent_writers_on_one_revision_exactly_one_wins() {
    for db in backends().await {
        let store: Arc<dyn Store> = db.store.clone();
        let mut writers = JoinSet::new();
        for n in 0..8 {
            let store = store.clone();
            writers.spawn(async move {
                store.write_settings(0, &[put("limits.key_requests_per_minute", &n.to_string(), false)], &[]).await
            });
        }
        let mut won = 0;
        while let Some(done) = writers.join_next().await {
            if done.expect("join").expect("write").is_some() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "{}", db.backend);
        assert_eq!(store.settings_revision().await.expect("revision"), 1);
        assert_eq!(store.settings().await.expect("read").settings.len(), 1);
    }
}
