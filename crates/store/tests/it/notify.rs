//! The notification port on every backend: a subscriber hears what is published on its topics
//! (and only those); on PostgreSQL another process's store hears it too, and a listener whose
//! connection was killed reports a gap and then hears again.

use std::time::Duration;

use domain::ports::{Delivery, Notification, Subscription, Topic};
use store::test_support::backends;

const KEYS: Topic = Topic::from_static("test.keys");
const OTHER: Topic = Topic::from_static("test.other");

async fn next(subscription: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("a delivery within 5 s")
        .expect("the subscription is open")
}

fn message(topic: &Topic, payload: &str) -> Delivery {
    Delivery::Message(Notification::new(topic.clone(), payload).expect("small payload"))
}

#[tokio::test]
async fn subscribers_hear_their_topics_in_order_and_nothing_else() {
    for db in backends().await {
        let notifier = db.store.notifier();
        let mut keys = notifier.subscribe(std::slice::from_ref(&KEYS)).await.expect("subscribe");
        let mut both = notifier.subscribe(&[KEYS, OTHER]).await.expect("subscribe");
        for (topic, payload) in [(&OTHER, "o1"), (&KEYS, "k1"), (&KEYS, "k2")] {
            notifier.publish(&Notification::new(topic.clone(), payload).expect("payload")).await.expect("publish");
        }
        assert_eq!(next(&mut keys).await, message(&KEYS, "k1"), "{}", db.backend);
        assert_eq!(next(&mut keys).await, message(&KEYS, "k2"), "{}", db.backend);
        assert_eq!(next(&mut both).await, message(&OTHER, "o1"), "{}", db.backend);
        assert_eq!(next(&mut both).await, message(&KEYS, "k1"), "{}", db.backend);
        assert_eq!(next(&mut both).await, message(&KEYS, "k2"), "{}", db.backend);
        assert_eq!(notifier.reaches_other_processes(), db.backend == "postgres");

        db.store.close().await;
        let ended = tokio::time::timeout(Duration::from_secs(5), keys.next()).await.expect("ends at once");
        assert_eq!(ended, None, "{}: closing the store ends subscriptions", db.backend);
    }
}

#[tokio::test]
async fn postgres_notifications_reach_other_stores_and_survive_a_killed_listener() {
    let Some(db) = store::test_support::postgres().await else {
        eprintln!("skipped: NEXUS_TEST_POSTGRES_URL is not set");
        return;
    };
    // A second store on the same schema stands for another replica.
    let other = store::PgStore::open(&db.url, "other".into()).await.expect("open again");
    let mut heard =
        domain::ports::Store::notifier(&other).subscribe(std::slice::from_ref(&KEYS)).await.expect("subscribe");
    let notifier = db.store.notifier();
    notifier.publish(&Notification::new(KEYS, "from a").expect("payload")).await.expect("publish");
    assert_eq!(next(&mut heard).await, message(&KEYS, "from a"));

    // Kill the connection listening on this schema's channel (other tests listen on theirs).
    let channel = other.notification_channel(&KEYS);
    let admin = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%' \
         AND strpos(query, $1) > 0",
    )
    .bind(&channel)
    .fetch_all(&admin)
    .await
    .expect("terminate listeners");
    assert!(!killed.is_empty(), "the listeners were found");
    assert_eq!(next(&mut heard).await, Delivery::Gap, "a lost connection is reported");

    // Another schema on the same database is another deployment: it hears nothing of ours.
    let stranger = store::test_support::postgres().await.expect("configured");
    let mut stranger_sub = stranger.store.notifier().subscribe(std::slice::from_ref(&KEYS)).await.expect("subscribe");
    notifier.publish(&Notification::new(KEYS, "after").expect("payload")).await.expect("publish");
    assert_eq!(next(&mut heard).await, message(&KEYS, "after"), "and the listener hears again");
    let nothing = tokio::time::timeout(Duration::from_millis(300), stranger_sub.next()).await;
    assert!(nothing.is_err(), "other schemas hear nothing: {nothing:?}");
}
