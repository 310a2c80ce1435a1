//! A zero-latency mock of OpenAI's chat-completions endpoint: a hand-written HTTP/1.1 server
//! on 127.0.0.1 answering every request with pre-built bytes, so the baseline costs as little
//! as a server can. Keep-alive, `TCP_NODELAY`; a body containing `"stream":true` gets a chunked
//! `text/event-stream` answer (role chunk, N content chunks, finish chunk, usage chunk,
//! `[DONE]`), anything else a blocking `chat.completion` with usage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The text of the blocking answer; the load generator checks every response carries it.
pub const BLOCKING_MARKER: &[u8] = b"Hello from the mock";
/// Starts every streamed content chunk, as the mock sends it and as Nexus re-encodes it.
pub const CONTENT_MARKER: &[u8] = b"\"content\":\"tok";

/// Knobs, from `NEXUS_BENCH_MOCK_LATENCY_US`, `NEXUS_BENCH_STREAM_CHUNKS` and
/// `NEXUS_BENCH_CHUNK_DELAY_US`.
#[derive(Debug, Clone, Copy)]
pub struct MockConfig {
    /// Added before every answer (tokio's timer: millisecond resolution).
    pub latency: Duration,
    /// Content chunks in a streamed answer.
    pub chunks: usize,
    /// Pause between streamed chunks; zero sends the whole stream in one write.
    pub chunk_delay: Duration,
}

impl MockConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let read = |name: &str, default: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(value) => value.trim().parse().with_context(|| format!("{name}={value:?} is not a whole number")),
                Err(_) => Ok(default),
            }
        };
        Ok(Self {
            latency: Duration::from_micros(read("NEXUS_BENCH_MOCK_LATENCY_US", 0)?),
            chunks: usize::try_from(read("NEXUS_BENCH_STREAM_CHUNKS", 8)?)?.max(1),
            chunk_delay: Duration::from_micros(read("NEXUS_BENCH_CHUNK_DELAY_US", 0)?),
        })
    }
}

/// A running mock.
pub struct Mock {
    pub address: SocketAddr,
    /// Requests answered so far.
    pub answered: Arc<AtomicU64>,
}

impl Mock {
    /// The base URL a provider is configured with (`…/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }
}

/// The answers, built once.
struct Answers {
    blocking: Vec<u8>,
    /// Response head and every chunk already framed for `Transfer-Encoding: chunked`.
    stream_parts: Vec<Vec<u8>>,
    /// All of `stream_parts` in one buffer, for a stream without pauses.
    stream_whole: Vec<u8>,
}

fn answers(config: &MockConfig) -> Answers {
    let body = format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}! How can I help?"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":24,"completion_tokens":9,"total_tokens":33}}}}"#,
        String::from_utf8_lossy(BLOCKING_MARKER)
    );
    let blocking =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            .into_bytes();
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
        )
    };
    let mut events = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    for i in 0..config.chunks {
        events.push(chunk(&format!(r#"{{"content":"tok{i} "}}"#), "null"));
    }
    events.push(chunk("{}", r#""stop""#));
    events.push(format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{{"prompt_tokens":24,"completion_tokens":{},"total_tokens":{}}}}}"#,
        config.chunks,
        24 + config.chunks
    ));
    let mut stream_parts =
        vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
    let frame = |data: &str| {
        let event = format!("data: {data}\n\n");
        format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
    };
    stream_parts.extend(events.iter().map(|e| frame(e)));
    stream_parts.push(frame("[DONE]"));
    stream_parts.push(b"0\r\n\r\n".to_vec());
    let stream_whole = stream_parts.concat();
    Answers { blocking, stream_parts, stream_whole }
}

/// Binds 127.0.0.1:0 and serves on the current tokio runtime until the process ends.
pub async fn start(config: MockConfig) -> anyhow::Result<Mock> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the mock provider")?;
    let address = listener.local_addr()?;
    let answered = Arc::new(AtomicU64::new(0));
    let answers = Arc::new(answers(&config));
    let counter = answered.clone();
    runtime::tasks::spawn("bench-mock-accept", async move {
        while let Ok((socket, _)) = listener.accept().await {
            let answers = answers.clone();
            let counter = counter.clone();
            runtime::tasks::spawn("bench-mock-connection", async move {
                // A connection that breaks simply ends; the load generator reports the error.
                let _ = serve(socket, config, &answers, &counter).await;
            });
        }
    });
    Ok(Mock { address, answered })
}

async fn serve(
    mut socket: TcpStream,
    config: MockConfig,
    answers: &Answers,
    answered: &AtomicU64,
) -> anyhow::Result<()> {
    socket.set_nodelay(true)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let (length, streaming) = loop {
            if let Some(request) = parse_request(&buffer)? {
                break request;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        buffer.drain(..length);
        if !config.latency.is_zero() {
            tokio::time::sleep(config.latency).await;
        }
        if !streaming {
            socket.write_all(&answers.blocking).await?;
        } else if config.chunk_delay.is_zero() {
            socket.write_all(&answers.stream_whole).await?;
        } else {
            // Head and role chunk at once, then each content chunk after a pause.
            let (first, rest) = answers.stream_parts.split_at(2.min(answers.stream_parts.len()));
            socket.write_all(&first.concat()).await?;
            for part in rest {
                tokio::time::sleep(config.chunk_delay).await;
                socket.write_all(part).await?;
            }
        }
        answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// A whole request at the front of `buffer`: its length and whether it asks for a stream.
fn parse_request(buffer: &[u8]) -> anyhow::Result<Option<(usize, bool)>> {
    let Some(head_end) = find(buffer, b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buffer[..head_end]).context("request head is not UTF-8")?;
    let mut content_length = 0usize;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().context("bad content-length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("the mock reads Content-Length bodies only");
        }
    }
    let total = head_end + 4 + content_length;
    if buffer.len() < total {
        return Ok(None);
    }
    let streaming = find(&buffer[head_end + 4..total], b"\"stream\":true").is_some();
    Ok(Some((total, streaming)))
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
