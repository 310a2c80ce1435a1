//! Retries, timeouts, deadlines and circuit breakers against fake servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use providers::resilience::CircuitState;
use providers::{CircuitBreakerConfig, ModelProvider, ProviderError, Resilient, RetryPolicy};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{anthropic, anthropic_with_timeout, assemble, openai, openai_with_timeout, weather_request};

fn ok_body() -> serde_json::Value {
    json!({
        "id": "chatcmpl-ok",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Sunny."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500)
        .set_body_json(json!({"error": {"message": "The server had an error", "type": "server_error"}}))
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        deadline: Duration::from_secs(10),
    }
}

/// Breakers that never open, for tests about retries alone.
fn lenient_breaker() -> CircuitBreakerConfig {
    CircuitBreakerConfig { failure_threshold: 1_000, cool_down: Duration::from_millis(50) }
}

fn resilient(provider: impl ModelProvider + 'static, retry: RetryPolicy, breaker: CircuitBreakerConfig) -> Resilient {
    Resilient::new(Arc::new(provider), retry, breaker)
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.expect("request recording is on").len()
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_requested_wait() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "code": "rate_limit_exceeded"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(ok_body())).mount(&server).await;
    let provider = resilient(openai(&server.uri()), fast_retries(3), lenient_breaker());

    let started = Instant::now();
    let response = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap();

    assert_eq!(response.content, "Sunny.");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited only {:?}", started.elapsed());
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_429_whose_retry_after_passes_the_deadline_stops_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30").set_body_json(json!({
            "type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}
        })))
        .mount(&server)
        .await;
    let retry = RetryPolicy { deadline: Duration::from_secs(2), ..fast_retries(5) };
    let provider = resilient(anthropic(&server.uri()), retry, lenient_breaker());

    let started = Instant::now();
    let err = provider.complete(&weather_request("claude-haiku-4-5")).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    match err {
        ProviderError::DeadlineExceeded { deadline, last } => {
            assert_eq!(deadline, Duration::from_secs(2));
            assert!(
                matches!(*last, ProviderError::Status { status: 429, retry_after: Some(wait), .. } if wait == Duration::from_secs(30))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_500_is_retried_until_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(server_error()).up_to_n_times(1).with_priority(1).mount(&server).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(ok_body())).mount(&server).await;
    let provider = resilient(openai(&server.uri()), fast_retries(3), lenient_breaker());

    let response = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap();

    assert_eq!(response.content, "Sunny.");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_stream_is_retried_until_it_starts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(529).set_body_json(
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let provider = resilient(anthropic(&server.uri()), fast_retries(3), lenient_breaker());

    let answer = assemble(provider.stream(&weather_request("claude-haiku-4-5")).await.unwrap()).await.unwrap();

    assert_eq!(answer.text, "Hi");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "Invalid schema for function 'get_weather'", "type": "invalid_request_error", "param": "tools[0]", "code": "invalid_function_parameters"}
        })))
        .mount(&server)
        .await;
    let provider = resilient(openai(&server.uri()), fast_retries(5), lenient_breaker());

    let err = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Status { status: 400, .. }), "{err:?}");
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let provider = openai_with_timeout(&server.uri(), Duration::from_millis(200));

    let started = Instant::now();
    let blocking = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();
    let streaming = provider.stream(&weather_request("gpt-4o-mini")).await.err().unwrap();

    let timeout = ProviderError::Timeout { provider: "openai".into(), after: Duration::from_millis(200) };
    assert_eq!(blocking, timeout);
    assert_eq!(streaming, timeout);
    assert!(blocking.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn retries_stop_at_the_overall_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(server_error().set_delay(Duration::from_millis(150))).mount(&server).await;
    let retry = RetryPolicy { deadline: Duration::from_millis(400), ..fast_retries(100) };
    let provider = resilient(anthropic_with_timeout(&server.uri(), Duration::from_secs(10)), retry, lenient_breaker());

    let started = Instant::now();
    let err = provider.complete(&weather_request("claude-haiku-4-5")).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert!(
        matches!(err, ProviderError::DeadlineExceeded { deadline, .. } if deadline == Duration::from_millis(400)),
        "{err:?}"
    );
    assert!((2..=3).contains(&requests(&server).await));
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_500s_and_fails_fast() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(server_error()).mount(&server).await;
    let breaker = CircuitBreakerConfig { failure_threshold: 3, cool_down: Duration::from_secs(60) };
    let provider = resilient(openai(&server.uri()), fast_retries(1), breaker);

    for _ in 0..3 {
        let err = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();
        assert!(matches!(err, ProviderError::Status { status: 500, .. }), "{err:?}");
    }
    let started = Instant::now();
    let err = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();

    assert!(matches!(err, ProviderError::CircuitOpen { ref provider, .. } if provider == "openai"), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(requests(&server).await, 3, "an open breaker must not call the provider");
    assert!(matches!(provider.breaker().state(), CircuitState::Open { .. }));
}

#[tokio::test]
async fn a_successful_half_open_probe_closes_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(server_error()).up_to_n_times(2).with_priority(1).mount(&server).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(ok_body())).mount(&server).await;
    let breaker = CircuitBreakerConfig { failure_threshold: 2, cool_down: Duration::from_millis(60) };
    let provider = resilient(openai(&server.uri()), fast_retries(1), breaker);

    for _ in 0..2 {
        provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();
    }
    assert!(matches!(provider.complete(&weather_request("gpt-4o-mini")).await, Err(ProviderError::CircuitOpen { .. })));
    tokio::time::sleep(Duration::from_millis(80)).await;

    let probe = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap();

    assert_eq!(probe.content, "Sunny.");
    assert_eq!(provider.breaker().state(), CircuitState::Closed { consecutive_failures: 0 });
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn a_failed_half_open_probe_opens_the_breaker_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(server_error()).mount(&server).await;
    let breaker = CircuitBreakerConfig { failure_threshold: 1, cool_down: Duration::from_millis(40) };
    let provider = resilient(openai(&server.uri()), fast_retries(1), breaker);

    provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let probe = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();

    assert!(matches!(probe, ProviderError::Status { status: 500, .. }));
    assert!(matches!(provider.complete(&weather_request("gpt-4o-mini")).await, Err(ProviderError::CircuitOpen { .. })));
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "bad request"}})))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Incorrect API key provided"}})),
        )
        .mount(&server)
        .await;
    let breaker = CircuitBreakerConfig { failure_threshold: 2, cool_down: Duration::from_secs(60) };
    let provider = resilient(openai(&server.uri()), fast_retries(3), breaker);

    for expected in [400, 400, 400, 401, 401, 401] {
        let err = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();
        assert!(matches!(err, ProviderError::Status { status, .. } if status == expected), "{err:?}");
    }

    assert_eq!(provider.breaker().state(), CircuitState::Closed { consecutive_failures: 0 });
    assert_eq!(requests(&server).await, 6);
}
