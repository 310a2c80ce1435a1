//! Structured logs on standard error: text for people, JSON for collectors. A server also keeps
//! its recent lines (redacted) in a [`LogTail`] for the console's live log view and the logs API,
//! and, when `log.file` is set, writes the same lines to a file rotated by size
//! ([`RotatingFile`]: `nexus.log` → `nexus.log.1` → … → `nexus.log.<keep>`, the oldest dropped).
//! The same `log.level` filter decides what reaches all of them; a server changes it live when
//! the setting changes ([`set_level`]).

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use runtime::logs::{LogLevel, LogTail};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, LogFormat};

static TAIL: OnceLock<Arc<LogTail>> = OnceLock::new();
/// Changes the filter of a running process (`log.level` changed in the settings).
static FILTER: OnceLock<tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>> = OnceLock::new();
/// The filter used when `log.level` is unset.
static DEFAULT_LEVEL: OnceLock<&'static str> = OnceLock::new();

/// Puts a new `log.level` in force (`None`: the command's default); false when it is already
/// the one in force or logging was not started here.
pub fn set_level(level: Option<&str>) -> bool {
    let Some(handle) = FILTER.get() else { return false };
    let directive = level.unwrap_or_else(|| DEFAULT_LEVEL.get().copied().unwrap_or("info"));
    let Ok(filter) = EnvFilter::try_new(directive) else { return false };
    let same = handle.with_current(|current| current.to_string() == filter.to_string()).unwrap_or(false);
    !same && handle.reload(filter).is_ok()
}

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
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = FILTER.set(handle);
    let _ = DEFAULT_LEVEL.set(default);
    let kept = serving.then(|| TAIL.get_or_init(|| Arc::new(LogTail::default())).clone()).map(TailLayer);
    let file = match (&config.log_file, serving) {
        (Some(settings), true) => Some(RotatingFile::open(settings)?),
        _ => None,
    };
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(kept);
    match config.log_format {
        LogFormat::Text => {
            let file = file.map(|f| tracing_subscriber::fmt::layer().with_ansi(false).with_writer(f));
            registry.with(stderr).with(file).try_init()
        }
        LogFormat::Json => {
            let file = file.map(|f| tracing_subscriber::fmt::layer().json().with_writer(f));
            registry.with(stderr.json()).with(file).try_init()
        }
    }
    .map_err(|e| anyhow::anyhow!("starting logging: {e}"))
}

/// A log file rotated when a write would take it past `max_bytes`; `keep` older files stay.
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<std::sync::Mutex<Rotation>>,
}

struct Rotation {
    settings: crate::config::LogFile,
    file: std::fs::File,
    size: u64,
}

impl RotatingFile {
    pub fn open(settings: &crate::config::LogFile) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {} (log.file)", dir.display()))?;
        }
        let file = append(&settings.path).with_context(|| format!("opening {} (log.file)", settings.path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self { inner: Arc::new(std::sync::Mutex::new(Rotation { settings: settings.clone(), file, size })) })
    }
}

fn append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

impl Rotation {
    /// `file.N-1` → `file.N` down to `file` → `file.1`, then a fresh file.
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = self.settings.path.clone();
        let numbered = |n: u32| std::path::PathBuf::from(format!("{}.{n}", path.display()));
        for n in (1..self.settings.keep).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        std::fs::rename(&path, numbered(1))?;
        self.file = append(&path)?;
        self.size = 0;
        Ok(())
    }
}

impl std::io::Write for RotatingFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut rotation = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if rotation.size > 0 && rotation.size + bytes.len() as u64 > rotation.settings.max_bytes {
            // A failed rotation keeps writing to the current file rather than losing lines.
            if let Err(error) = rotation.rotate() {
                let _ = writeln!(std::io::stderr(), "could not rotate the log file: {error}");
            }
        }
        let written = rotation.file.write(bytes)?;
        rotation.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).file.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
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
    fn the_log_file_rotates_by_size_and_keeps_the_newest_files() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs").join("nexus.log");
        let settings = crate::config::LogFile { path: path.clone(), max_bytes: 100, keep: 2 };
        let mut file = RotatingFile::open(&settings).expect("open");
        for n in 0..10 {
            file.write_all(format!("line {n:02} {}\n", "x".repeat(30)).as_bytes()).expect("write");
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        let numbered = |n: u32| std::path::PathBuf::from(format!("{}.{n}", path.display()));
        assert!(read(&path).contains("line 09"), "the newest line is in the live file");
        assert!(read(&path).len() <= 100 && read(&numbered(1)).len() <= 100);
        assert!(read(&numbered(1)).contains("line 0"));
        assert!(numbered(2).exists() && !numbered(3).exists(), "keep = 2");
        let all = [read(&numbered(2)), read(&numbered(1)), read(&path)].concat();
        assert!(all.contains("line 04") && !all.contains("line 00"), "the oldest were dropped: {all}");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }

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
