//! `compute_stats`: descriptive statistics of a list of numbers handed in inline.

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::params::{invalid, parse, schema};
use crate::{Tool, ToolContext, ToolError};

pub const NAME: &str = "compute_stats";
/// The most values one call may hand in.
pub const MAX_VALUES: usize = 100_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The numbers to describe (1 to 100000 finite values).
    #[schemars(length(min = 1, max = 100_000))]
    values: Vec<f64>,
}

/// Descriptive statistics of a sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub sum: f64,
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Standard deviation of the values as a whole population (divides by n).
    pub std_dev_population: f64,
    /// Standard deviation of the values as a sample (divides by n − 1); absent for one value.
    pub std_dev_sample: Option<f64>,
    /// 25th percentile, linear interpolation between closest ranks.
    pub p25: f64,
    /// 75th percentile, linear interpolation between closest ranks.
    pub p75: f64,
}

/// Describes `values`; `Err` says why they cannot be described.
pub fn describe(values: &[f64]) -> Result<Stats, String> {
    if values.is_empty() {
        return Err("must hold at least one number".to_owned());
    }
    if values.len() > MAX_VALUES {
        return Err(format!("holds {} numbers; at most {MAX_VALUES} are accepted", values.len()));
    }
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("item {position} is not a finite number"));
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    let n = count as f64;
    let sum: f64 = sorted.iter().sum();
    if !sum.is_finite() {
        return Err("the sum overflows".to_owned());
    }
    let mean = sum / n;
    let squares: f64 = sorted.iter().map(|v| (v - mean).powi(2)).sum();
    if !squares.is_finite() {
        return Err("the spread overflows".to_owned());
    }
    Ok(Stats {
        count,
        sum,
        mean,
        median: percentile(&sorted, 0.5),
        min: sorted[0],
        max: sorted[count - 1],
        std_dev_population: (squares / n).sqrt(),
        std_dev_sample: (count > 1).then(|| (squares / (n - 1.0)).sqrt()),
        p25: percentile(&sorted, 0.25),
        p75: percentile(&sorted, 0.75),
    })
}

/// The `q` quantile of sorted, non-empty data: rank `q·(n−1)`, interpolated linearly.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let fraction = rank - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// Computes statistics.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComputeStats;

#[async_trait]
impl Tool for ComputeStats {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Compute descriptive statistics (count, sum, mean, median, min, max, standard \
                          deviations, quartiles) of a list of numbers."
                .to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::Low,
            resource_pattern: "data:*".to_owned(),
            resource_args: vec![ResourceArg {
                param: "values".to_owned(),
                kind: ResourceKind::Data,
                default: None,
                optional: false,
            }],
            timeout_seconds: 10,
            requires_approval: false,
            state_changing: false,
            untrusted_output: false,
        }
    }

    async fn call(&self, _context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let params: Params = parse(params)?;
        let stats = describe(&params.values).map_err(|reason| invalid("values", reason))?;
        serde_json::to_value(stats)
            .map_err(|e| ToolError::Failed { message: format!("cannot encode the statistics: {e}"), transient: false })
    }
}
