//! Decodes streamed chat-completion chunks (`choices[0].delta`, a finish reason, a usage chunk,
//! then `data: [DONE]`) into neutral stream events.

use serde::Deserialize;

use super::wire::{self, WireArguments, WireContent, WireUsage};
use crate::sse::{SseEvent, StreamDecoder};
use crate::{FinishReason, ProviderError, StreamEvent, Usage};

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<WireUsage>,
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    delta: Option<ChunkDelta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChunkDelta {
    content: Option<WireContent>,
    tool_calls: Option<Vec<ChunkToolCall>>,
}

#[derive(Debug, Deserialize)]
struct ChunkToolCall {
    index: Option<u32>,
    id: Option<String>,
    function: Option<ChunkFunction>,
}

#[derive(Debug, Deserialize)]
struct ChunkFunction {
    name: Option<String>,
    arguments: Option<WireArguments>,
}

#[derive(Debug)]
pub(super) struct OpenAiDecoder {
    provider: String,
    finish_reason: Option<FinishReason>,
    /// Tool calls seen so far, for servers that leave out `index` (each call then arrives whole).
    tool_calls_seen: u32,
}

impl OpenAiDecoder {
    pub(super) fn new(provider: &str) -> Self {
        Self { provider: provider.to_owned(), finish_reason: None, tool_calls_seen: 0 }
    }

    fn tool_call_event(&mut self, call: ChunkToolCall) -> StreamEvent {
        let index = match (call.index, &call.id) {
            (Some(index), _) => index,
            (None, Some(_)) => self.tool_calls_seen,
            (None, None) => self.tool_calls_seen.saturating_sub(1),
        };
        self.tool_calls_seen = self.tool_calls_seen.max(index.saturating_add(1));
        let (name, arguments) = match call.function {
            Some(function) => (function.name, function.arguments.map(WireArguments::into_fragment)),
            None => (None, None),
        };
        StreamEvent::ToolCallDelta { index, id: call.id, name, arguments_json: arguments.unwrap_or_default() }
    }
}

impl StreamDecoder for OpenAiDecoder {
    type Item = SseEvent;

    fn decode(&mut self, item: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if item.is_done_marker() {
            out.push(StreamEvent::Done { finish_reason: self.finish_reason.unwrap_or(FinishReason::Other) });
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(&item.data).map_err(|err| ProviderError::InvalidResponse {
            provider: self.provider.clone(),
            message: format!("undecodable chunk: {err}: {}", crate::http::snippet(&item.data)),
        })?;
        if let Some(error) = chunk.error {
            // An error after a 200: the server's own status code, when it gives one, else 500.
            let status = error.get("code").and_then(serde_json::Value::as_u64).unwrap_or(500);
            let status = u16::try_from(status).ok().filter(|status| (400..=599).contains(status)).unwrap_or(500);
            return Err(crate::http::status_error(&self.provider, status, &item.data, None));
        }
        for choice in chunk.choices.into_iter().filter(|choice| choice.index == 0) {
            if let Some(delta) = choice.delta {
                let text = delta.content.map(WireContent::into_text).unwrap_or_default();
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta(text));
                }
                for call in delta.tool_calls.unwrap_or_default() {
                    let event = self.tool_call_event(call);
                    out.push(event);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(wire::finish_reason(Some(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(Usage::from(usage)));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        // Some servers close without `[DONE]`; a finish reason says the answer was whole.
        match self.finish_reason {
            Some(finish_reason) => {
                out.push(StreamEvent::Done { finish_reason });
                Ok(())
            }
            None => Err(ProviderError::Connection {
                provider: self.provider.clone(),
                message: "the stream ended before a finish reason or [DONE]".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decoder: &mut OpenAiDecoder, data: &str) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        decoder.decode(SseEvent { event: None, data: data.to_owned() }, &mut out)?;
        Ok(out)
    }

    #[test]
    fn calls_without_index_are_numbered_in_order() {
        let mut decoder = OpenAiDecoder::new("mistral");
        let events = decode(
            &mut decoder,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[
                {"id":"a","function":{"name":"f","arguments":"{}"}},
                {"id":"b","function":{"name":"g","arguments":{"x":1}}}
            ]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCallDelta {
                    index: 0,
                    id: Some("a".into()),
                    name: Some("f".into()),
                    arguments_json: "{}".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: Some("b".into()),
                    name: Some("g".into()),
                    arguments_json: r#"{"x":1}"#.into()
                },
                StreamEvent::Usage(Usage { input_tokens: 3, output_tokens: 4 }),
            ]
        );
        let mut out = Vec::new();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out, vec![StreamEvent::Done { finish_reason: FinishReason::ToolCalls }]);
    }

    #[test]
    fn an_error_chunk_is_an_error_with_its_message() {
        let mut decoder = OpenAiDecoder::new("compatible");
        let err = decode(&mut decoder, r#"{"error":{"message":"engine crashed","code":503}}"#).unwrap_err();
        match err {
            ProviderError::Status { status: 503, message, .. } => assert_eq!(message, "engine crashed"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
