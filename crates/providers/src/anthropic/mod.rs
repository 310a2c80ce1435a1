//! The Anthropic Messages API client (`POST {base}/v1/messages`).

mod stream;
mod wire;

use std::time::Duration;

use async_trait::async_trait;

use crate::config::ApiKey;
use crate::http::{HttpClient, normalize_base_url};
use crate::sse::{decode_events, sse_events};
use crate::{Capabilities, ChatRequest, ChatResponse, EventStream, ModelProvider, ProviderError};

/// The API version every request names.
const API_VERSION: &str = "2023-06-01";

/// What an [`AnthropicProvider`] needs.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    pub api_key: ApiKey,
    /// Without a trailing `/v1`, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub request_timeout: Duration,
}

impl AnthropicConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";

    /// The public endpoint with the default timeout.
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            api_key,
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            request_timeout: crate::config::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

#[derive(Debug)]
pub struct AnthropicProvider {
    http: HttpClient,
    messages_url: String,
    api_key: ApiKey,
}

impl AnthropicProvider {
    pub const NAME: &'static str = "anthropic";

    pub fn new(config: AnthropicConfig) -> Result<Self, ProviderError> {
        let base_url = normalize_base_url(Self::NAME, &config.base_url)?;
        Ok(Self {
            http: HttpClient::new(Self::NAME, config.request_timeout)?,
            messages_url: format!("{base_url}/v1/messages"),
            api_key: config.api_key,
        })
    }

    fn request(&self, request: &ChatRequest, stream: bool) -> reqwest::RequestBuilder {
        self.http
            .post(&self.messages_url)
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", API_VERSION)
            .json(&wire::messages_request(request, stream))
    }
}

#[async_trait]
impl ModelProvider for AnthropicProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { streaming: true, tools: true, list_models: false }
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let response = self.http.send_json(self.request(request, false)).await?;
        Ok(wire::chat_response(Self::NAME, response))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        let response = self.http.send_stream(self.request(request, true)).await?;
        let events = sse_events(self.http.byte_stream(response));
        Ok(decode_events(events, stream::AnthropicDecoder::new(Self::NAME)))
    }
}
