//! What every handler shares: the runtime (the one façade), HTTP settings, and the metrics
//! renderer the binary installed.

use std::sync::Arc;

use runtime::Runtime;

/// HTTP-level settings, already checked.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// Origins CORS allows; empty = no CORS headers; `*` = any origin.
    pub cors_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { max_body_bytes: 10 * 1024 * 1024, cors_origins: Vec::new() }
    }
}

/// Renders the Prometheus exposition text (installed by the binary; absent in some tests).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub settings: Arc<HttpSettings>,
    pub metrics: Option<MetricsRender>,
}

impl AppState {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime, settings: Arc::new(HttpSettings::default()), metrics: None }
    }

    pub fn with_settings(mut self, settings: HttpSettings) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    pub fn with_metrics(mut self, render: MetricsRender) -> Self {
        self.metrics = Some(render);
        self
    }
}
