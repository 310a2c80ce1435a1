//! Decodes Anthropic's streaming event sequence (`message_start`, `content_block_start`,
//! `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`, `ping`,
//! `error`) into neutral stream events.

use std::collections::HashMap;

use serde::Deserialize;

use super::wire::{self, WireError, WireUsage};
use crate::sse::{SseEvent, StreamDecoder};
use crate::{FinishReason, ProviderError, StreamEvent, Usage};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: ContentDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: MessageDelta,
        usage: Option<WireUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: WireError,
    },
    /// Anthropic may add event types; unknown ones are skipped, as its documentation asks.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking and signature deltas are not part of the neutral answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

/// Decoder state: the usage so far, the stop reason, and which content block is which tool
/// call (Anthropic numbers all content blocks; the neutral events number tool calls only).
#[derive(Debug)]
pub(super) struct AnthropicDecoder {
    provider: String,
    usage: Usage,
    finish_reason: Option<FinishReason>,
    tool_indexes: HashMap<u32, u32>,
}

impl AnthropicDecoder {
    pub(super) fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            usage: Usage::default(),
            finish_reason: None,
            tool_indexes: HashMap::new(),
        }
    }

    fn invalid(&self, message: String) -> ProviderError {
        ProviderError::InvalidResponse { provider: self.provider.clone(), message }
    }
}

impl StreamDecoder for AnthropicDecoder {
    type Item = SseEvent;

    fn decode(&mut self, item: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let event: WireEvent = serde_json::from_str(&item.data).map_err(|err| {
            let name = item.event.as_deref().unwrap_or("unnamed");
            self.invalid(format!("undecodable {name} event: {err}: {}", crate::http::snippet(&item.data)))
        })?;
        match event {
            WireEvent::MessageStart { message } => {
                self.usage.input_tokens = message.usage.prompt_tokens().unwrap_or(0);
                self.usage.output_tokens = message.usage.output_tokens.unwrap_or(0);
                out.push(StreamEvent::Usage(self.usage));
            }
            WireEvent::ContentBlockStart { index, content_block } => match content_block {
                StartBlock::Text { text } if !text.is_empty() => out.push(StreamEvent::TextDelta(text)),
                StartBlock::ToolUse { id, name } => {
                    let tool_index = u32::try_from(self.tool_indexes.len()).unwrap_or(u32::MAX);
                    self.tool_indexes.insert(index, tool_index);
                    out.push(StreamEvent::ToolCallDelta {
                        index: tool_index,
                        id: Some(id),
                        name: Some(name),
                        arguments_json: String::new(),
                    });
                }
                StartBlock::Text { .. } | StartBlock::Other => {}
            },
            WireEvent::ContentBlockDelta { index, delta } => match delta {
                ContentDelta::TextDelta { text } => out.push(StreamEvent::TextDelta(text)),
                ContentDelta::InputJsonDelta { partial_json } => {
                    let tool_index = *self
                        .tool_indexes
                        .get(&index)
                        .ok_or_else(|| self.invalid(format!("input_json_delta for block {index}, not a tool_use")))?;
                    out.push(StreamEvent::ToolCallDelta {
                        index: tool_index,
                        id: None,
                        name: None,
                        arguments_json: partial_json,
                    });
                }
                ContentDelta::Other => {}
            },
            WireEvent::MessageDelta { delta, usage } => {
                self.finish_reason = Some(wire::finish_reason(delta.stop_reason.as_deref()));
                if let Some(usage) = usage {
                    // `output_tokens` here is the running total; input counts appear when
                    // server tools added some.
                    if let Some(input) = usage.input_tokens.and(usage.prompt_tokens()) {
                        self.usage.input_tokens = input;
                    }
                    if let Some(output) = usage.output_tokens {
                        self.usage.output_tokens = output;
                    }
                    out.push(StreamEvent::Usage(self.usage));
                }
            }
            WireEvent::MessageStop {} => {
                out.push(StreamEvent::Done { finish_reason: self.finish_reason.unwrap_or(FinishReason::Other) });
            }
            WireEvent::ContentBlockStop {} | WireEvent::Ping {} | WireEvent::Unknown => {}
            WireEvent::Error { error } => return Err(wire::stream_error(&self.provider, error)),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        // A stream cut after `message_delta` lost nothing but the closing event.
        match self.finish_reason {
            Some(finish_reason) => {
                out.push(StreamEvent::Done { finish_reason });
                Ok(())
            }
            None => Err(ProviderError::Connection {
                provider: self.provider.clone(),
                message: "the stream ended before message_stop".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(events: &[(&str, &str)]) -> Vec<Result<StreamEvent, ProviderError>> {
        let mut decoder = AnthropicDecoder::new("anthropic");
        let mut results = Vec::new();
        for (name, data) in events {
            let mut out = Vec::new();
            let result =
                decoder.decode(SseEvent { event: Some((*name).to_owned()), data: (*data).to_owned() }, &mut out);
            results.extend(out.into_iter().map(Ok));
            if let Err(err) = result {
                results.push(Err(err));
            }
        }
        results
    }

    #[test]
    fn tool_calls_are_numbered_apart_from_text_blocks() {
        let events = decode_all(&[
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            ),
        ]);
        assert_eq!(
            events,
            vec![
                Ok(StreamEvent::TextDelta("Hi".into())),
                Ok(StreamEvent::ToolCallDelta {
                    index: 0,
                    id: Some("toolu_1".into()),
                    name: Some("f".into()),
                    arguments_json: String::new()
                }),
                Ok(StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments_json: "{}".into() }),
            ]
        );
    }

    #[test]
    fn unknown_event_types_are_skipped() {
        let events = decode_all(&[("future_event", r#"{"type":"future_event","payload":{"x":1}}"#)]);
        assert_eq!(events, vec![]);
    }

    #[test]
    fn error_events_become_classified_errors() {
        let events =
            decode_all(&[("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)]);
        match &events[..] {
            [Err(ProviderError::Status { status: 529, message, .. })] => assert_eq!(message, "Overloaded"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_stream_cut_before_the_stop_reason_is_an_error() {
        let mut decoder = AnthropicDecoder::new("anthropic");
        assert!(matches!(decoder.finish(&mut Vec::new()), Err(ProviderError::Connection { .. })));
    }
}
