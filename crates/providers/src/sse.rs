//! Streaming bodies: a byte-to-line splitter that survives chunk boundaries anywhere (inside a
//! line, inside a UTF-8 character, between `\r` and `\n`), a server-sent-events parser over it,
//! NDJSON lines over it, and [`decode_events`], which drives a vendor's decoder to an
//! [`EventStream`] with stream combinators only (no spawned task).

use std::collections::VecDeque;
use std::pin::Pin;

use futures_util::{Stream, StreamExt, stream};

use crate::{EventStream, ProviderError, StreamEvent};

/// Splits a byte stream into lines. Bytes are kept until their line is complete, so a UTF-8
/// character split across chunks is decoded whole.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// The previous chunk ended in `\r`; a `\n` starting this one belongs to the same break.
    after_carriage_return: bool,
}

impl LineSplitter {
    /// Feeds a chunk and returns the lines it completed, without their terminators.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in chunk {
            let skip = self.after_carriage_return && byte == b'\n';
            self.after_carriage_return = false;
            match byte {
                _ if skip => {}
                b'\n' => lines.push(self.take_line()),
                b'\r' => {
                    lines.push(self.take_line());
                    self.after_carriage_return = true;
                }
                _ => self.pending.push(byte),
            }
        }
        lines
    }

    /// The unterminated last line, if the stream ended without a line break.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() { None } else { Some(self.take_line()) }
    }

    fn take_line(&mut self) -> String {
        let bytes = std::mem::take(&mut self.pending);
        String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if the server named the event.
    pub(crate) event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
}

impl SseEvent {
    /// The OpenAI-style end-of-stream marker.
    pub(crate) fn is_done_marker(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// The event-stream parser of the HTML standard, minus `id` and `retry`, which no vendor we
/// talk to relies on.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    lines: LineSplitter,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk and returns the events it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let lines = self.lines.push(chunk);
        lines.into_iter().filter_map(|line| self.line(&line)).collect()
    }

    /// At the end of the body: an event whose blank line never came is still delivered.
    pub(crate) fn finish(&mut self) -> Option<SseEvent> {
        let last = self.lines.finish().and_then(|line| self.line(&line));
        last.or_else(|| self.dispatch())
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // a comment, used as a keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent { event, data: std::mem::take(&mut self.data) })
    }
}

/// Server-sent events from a byte stream.
pub(crate) fn sse_events<S>(bytes: S) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
{
    split_stream(bytes, SseParser::default(), |parser, chunk| parser.push(chunk), SseParser::finish)
}

/// Newline-delimited JSON documents (as text) from a byte stream; blank lines are skipped.
pub(crate) fn ndjson_lines<S>(bytes: S) -> impl Stream<Item = Result<String, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
{
    let items = split_stream(bytes, LineSplitter::default(), |lines, chunk| lines.push(chunk), LineSplitter::finish);
    items.filter(|item| std::future::ready(!matches!(item, Ok(line) if line.trim().is_empty())))
}

/// Runs a chunk splitter over a byte stream, yielding its items in order, then what it holds
/// at the end, then ending after the first transport error.
fn split_stream<S, P, T>(
    bytes: S,
    splitter: P,
    push: fn(&mut P, &[u8]) -> Vec<T>,
    finish: fn(&mut P) -> Option<T>,
) -> impl Stream<Item = Result<T, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
    P: Send + 'static,
    T: Send + 'static,
{
    struct State<S, P, T> {
        bytes: Option<Pin<Box<S>>>,
        splitter: P,
        ready: VecDeque<Result<T, ProviderError>>,
    }
    let state = State { bytes: Some(Box::pin(bytes)), splitter, ready: VecDeque::new() };
    stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((item, state));
            }
            let source = state.bytes.as_mut()?;
            match source.next().await {
                Some(Ok(chunk)) => state.ready.extend(push(&mut state.splitter, &chunk).into_iter().map(Ok)),
                Some(Err(err)) => {
                    state.bytes = None;
                    state.ready.push_back(Err(err));
                }
                None => {
                    state.bytes = None;
                    state.ready.extend(finish(&mut state.splitter).map(Ok));
                }
            }
        }
    })
}

/// A vendor's streaming decoder: turns wire items (SSE events or NDJSON lines) into neutral
/// events, and says at the end of the body whether the answer was complete.
pub(crate) trait StreamDecoder: Send + 'static {
    type Item: Send + 'static;

    /// Decodes one wire item into `out`. Pushing [`StreamEvent::Done`] ends the stream.
    fn decode(&mut self, item: Self::Item, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;

    /// Called when the body ends before `Done` was pushed: push `Done` if the answer was
    /// complete after all, or return the error for a cut-off stream.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;
}

/// Drives a decoder over wire items. The stream ends after `Done` or after the first error.
pub(crate) fn decode_events<S, D>(items: S, decoder: D) -> EventStream
where
    S: Stream<Item = Result<D::Item, ProviderError>> + Send + 'static,
    D: StreamDecoder,
{
    struct State<S, D> {
        items: Pin<Box<S>>,
        decoder: D,
        ready: VecDeque<Result<StreamEvent, ProviderError>>,
        ended: bool,
    }
    let state = State { items: Box::pin(items), decoder, ready: VecDeque::new(), ended: false };
    let events = stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.ready.pop_front() {
                return Some((event, state));
            }
            if state.ended {
                return None;
            }
            let mut out = Vec::new();
            let result = match state.items.next().await {
                Some(Ok(item)) => state.decoder.decode(item, &mut out),
                Some(Err(err)) => Err(err),
                None => {
                    state.ended = true;
                    state.decoder.finish(&mut out)
                }
            };
            for event in out {
                let done = matches!(event, StreamEvent::Done { .. });
                state.ready.push_back(Ok(event));
                if done {
                    state.ended = true;
                    break;
                }
            }
            if let Err(err) = result {
                state.ended = true;
                state.ready.push_back(Err(err));
            }
        }
    });
    Box::pin(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            events.extend(parser.push(&input[start..cut]));
            start = cut;
        }
        events.extend(parser.finish());
        events
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: name.map(str::to_owned), data: data.to_owned() }
    }

    const SAMPLE: &str = concat!(
        ": keep-alive comment\n",
        "event: content_block_delta\n",
        "data: {\"text\":\"héllo 日本 🦀\"}\n",
        "\n",
        "event: ping\r\n",
        "data: {}\r\n",
        "\r\n",
        "data: first line\n",
        "data:second line\n",
        "id: 7\n",
        "\n",
        "event: no-data\n",
        "\n",
        "data: [DONE]\n",
        "\n",
    );

    fn expected() -> Vec<SseEvent> {
        vec![
            event(Some("content_block_delta"), "{\"text\":\"héllo 日本 🦀\"}"),
            event(Some("ping"), "{}"),
            event(None, "first line\nsecond line"),
            event(None, "[DONE]"),
        ]
    }

    #[test]
    fn whole_input_parses_into_events() {
        let events = parse_in_pieces(SAMPLE.as_bytes(), &[]);
        assert_eq!(events, expected());
        assert!(events[3].is_done_marker());
    }

    #[test]
    fn every_single_split_point_gives_the_same_events() {
        // Includes cuts inside `data:`, between `\r` and `\n`, and inside multi-byte characters.
        let bytes = SAMPLE.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(parse_in_pieces(bytes, &[cut]), expected(), "split at byte {cut}");
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        let bytes = SAMPLE.as_bytes();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(parse_in_pieces(bytes, &cuts), expected());
    }

    #[test]
    fn a_multibyte_character_split_across_chunks_is_decoded_whole() {
        let input = "data: 🦀é\n\n".as_bytes();
        let crab_starts = 6;
        for cut in crab_starts + 1..crab_starts + 4 {
            assert_eq!(parse_in_pieces(input, &[cut]), vec![event(None, "🦀é")], "split at byte {cut}");
        }
    }

    #[test]
    fn a_final_event_without_a_blank_line_is_delivered_at_the_end() {
        assert_eq!(parse_in_pieces(b"data: tail", &[]), vec![event(None, "tail")]);
        assert_eq!(parse_in_pieces(b"event: x\ndata: tail\n", &[]), vec![event(Some("x"), "tail")]);
    }

    #[test]
    fn empty_data_lines_still_make_an_event() {
        assert_eq!(parse_in_pieces(b"data\n\ndata:\ndata:\n\n", &[]), vec![event(None, ""), event(None, "\n")]);
    }

    #[tokio::test]
    async fn ndjson_lines_skip_blanks_and_keep_the_unterminated_last_line() {
        let chunks = ["{\"a\":1}\n\n{\"b\"", ":\"ü", "\"}\r\n{\"c\":3}"];
        let bytes = stream::iter(chunks.map(|chunk| Ok(bytes::Bytes::from(chunk))));
        let lines: Vec<String> = ndjson_lines(bytes).map(|line| line.unwrap()).collect().await;
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":\"ü\"}", "{\"c\":3}"]);
    }

    #[tokio::test]
    async fn a_transport_error_ends_the_event_stream_after_the_events_before_it() {
        let chunks = vec![
            Ok(bytes::Bytes::from_static(b"data: one\n\n")),
            Err(ProviderError::Connection { provider: "p".into(), message: "reset".into() }),
            Ok(bytes::Bytes::from_static(b"data: two\n\n")),
        ];
        let items: Vec<_> = sse_events(stream::iter(chunks)).collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], Ok(event(None, "one")));
        assert!(matches!(items[1], Err(ProviderError::Connection { .. })));
    }
}
