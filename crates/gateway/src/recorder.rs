//! The Prometheus recorder every `metrics::` call reports to, as `nexus serve` installs it:
//! latency buckets from 10 µs to 60 s, and upkeep every five seconds. Histogram samples are
//! folded into their buckets only by upkeep (or a scrape); without it they pile up in memory
//! for as long as nobody scrapes `/metrics`, about 8 bytes per sample.

use std::sync::Arc;
use std::time::Duration;

use crate::state::MetricsRender;

/// Latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];
/// How often pending histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the metrics recorder: {0}")]
pub struct RecorderError(String);

/// Installs the recorder (once per process) and starts its upkeep; returns what renders
/// `/metrics`.
pub fn install_recorder() -> Result<MetricsRender, RecorderError> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| RecorderError(e.to_string()))?
        .install_recorder()
        .map_err(|e| RecorderError(e.to_string()))?;
    let upkeep = handle.clone();
    runtime::tasks::spawn("metrics-upkeep", async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    Ok(Arc::new(move || handle.render()))
}
