//! The sandbox: timeouts, the output cap, panics and cancellation.

use std::time::Duration;

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::ToolDefinition;
use serde_json::{Value, json};
use tokio::sync::watch;
use tools::{Sandbox, SandboxLimits, Tool, ToolContext, ToolError};

use crate::support::no_files;

/// A test tool whose behaviour is chosen by its `mode` parameter.
struct Scripted;

#[async_trait]
impl Tool for Scripted {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "scripted".into(),
            description: "test tool".into(),
            parameters: json!({"type": "object"}),
            risk_level: RiskLevel::Low,
            resource_pattern: "*".into(),
            resource_args: vec![],
            timeout_seconds: 1,
            requires_approval: false,
            state_changing: false,
            untrusted_output: false,
        }
    }

    async fn call(&self, _context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        match params["mode"].as_str() {
            Some("slow") => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(json!("late"))
            }
            Some("big") => Ok(json!("x".repeat(10_000))),
            Some("panic") => panic!("boom"),
            Some("fail") => Err(ToolError::Failed { message: "nope".into(), transient: true }),
            _ => Ok(json!({"ok": true})),
        }
    }
}

async fn run(sandbox: &Sandbox, mode: &str, timeout: Duration) -> Result<Value, ToolError> {
    let (_cancel, cancelled) = watch::channel(false);
    sandbox.run(&Scripted, &no_files(), json!({"mode": mode}), timeout, cancelled).await
}

#[tokio::test]
async fn results_and_tool_errors_pass_through() {
    let sandbox = Sandbox::default();
    assert_eq!(run(&sandbox, "ok", Duration::from_secs(5)).await, Ok(json!({"ok": true})));
    assert_eq!(
        run(&sandbox, "fail", Duration::from_secs(5)).await,
        Err(ToolError::Failed { message: "nope".into(), transient: true })
    );
}

#[tokio::test]
async fn a_slow_call_times_out() {
    let result = run(&Sandbox::default(), "slow", Duration::from_millis(50)).await;
    assert_eq!(result, Err(ToolError::Timeout(Duration::from_millis(50))));
    assert!(result.unwrap_err().is_transient());
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let sandbox = Sandbox::new(SandboxLimits { max_output_bytes: 1_000 });
    let result = run(&sandbox, "big", Duration::from_secs(5)).await;
    assert_eq!(result, Err(ToolError::OutputTooLarge { size: 10_002, limit: 1_000 }));
    assert_eq!(run(&sandbox, "ok", Duration::from_secs(5)).await, Ok(json!({"ok": true})));
}

#[tokio::test]
async fn a_panic_is_caught_and_reported() {
    let result = run(&Sandbox::default(), "panic", Duration::from_secs(5)).await;
    assert_eq!(result, Err(ToolError::Panicked("boom".into())));
}

#[tokio::test]
async fn cancelling_abandons_the_call() {
    let sandbox = Sandbox::default();
    let (cancel, cancelled) = watch::channel(false);
    let context = no_files();
    let call = sandbox.run(&Scripted, &context, json!({"mode": "slow"}), Duration::from_secs(30), cancelled);
    let trigger = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        cancel.send(true).unwrap();
    };
    let started = std::time::Instant::now();
    let (result, ()) = tokio::join!(call, trigger);
    assert_eq!(result, Err(ToolError::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(5));

    let (_cancel, already) = watch::channel(true);
    let result = sandbox.run(&Scripted, &context, json!({"mode": "slow"}), Duration::from_secs(30), already).await;
    assert_eq!(result, Err(ToolError::Cancelled));
}
