//! The load generator: a raw keep-alive HTTP/1.1 client (pre-built request bytes, a response
//! parser for Content-Length and chunked bodies) and closed-loop runs at a given concurrency.
//! Each exchange records its latency and, when streaming, the time to the first content chunk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::histogram::Histogram;
use super::mock::{BLOCKING_MARKER, CONTENT_MARKER, find};

/// Where requests go and what they are.
pub struct Target {
    pub address: SocketAddr,
    pub request: Vec<u8>,
    pub streaming: bool,
}

impl Target {
    /// `POST path` with a JSON body and, for Nexus, a bearer key.
    pub fn new(address: SocketAddr, path: &str, bearer: Option<&str>, body: &str, streaming: bool) -> Self {
        let auth = bearer.map(|key| format!("authorization: Bearer {key}\r\n")).unwrap_or_default();
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {address}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Self { address, request, streaming }
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let text = String::from_utf8_lossy(&self.request).into_owned();
        let request = text.replacen("content-type:", &format!("{name}: {value}\r\ncontent-type:"), 1);
        self.request = request.into_bytes();
        self
    }
}

/// One exchange.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub latency: Duration,
    /// Until the first byte of the first content chunk was read.
    pub first_token: Duration,
}

/// One kept-alive connection.
pub struct Connection {
    socket: TcpStream,
    buffer: Vec<u8>,
    body: Vec<u8>,
}

impl Connection {
    pub async fn open(address: SocketAddr) -> anyhow::Result<Self> {
        let socket = TcpStream::connect(address).await.with_context(|| format!("connecting to {address}"))?;
        socket.set_nodelay(true)?;
        Ok(Self { socket, buffer: Vec::with_capacity(16 * 1024), body: Vec::with_capacity(16 * 1024) })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-response");
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Sends the target's request and reads the whole response; fails on anything but a 200
    /// carrying the expected content.
    pub async fn exchange(&mut self, target: &Target) -> anyhow::Result<Sample> {
        let started = Instant::now();
        self.socket.write_all(&target.request).await?;
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let status = head.split(' ').nth(1).unwrap_or_default();
        let mut content_length = None;
        let mut chunked = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.trim().parse::<usize>().context("bad content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
        let mut position = head_end + 4;
        self.body.clear();
        let mut first_token = None;
        if let Some(length) = content_length {
            while self.buffer.len() < position + length {
                self.fill().await?;
            }
            self.body.extend_from_slice(&self.buffer[position..position + length]);
            position += length;
        } else if chunked {
            loop {
                let line_end = loop {
                    if let Some(end) = find(&self.buffer[position..], b"\r\n") {
                        break position + end;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buffer[position..line_end])?;
                let size_text = size_text.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_text, 16).with_context(|| format!("chunk size {size_text:?}"))?;
                let end = line_end + 2 + size + 2;
                while self.buffer.len() < end {
                    self.fill().await?;
                }
                if size == 0 {
                    position = end;
                    break;
                }
                let searched_from = self.body.len().saturating_sub(CONTENT_MARKER.len());
                self.body.extend_from_slice(&self.buffer[line_end + 2..line_end + 2 + size]);
                if first_token.is_none() && find(&self.body[searched_from..], CONTENT_MARKER).is_some() {
                    first_token = Some(started.elapsed());
                }
                position = end;
            }
        } else {
            bail!("response without Content-Length or chunked body: {head}");
        }
        self.buffer.drain(..position);
        let latency = started.elapsed();
        if status != "200" {
            bail!("answered {status}: {}", String::from_utf8_lossy(&self.body));
        }
        let expected: &[u8] = if target.streaming { b"data: [DONE]" } else { BLOCKING_MARKER };
        if find(&self.body, expected).is_none() || (target.streaming && first_token.is_none()) {
            bail!("unexpected answer: {}", String::from_utf8_lossy(&self.body));
        }
        Ok(Sample { latency, first_token: first_token.unwrap_or(latency) })
    }
}

/// When a closed-loop run ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many exchanges in all.
    Count(usize),
    /// When this much time has passed.
    Elapsed(Duration),
}

/// What a run measured.
#[derive(Default)]
pub struct RunResult {
    pub latency: Histogram,
    /// Time to the first content chunk (the whole latency for blocking answers).
    pub first_token: Histogram,
    pub elapsed: Duration,
}

impl RunResult {
    fn record(&mut self, sample: Sample) {
        self.latency.record(sample.latency);
        self.first_token.record(sample.first_token);
    }

    /// Adds another run's recordings (and its time).
    pub fn merge(&mut self, other: &RunResult) {
        self.latency.merge(&other.latency);
        self.first_token.merge(&other.first_token);
        self.elapsed += other.elapsed;
    }

    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    pub fn per_second(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `concurrency` workers, each on its own connection, each sending its next request as soon as
/// the previous answer is read. Connections are opened before the clock starts.
pub async fn closed_loop(target: &Arc<Target>, concurrency: usize, until: Until) -> anyhow::Result<RunResult> {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        connections.push(Connection::open(target.address).await?);
    }
    if let [connection] = connections.as_mut_slice() {
        // One worker: no task, no shared counter.
        let started = Instant::now();
        let mut result = RunResult::default();
        loop {
            let done = match until {
                Until::Count(n) => result.count() >= n as u64,
                Until::Elapsed(d) => started.elapsed() >= d,
            };
            if done {
                break;
            }
            result.record(connection.exchange(target).await?);
        }
        result.elapsed = started.elapsed();
        return Ok(result);
    }
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for mut connection in connections {
        let target = target.clone();
        let issued = issued.clone();
        workers.spawn(async move {
            let mut result = RunResult::default();
            loop {
                let go = match until {
                    Until::Count(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
                    Until::Elapsed(d) => started.elapsed() < d,
                };
                if !go {
                    return Ok::<_, anyhow::Error>(result);
                }
                result.record(connection.exchange(&target).await?);
            }
        });
    }
    let mut result = RunResult::default();
    while let Some(joined) = workers.join_next().await {
        result.merge(&joined??);
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

/// Percentiles of a histogram.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
}

impl Percentiles {
    pub fn of(histogram: &Histogram) -> Self {
        Self { p50: histogram.quantile(0.50), p99: histogram.quantile(0.99), p999: histogram.quantile(0.999) }
    }
}
