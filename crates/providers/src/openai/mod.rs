//! The OpenAI chat-completions client (`POST {base}/chat/completions`), in three
//! configurations: OpenAI itself, Mistral, and any OpenAI-compatible server.

mod stream;
mod wire;

use std::time::Duration;

use async_trait::async_trait;

use crate::config::ApiKey;
use crate::http::{HttpClient, normalize_base_url};
use crate::sse::{decode_events, sse_events};
use crate::{Capabilities, ChatRequest, ChatResponse, EventStream, ModelProvider, ProviderError};

/// Which field carries the output-token limit. OpenAI's reasoning models refuse `max_tokens`;
/// Mistral and most compatible servers know only `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

/// What an [`OpenAiProvider`] needs.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The provider name in logs, costs and errors: `openai`, `mistral`, or the configured name.
    pub name: String,
    /// Including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; a local compatible server may need none.
    pub api_key: Option<ApiKey>,
    pub request_timeout: Duration,
    /// Whether to ask for a usage chunk when streaming (`stream_options.include_usage`).
    /// Mistral rejects the option and reports usage in its last chunk anyway.
    pub stream_usage_option: bool,
    pub max_tokens_field: MaxTokensField,
}

impl OpenAiConfig {
    pub const OPENAI_BASE_URL: &'static str = "https://api.openai.com/v1";
    pub const MISTRAL_BASE_URL: &'static str = "https://api.mistral.ai/v1";
    /// The name of an OpenAI-compatible server when none is configured.
    pub const DEFAULT_COMPATIBLE_NAME: &'static str = "openai-compatible";

    pub fn openai(api_key: ApiKey) -> Self {
        Self {
            name: "openai".to_owned(),
            base_url: Self::OPENAI_BASE_URL.to_owned(),
            api_key: Some(api_key),
            request_timeout: crate::config::DEFAULT_REQUEST_TIMEOUT,
            stream_usage_option: true,
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
        }
    }

    pub fn mistral(api_key: ApiKey) -> Self {
        Self {
            name: "mistral".to_owned(),
            base_url: Self::MISTRAL_BASE_URL.to_owned(),
            api_key: Some(api_key),
            request_timeout: crate::config::DEFAULT_REQUEST_TIMEOUT,
            stream_usage_option: false,
            max_tokens_field: MaxTokensField::MaxTokens,
        }
    }

    pub fn compatible(name: impl Into<String>, base_url: impl Into<String>, api_key: Option<ApiKey>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            api_key,
            request_timeout: crate::config::DEFAULT_REQUEST_TIMEOUT,
            stream_usage_option: true,
            max_tokens_field: MaxTokensField::MaxTokens,
        }
    }
}

#[derive(Debug)]
pub struct OpenAiProvider {
    name: String,
    http: HttpClient,
    /// Parsed once here, not at every request.
    completions_url: url::Url,
    api_key: Option<ApiKey>,
    shape: wire::RequestShape,
}

impl OpenAiProvider {
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderError> {
        let base_url = normalize_base_url(&config.name, &config.base_url)?;
        let completions_url = format!("{base_url}/chat/completions");
        let completions_url = url::Url::parse(&completions_url).map_err(|err| {
            ProviderError::NotConfigured(format!("{}: {completions_url:?} is not a valid URL: {err}", config.name))
        })?;
        Ok(Self {
            http: HttpClient::new(&config.name, config.request_timeout)?,
            completions_url,
            api_key: config.api_key,
            shape: wire::RequestShape {
                max_tokens_field: config.max_tokens_field,
                stream_usage_option: config.stream_usage_option,
            },
            name: config.name,
        })
    }

    fn request(&self, request: &ChatRequest, stream: bool) -> reqwest::RequestBuilder {
        let builder =
            self.http.post(self.completions_url.clone()).json(&wire::completion_request(request, self.shape, stream));
        match &self.api_key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }
}

#[async_trait]
impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { streaming: true, tools: true, list_models: false }
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let response = self.http.send_json(self.request(request, false)).await?;
        wire::chat_response(&self.name, response)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        let response = self.http.send_stream(self.request(request, true)).await?;
        let events = sse_events(self.http.byte_stream(response));
        Ok(decode_events(events, stream::OpenAiDecoder::new(&self.name)))
    }
}
