//! Redis rate counters: two "replicas" (two connections) share one limit; the refusal names
//! the wait; an unreachable server is a clear error.

use std::sync::Arc;
use std::time::Duration;

use domain::limits::RateCounter;
use store::redis::RedisRateCounter;
use store::test_support::redis_url;

#[tokio::test]
async fn replicas_share_one_limit_through_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("nexus-test:{}:", uuid_like());
    let a = Arc::new(RedisRateCounter::connect_with_prefix(&url, &prefix).await.expect("connect a"));
    let b = Arc::new(RedisRateCounter::connect_with_prefix(&url, &prefix).await.expect("connect b"));
    a.ping().await.expect("a reachable Redis answers the health check");
    let mut handles = tokio::task::JoinSet::new();
    for i in 0..20 {
        let counter = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.spawn(async move { counter.hit("key:k1", 5, Duration::from_secs(60)).await.expect("hit") });
    }
    let mut allowed = 0;
    let mut refused = Vec::new();
    while let Some(joined) = handles.join_next().await {
        let decision = joined.expect("join");
        if decision.allowed {
            allowed += 1;
        } else {
            refused.push(decision.retry_after);
        }
    }
    assert_eq!(allowed, 5, "exactly the limit passes across both replicas");
    assert!(refused.iter().all(|wait| *wait > Duration::ZERO && *wait <= Duration::from_secs(12)), "{refused:?}");
    // Another key has its own allowance.
    assert!(a.hit("key:k2", 5, Duration::from_secs(60)).await.expect("hit").allowed);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let error = RedisRateCounter::connect("redis://127.0.0.1:1/").await.err().expect("must fail");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_nanos()
    )
}
