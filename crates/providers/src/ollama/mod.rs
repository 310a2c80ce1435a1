//! The Ollama native API client (`POST {base}/api/chat`, `GET {base}/api/tags`).

mod wire;

use std::time::Duration;

use async_trait::async_trait;

use crate::http::{HttpClient, normalize_base_url};
use crate::sse::{decode_events, ndjson_lines};
use crate::{Capabilities, ChatRequest, ChatResponse, EventStream, ModelProvider, ProviderError};

/// What an [`OllamaProvider`] needs.
#[derive(Debug, Clone)]
pub struct OllamaConfig {
    pub base_url: String,
    pub request_timeout: Duration,
}

impl OllamaConfig {
    pub const DEFAULT_BASE_URL: &'static str = "http://127.0.0.1:11434";
}

impl Default for OllamaConfig {
    fn default() -> Self {
        Self { base_url: Self::DEFAULT_BASE_URL.to_owned(), request_timeout: crate::config::DEFAULT_REQUEST_TIMEOUT }
    }
}

#[derive(Debug)]
pub struct OllamaProvider {
    http: HttpClient,
    base_url: String,
}

impl OllamaProvider {
    pub const NAME: &'static str = "ollama";

    pub fn new(config: OllamaConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            http: HttpClient::new(Self::NAME, config.request_timeout)?,
            base_url: normalize_base_url(Self::NAME, &config.base_url)?,
        })
    }

    /// The names of the models pulled on this server, e.g. `llama3.2:latest`.
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        let tags: wire::TagsResponse =
            self.http.send_json(self.http.get(&format!("{}/api/tags", self.base_url))).await?;
        Ok(tags.into_names())
    }

    fn request(&self, request: &ChatRequest, stream: bool) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/api/chat", self.base_url)).json(&wire::chat_request(request, stream))
    }
}

#[async_trait]
impl ModelProvider for OllamaProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { streaming: true, tools: true, list_models: true }
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let response = self.http.send_json(self.request(request, false)).await?;
        wire::chat_response(Self::NAME, response)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        let response = self.http.send_stream(self.request(request, true)).await?;
        let lines = ndjson_lines(self.http.byte_stream(response));
        Ok(decode_events(lines, wire::OllamaDecoder::new(Self::NAME)))
    }
}
