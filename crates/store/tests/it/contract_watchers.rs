//! Contract for watchers: names are unique per tenant, a poll's validators and state are kept,
//! an item is inserted once per (watcher, key) whoever tries again, items list oldest or newest
//! first by state, a state change is a compare-and-set, and deleting a watcher takes its items.

use domain::ports::StoreError;
use domain::watcher::{ItemStatus, PostTarget, SourceKind, WatchedItem, Watcher};
use domain::{TenantId, Timestamp};
use store::test_support::backends;

fn watcher(id: &str, name: &str) -> Watcher {
    Watcher {
        tenant_id: TenantId::parse("acme").expect("tenant"),
        id: id.into(),
        name: name.into(),
        kind: SourceKind::Feed,
        url: "https://example.org/feed.xml".into(),
        selector: None,
        target: PostTarget::Telegram { chat_id: "-100123".into() },
        summarise: Some("trivial".into()),
        max_posts: 5,
        schedule_id: Some("sch_1".into()),
        etag: None,
        last_modified: None,
        seeded: false,
        last_polled_at: None,
        last_error: None,
        created_by: "user:u1".into(),
        created_at: Timestamp::from_micros(1_000),
    }
}

fn item(watcher: &str, key: &str, at: i64) -> WatchedItem {
    WatchedItem {
        watcher_id: watcher.into(),
        key: key.into(),
        title: Some(format!("title {key}")),
        link: Some(format!("https://example.org/{key}")),
        text: format!("text {key}"),
        digest: format!("digest-{key}"),
        status: ItemStatus::Pending,
        attempts: 0,
        detail: None,
        found_at: Timestamp::from_micros(at),
        posted_at: None,
    }
}

#[tokio::test]
async fn watchers_keep_their_state_and_items_are_inserted_once() {
    for db in backends().await {
        let store = &db.store;
        let tenant = TenantId::parse("acme").expect("tenant");
        store.insert_watcher(&watcher("wat_1", "news")).await.expect("insert");
        store.insert_watcher(&watcher("wat_2", "blog")).await.expect("insert");
        let clash = store.insert_watcher(&watcher("wat_3", "news")).await;
        assert!(matches!(clash, Err(StoreError::Conflict { .. })), "{}: {clash:?}", db.backend);
        let names: Vec<String> = store.watchers(&tenant).await.expect("list").into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["blog", "news"]);
        let other = TenantId::parse("other").expect("tenant");
        assert!(store.watchers(&other).await.expect("list").is_empty());
        assert!(store.watcher(&other, "wat_1").await.expect("read").is_none(), "tenants are apart");

        let mut polled = watcher("wat_1", "news");
        polled.etag = Some("\"v1\"".into());
        polled.last_modified = Some("Wed, 02 Dec 2026 10:00:00 GMT".into());
        polled.seeded = true;
        polled.last_polled_at = Some(Timestamp::from_micros(5_000));
        polled.last_error = Some("boom".into());
        polled.name = "ignored".into();
        store.record_watcher_poll(&polled).await.expect("poll");
        let read = store.watcher(&tenant, "wat_1").await.expect("read").expect("watcher");
        assert_eq!(read.etag.as_deref(), Some("\"v1\""));
        assert!(read.seeded);
        assert_eq!(read.last_error.as_deref(), Some("boom"));
        assert_eq!(read.name, "news", "a poll changes only the poll's fields");
        assert_eq!(read.target, PostTarget::Telegram { chat_id: "-100123".into() });

        let added = store
            .add_watched_items(&tenant, &[item("wat_1", "id:a", 10), item("wat_1", "id:b", 11)])
            .await
            .expect("add");
        assert_eq!(added, ["id:a", "id:b"]);
        let again = store
            .add_watched_items(&tenant, &[item("wat_1", "id:b", 20), item("wat_1", "id:c", 21)])
            .await
            .expect("add");
        assert_eq!(again, ["id:c"], "{}: a key is inserted once", db.backend);
        assert_eq!(
            store.add_watched_items(&tenant, &[item("wat_2", "id:a", 30)]).await.expect("add"),
            ["id:a"],
            "keys are per watcher"
        );

        assert_eq!(store.count_watched_items(&tenant, "wat_1", ItemStatus::Pending).await.expect("count"), 3);
        let pending = store.watched_items(&tenant, "wat_1", Some(ItemStatus::Pending), true, 2).await.expect("list");
        assert_eq!(pending.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["id:a", "id:b"]);
        let newest = store.watched_items(&tenant, "wat_1", None, false, 10).await.expect("list");
        assert_eq!(newest.first().map(|i| i.key.as_str()), Some("id:c"));

        let mut taken = pending[0].clone();
        taken.status = ItemStatus::Posting;
        assert!(store.move_watched_item(&tenant, &taken, ItemStatus::Pending).await.expect("move"));
        assert!(
            !store.move_watched_item(&tenant, &taken, ItemStatus::Pending).await.expect("move"),
            "{}: a second taker loses",
            db.backend
        );
        taken.status = ItemStatus::Posted;
        taken.detail = Some("bc_1".into());
        taken.posted_at = Some(Timestamp::from_micros(99));
        assert!(store.move_watched_item(&tenant, &taken, ItemStatus::Posting).await.expect("move"));
        let posted = store.watched_items(&tenant, "wat_1", Some(ItemStatus::Posted), true, 10).await.expect("list");
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].detail.as_deref(), Some("bc_1"));
        assert_eq!(posted[0].posted_at, Some(Timestamp::from_micros(99)));

        assert!(store.delete_watcher(&tenant, "wat_1").await.expect("delete"));
        assert!(!store.delete_watcher(&tenant, "wat_1").await.expect("delete"));
        assert!(store.watched_items(&tenant, "wat_1", None, true, 10).await.expect("list").is_empty());
        assert_eq!(store.add_watched_items(&tenant, &[item("wat_2", "id:z", 40)]).await.expect("add").len(), 1);
    }
}
