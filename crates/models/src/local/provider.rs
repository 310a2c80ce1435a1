//! [`LocalChatProvider`]: the local model behind the `providers::ModelProvider` seam, as
//! provider `local`, model `smollm2-135m`. Generation runs on tokio's blocking pool; streamed
//! text travels through a channel into the event stream, and dropping the stream stops the
//! generation at its next token. No tool calling: requests with tools are answered in text.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use providers::{
    Capabilities, ChatRequest, ChatResponse, EventStream, FinishReason, ModelProvider, ProviderError, Role,
    StreamEvent, Usage,
};

use super::text::{ChatRole, chatml_prompt};
use super::{Generation, GenerationParams, LocalModel, MODEL_ID, StopReason};
use crate::error::ModelError;

/// The provider's name in logs, cost records and errors.
pub const PROVIDER_NAME: &str = "local";

/// Streamed text pieces buffered between the generating thread and the consumer.
const STREAM_BUFFER: usize = 64;

/// What the local provider supports: streaming, no tool calls, no model listing.
pub const CAPABILITIES: Capabilities = Capabilities { streaming: true, tools: false, list_models: false };

#[derive(Debug, Clone)]
pub struct LocalChatProvider {
    model: Arc<LocalModel>,
    seed: u64,
}

impl LocalChatProvider {
    pub fn new(model: Arc<LocalModel>) -> Self {
        Self { model, seed: 0 }
    }

    /// Loads the model from the models directory (see [`LocalModel::load`]).
    pub fn load(models_dir: &Path) -> Result<Self, ModelError> {
        Ok(Self::new(Arc::new(LocalModel::load(models_dir)?)))
    }

    /// The sampler's seed for requests with a temperature above 0 (default 0).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn prepare(&self, request: &ChatRequest) -> Result<(String, GenerationParams), ProviderError> {
        if request.model != MODEL_ID {
            return Err(ProviderError::Status {
                provider: PROVIDER_NAME.into(),
                status: 404,
                message: format!("unknown model `{}`; the local provider serves `{MODEL_ID}`", request.model),
                retry_after: None,
            });
        }
        let params = GenerationParams {
            max_tokens: usize::try_from(request.max_tokens).unwrap_or(usize::MAX),
            // Greedy unless asked otherwise: reproducible answers from the same request.
            temperature: request.temperature.unwrap_or(0.0),
            seed: self.seed,
            stop: request.stop.clone(),
            ..GenerationParams::default()
        };
        Ok((prompt(request), params))
    }
}

/// The ChatML prompt of a request. Tool results become user turns (the model has no tool role).
fn prompt(request: &ChatRequest) -> String {
    let mut turns: Vec<(ChatRole, Cow<'_, str>)> = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        turns.push((ChatRole::System, Cow::Borrowed(system)));
    }
    for message in &request.messages {
        turns.push(match message.role {
            Role::User => (ChatRole::User, Cow::Borrowed(&message.content)),
            Role::Assistant => (ChatRole::Assistant, Cow::Borrowed(&message.content)),
            Role::Tool => (ChatRole::User, Cow::Owned(format!("Tool result: {}", message.content))),
        });
    }
    let turns: Vec<(ChatRole, &str)> = turns.iter().map(|(role, text)| (*role, text.as_ref())).collect();
    chatml_prompt(&turns)
}

fn finish_reason(stop: StopReason) -> FinishReason {
    match stop {
        StopReason::EndOfTurn | StopReason::StopSequence => FinishReason::Stop,
        StopReason::MaxTokens => FinishReason::Length,
        StopReason::Cancelled => FinishReason::Other,
    }
}

fn usage(generation: &Generation) -> Usage {
    Usage { input_tokens: generation.prompt_tokens as u64, output_tokens: generation.generated_tokens as u64 }
}

fn provider_error(error: ModelError) -> ProviderError {
    match error {
        ModelError::ContextOverflow { .. } => {
            ProviderError::ContextOverflow { provider: PROVIDER_NAME.into(), message: error.to_string() }
        }
        other => ProviderError::InvalidResponse { provider: PROVIDER_NAME.into(), message: other.to_string() },
    }
}

fn join_error(error: tokio::task::JoinError) -> ProviderError {
    ProviderError::InvalidResponse { provider: PROVIDER_NAME.into(), message: format!("generation failed: {error}") }
}

#[async_trait]
impl ModelProvider for LocalChatProvider {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let (prompt, params) = self.prepare(request)?;
        let model = Arc::clone(&self.model);
        let generation =
            tokio::task::spawn_blocking(move || model.generate(&prompt, &params, &mut |_| ControlFlow::Continue(())))
                .await
                .map_err(join_error)?
                .map_err(provider_error)?;
        Ok(ChatResponse {
            provider: PROVIDER_NAME.into(),
            model: MODEL_ID.into(),
            usage: usage(&generation),
            finish_reason: finish_reason(generation.stop_reason),
            content: generation.text,
            tool_calls: Vec::new(),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        let (prompt, params) = self.prepare(request)?;
        let model = Arc::clone(&self.model);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<StreamEvent, ProviderError>>(STREAM_BUFFER);
        // Detached on purpose: it ends by itself, at the latest one token after the stream is
        // dropped (the next send fails and the callback breaks).
        drop(tokio::task::spawn_blocking(move || {
            let mut on_text = |piece: &str| match sender.blocking_send(Ok(StreamEvent::TextDelta(piece.to_owned()))) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            };
            let events = match model.generate(&prompt, &params, &mut on_text) {
                Ok(generation) => vec![
                    Ok(StreamEvent::Usage(usage(&generation))),
                    Ok(StreamEvent::Done { finish_reason: finish_reason(generation.stop_reason) }),
                ],
                Err(error) => vec![Err(provider_error(error))],
            };
            for event in events {
                if sender.blocking_send(event).is_err() {
                    break;
                }
            }
        }));
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use providers::{ChatRequest, Message};

    use super::prompt;

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "smollm2-135m".into(),
            system: Some("Be brief.".into()),
            messages,
            tools: Vec::new(),
            max_tokens: 16,
            temperature: None,
            stop: Vec::new(),
        }
    }

    #[test]
    fn the_prompt_keeps_turn_order_and_turns_tool_results_into_user_turns() {
        let text = prompt(&request(vec![
            Message::user("Weather in Paris?"),
            Message::assistant("Let me check."),
            Message::tool_result("call_1", "18°C, cloudy"),
        ]));
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n\
             <|im_start|>assistant\nLet me check.<|im_end|>\n<|im_start|>user\nTool result: 18°C, cloudy<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }
}
