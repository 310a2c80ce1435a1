//! A fake OpenAI chat-completions server for load and multi-process tests: the vendor's real wire
//! format (a `chat.completion`, or `chat.completion.chunk` SSE events ending in `[DONE]` with
//! usage in the last chunk), answering "pong" unless a scripted phrase is in the request (see
//! [`FakeOpenAi::script`], to drive agent runs), on its own thread and runtime so any number of server processes and
//! test tasks can hit it at once. It counts the calls it answered and can be made slow, so a test
//! can have calls in flight when it kills a server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Tokens every answer reports (prompt, completion).
pub const USAGE: (u64, u64) = (12, 5);

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    delay_ms: AtomicU64,
    /// (phrase, answer): the first phrase the request contains picks the answer.
    script: std::sync::Mutex<Vec<(String, String)>>,
}

pub struct FakeOpenAi {
    address: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeOpenAi {
    pub fn start() -> Self {
        let counters = Arc::new(Counters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = counters.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake provider runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake provider");
                ready_tx.send(listener.local_addr().expect("address")).expect("report the address");
                let app = axum::Router::new().route("/v1/chat/completions", post(complete)).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("fake provider serves");
            });
        });
        let address = ready_rx.recv_timeout(Duration::from_secs(10)).expect("the fake provider starts");
        Self { address, counters, stop: Some(stop), thread: Some(thread) }
    }

    /// The base URL to configure (`OPENAI_BASE_URL`), version path included.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Calls answered so far (streamed or not).
    pub fn calls(&self) -> u64 {
        self.counters.calls.load(Ordering::SeqCst)
    }

    /// Answers each later request that contains a phrase with that phrase's answer (the first
    /// that matches); other requests still get "pong".
    pub fn script(&self, replies: &[(&str, &str)]) {
        let mut script = self.counters.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *script = replies.iter().map(|(p, a)| ((*p).to_owned(), (*a).to_owned())).collect();
    }

    /// Makes every later answer wait this long before it is sent.
    pub fn set_delay(&self, delay: Duration) {
        self.counters.delay_ms.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn complete(State(counters): State<Arc<Counters>>, Json(request): Json<Value>) -> Response {
    let delay = counters.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    counters.calls.fetch_add(1, Ordering::SeqCst);
    let model = request["model"].as_str().unwrap_or("gpt-4o-mini").to_owned();
    let content = {
        let text = request.to_string();
        let script = counters.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        script.iter().find(|(phrase, _)| text.contains(phrase.as_str())).map_or("pong".to_owned(), |(_, a)| a.clone())
    };
    let (prompt, completion) = USAGE;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if request["stream"].as_bool() == Some(true) {
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut body = String::new();
        for event in [
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": content}), None),
            chunk(json!({}), Some("stop")),
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                   "choices": [], "usage": usage}),
        ] {
            body.push_str(&format!("data: {event}\n\n"));
        }
        body.push_str("data: [DONE]\n\n");
        return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    }
    Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage,
    }))
    .into_response()
}
