//! Structured logs on standard error: text for people, JSON for collectors.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config, serving: bool) -> anyhow::Result<()> {
    // Servers tell what they do; one-shot commands keep standard error for problems.
    let default = if serving { "info" } else { "warn" };
    let directive = config.log_level.as_deref().unwrap_or(default);
    let filter = EnvFilter::try_new(directive)
        .map_err(|e| anyhow::anyhow!("setting log.level: {directive:?} is not a log filter: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("starting logging: {e}"))
}
