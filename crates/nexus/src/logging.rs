//! Structured logs on standard error: text for people, JSON for collectors. A server also keeps
//! its recent lines (redacted) in a [`LogTail`] for the console's live log view; the same
//! `log.level` filter decides what reaches both.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use runtime::logs::{LogLevel, LogTail};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, LogFormat};

static TAIL: OnceLock<Arc<LogTail>> = OnceLock::new();

/// The recent log lines this process keeps, if it is a server.
pub fn tail() -> Option<Arc<LogTail>> {
    TAIL.get().cloned()
}

pub fn init(config: &Config, serving: bool) -> anyhow::Result<()> {
    // Servers tell what they do; one-shot commands keep standard error for problems.
    let default = if serving { "info" } else { "warn" };
    let directive = config.log_level.as_deref().unwrap_or(default);
    let filter = EnvFilter::try_new(directive)
        .map_err(|e| anyhow::anyhow!("setting log.level: {directive:?} is not a log filter: {e}"))?;
    let kept = serving.then(|| TAIL.get_or_init(|| Arc::new(LogTail::default())).clone()).map(TailLayer);
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(kept);
    match config.log_format {
        LogFormat::Text => registry.with(stderr).try_init(),
        LogFormat::Json => registry.with(stderr.json()).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("starting logging: {e}"))
}

/// Keeps every event that passed the filter in the tail, as `message key=value …`.
struct TailLayer(Arc<LogTail>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TailLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let level = match *metadata.level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        };
        let mut line = Line::default();
        event.record(&mut line);
        if !line.fields.is_empty() {
            if !line.message.is_empty() {
                line.message.push(' ');
            }
            line.message.push_str(line.fields.trim_start());
        }
        self.0.push(level, metadata.target(), line.tenant.as_deref(), &line.message);
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
    /// The `tenant` (or `tenant_id`) field, which scopes who may see the line.
    tenant: Option<String>,
}

impl Line {
    fn note_tenant(&mut self, field: &Field, value: String) {
        if matches!(field.name(), "tenant" | "tenant_id") {
            self.tenant = Some(value);
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.note_tenant(field, value.to_owned());
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.note_tenant(field, format!("{value:?}").trim_matches('"').to_owned());
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn events_are_kept_with_their_fields_tenant_and_secrets_masked() {
        let tail = Arc::new(LogTail::default());
        let subscriber = tracing_subscriber::registry().with(TailLayer(tail.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(tenant = %"acme", key = "nxs_AbCdEf0123456789xyz", "key used");
            tracing::warn!(attempts = 3, "slow upstream");
        });
        let (lines, _) = tail.attach(None);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, r#"key used tenant=acme key="[redacted]""#);
        assert_eq!((lines[0].tenant.as_deref(), lines[0].level), (Some("acme"), LogLevel::Info));
        assert_eq!((lines[1].text.as_str(), lines[1].tenant.as_deref()), ("slow upstream attempts=3", None));
        assert!(lines[0].target.contains("logging"));
    }
}
