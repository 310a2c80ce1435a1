//! `compute_stats`: known answers and refused inputs.

use serde_json::{Value, json};
use tools::Tool;
use tools::builtin::{ComputeStats, describe_values};

use crate::support::{invalid_param, no_files};

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 1e-9)
}

#[tokio::test]
async fn describes_a_sample() {
    let result = ComputeStats.call(&no_files(), json!({"values": [9, 2, 4, 4, 5, 4, 7, 5]})).await.unwrap();
    assert_eq!(result["count"], 8);
    for (field, expected) in [
        ("sum", 40.0),
        ("mean", 5.0),
        ("median", 4.5),
        ("min", 2.0),
        ("max", 9.0),
        ("std_dev_population", 2.0),
        ("std_dev_sample", (32.0f64 / 7.0).sqrt()),
        ("p25", 4.0),
        ("p75", 5.5),
    ] {
        assert!(close(&result[field], expected), "{field}: {} != {expected}", result[field]);
    }
}

#[tokio::test]
async fn quartiles_interpolate_linearly() {
    let result = ComputeStats.call(&no_files(), json!({"values": [1, 2, 3, 4]})).await.unwrap();
    assert!(close(&result["median"], 2.5));
    assert!(close(&result["p25"], 1.75));
    assert!(close(&result["p75"], 3.25));

    let single = ComputeStats.call(&no_files(), json!({"values": [-3.5]})).await.unwrap();
    assert_eq!(single["count"], 1);
    assert!(close(&single["median"], -3.5) && close(&single["p75"], -3.5));
    assert!(close(&single["std_dev_population"], 0.0));
    assert_eq!(single["std_dev_sample"], Value::Null);
}

#[tokio::test]
async fn unusable_values_are_refused() {
    let too_many: Vec<f64> = vec![1.0; 100_001];
    let cases = [
        json!({}),
        json!({"values": []}),
        json!({"values": [1, "two", 3]}),
        json!({"values": [1, null]}),
        json!({"values": 5}),
        json!({"values": [1e308, 1e308]}),
        json!({"values": too_many}),
        json!({"values": [1], "metrics": ["mean"]}),
    ];
    for params in cases {
        let param = invalid_param(ComputeStats.call(&no_files(), params.clone()).await);
        let expected = if params.get("metrics").is_some() { "metrics" } else { "values" };
        assert_eq!(param, expected);
    }
    assert!(describe_values(&[1.0, f64::NAN]).unwrap_err().contains("item 1"));
    assert!(describe_values(&[f64::INFINITY]).is_err());
    assert_eq!(describe_values(&vec![1.0; 100_000]).unwrap().count, 100_000);
}
