//! Part of `cargo xtask bench models`: `nexus serve` as a user starts it (the release binary, a
//! SQLite data directory), timed from spawn until `/health` answers and until `/ready` says the
//! in-process models are loaded, with its resident memory once idle. The baseline in the same
//! run is the same binary with an empty models directory (nothing to load), and the models'
//! inline load time measured in this process (what `/health` waited for when servers loaded
//! them before listening).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::serve_process::{Serve, nexus_binary};

/// How long the server idles after it is ready before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// One start of `nexus serve`.
struct Start {
    health: Duration,
    ready: Duration,
    rss_mib: Option<f64>,
    peak_mib: Option<f64>,
}

pub fn run(models_dir: &Path, inline_load: Duration) -> anyhow::Result<()> {
    let binary = nexus_binary()?;
    println!();
    println!("## start: `nexus serve` ({}), SQLite", binary.display());
    println!("targets: /health within 200 ms with the models present; <= 300 MB resident after loading");
    let empty = tempfile::tempdir().context("an empty models directory")?;
    let with_models = tempfile::tempdir().context("a data directory")?;
    let without_models = tempfile::tempdir().context("a data directory")?;
    let start = |data_dir: &Path, models: &Path| -> anyhow::Result<Start> {
        let models = models.to_str().context("a UTF-8 models directory")?;
        let server = Serve::start(&binary, data_dir, &[("NEXUS_MODELS_DIR", models)], None)?;
        // The address is logged when the listener is bound; /health answers from then on.
        let health = server.until_ok("/health")?;
        let ready = server.until_ok("/ready")?;
        #[allow(clippy::disallowed_methods)] // a plain benchmark thread, no executor to block
        std::thread::sleep(SETTLE);
        let (rss_mib, peak_mib) = server.memory_mib();
        server.stop()?;
        Ok(Start { health, ready, rss_mib, peak_mib })
    };
    // The first start of a data directory creates the database; later starts find it.
    let rows = [
        ("first start, models present", start(with_models.path(), models_dir)?),
        ("restart, models present", start(with_models.path(), models_dir)?),
        ("first start, no models (baseline)", start(without_models.path(), empty.path())?),
        ("restart, no models (baseline)", start(without_models.path(), empty.path())?),
    ];
    println!("{:<36} {:>10} {:>10} {:>14} {:>11}", "", "/health ms", "/ready ms", "idle RSS MiB", "peak MiB");
    for (what, s) in &rows {
        println!(
            "{what:<36} {:>10.1} {:>10.1} {:>14} {:>11}",
            ms(s.health),
            ms(s.ready),
            mib(s.rss_mib),
            mib(s.peak_mib)
        );
    }
    println!(
        "{:<36} {:>10.1}   (the models loaded inline, as servers did before listening)",
        "inline load in this process",
        ms(inline_load)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}
