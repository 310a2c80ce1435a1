//! What every console handler shares: the runtime and the console's settings.

use std::sync::Arc;

use runtime::Runtime;

use crate::proxies::ProxyNet;

/// How the console is deployed.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Reverse proxies whose `X-Forwarded-For` names the client (empty: none is trusted).
    pub trusted_proxies: Vec<ProxyNet>,
}

#[derive(Clone)]
pub struct ConsoleState {
    pub runtime: Arc<Runtime>,
    pub settings: Arc<ConsoleSettings>,
}
