//! Parsing what models say: plans and intent declarations, tolerant of code fences and prose
//! around the JSON, strict about its shape. Bad output is an error with a reason, never a panic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most steps a plan may have (0 means "answer directly").
pub const MAX_STEPS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the model's answer contains no JSON {expected}")]
    NoJson { expected: &'static str },
    #[error("the model's JSON is invalid: {0}")]
    InvalidJson(String),
    #[error("the plan has {count} steps; at most {max} are allowed")]
    TooManySteps { count: usize, max: usize },
    #[error("plan step {index}: {reason}")]
    BadStep { index: usize, reason: String },
    #[error("intent declaration: {0}")]
    BadIntent(String),
}

/// One planned step, in the JSON shape the planner prompt asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub action: String,
    pub tool: String,
    #[serde(default)]
    pub params: Value,
    #[serde(default)]
    pub persona: Option<String>,
}

/// The JSON value in a model's text: the whole text, a fenced block, or the first balanced
/// `{…}` / `[…]` span.
pub fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let body = after.split_once('\n').map_or(after, |(_, rest)| rest);
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str(body[..end].trim())
        {
            return Some(v);
        }
    }
    for (i, c) in trimmed.char_indices().filter(|(_, c)| *c == '{' || *c == '[') {
        let mut stream = serde_json::Deserializer::from_str(&trimmed[i..]).into_iter::<Value>();
        if let Some(Ok(v)) = stream.next() {
            return Some(v);
        }
        let _ = c;
    }
    None
}

/// Parses a plan: a JSON array of steps, or an object with a `steps` array. An empty plan is
/// valid (answer directly).
pub fn plan(text: &str) -> Result<Vec<PlannedStep>, ParseError> {
    plan_at_most(text, MAX_STEPS)
}

/// [`plan`], with at most `max` steps.
pub fn plan_at_most(text: &str, max: usize) -> Result<Vec<PlannedStep>, ParseError> {
    let value = extract_json(text).ok_or(ParseError::NoJson { expected: "plan" })?;
    let steps = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("steps") {
            Some(Value::Array(items)) => items,
            _ => return Err(ParseError::InvalidJson("expected an array of steps".into())),
        },
        _ => return Err(ParseError::InvalidJson("expected an array of steps".into())),
    };
    if steps.len() > max {
        return Err(ParseError::TooManySteps { count: steps.len(), max });
    }
    steps
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let step: PlannedStep =
                serde_json::from_value(raw).map_err(|e| ParseError::BadStep { index, reason: e.to_string() })?;
            if step.tool.trim().is_empty() {
                return Err(ParseError::BadStep { index, reason: "no tool named".into() });
            }
            if !(step.params.is_object() || step.params.is_null()) {
                return Err(ParseError::BadStep { index, reason: "params must be an object".into() });
            }
            Ok(PlannedStep {
                params: if step.params.is_null() { Value::Object(Default::default()) } else { step.params },
                ..step
            })
        })
        .collect()
}

/// What the model declares before a tool call, in the JSON shape the declaration prompt asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declaration {
    pub planned_action: String,
    pub tool_params: Value,
    #[serde(default)]
    pub resource_targets: Vec<String>,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub confidence: f64,
}

pub fn declaration(text: &str) -> Result<Declaration, ParseError> {
    let value = extract_json(text).ok_or(ParseError::NoJson { expected: "intent declaration" })?;
    let mut d: Declaration = serde_json::from_value(value).map_err(|e| ParseError::BadIntent(e.to_string()))?;
    if !d.tool_params.is_object() {
        return Err(ParseError::BadIntent("tool_params must be an object".into()));
    }
    if !d.confidence.is_finite() {
        return Err(ParseError::BadIntent("confidence must be a number".into()));
    }
    d.confidence = d.confidence.clamp(0.0, 1.0);
    Ok(d)
}

/// Checks that required parameters (from the tool's JSON schema `required` list) are present.
pub fn missing_required(schema: &Value, params: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|required| {
            required
                .iter()
                .filter_map(Value::as_str)
                .filter(|name| params.get(name).is_none_or(Value::is_null))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_are_found_in_prose_and_fences() {
        let fenced = "Here is the plan:\n```json\n[{\"action\": \"search\", \"tool\": \"knowledge_search\", \"params\": {\"query\": \"nexus\"}, \"persona\": \"researcher\"}]\n```\nDone.";
        let steps = plan(fenced).expect("plan");
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].tool, "knowledge_search");
        assert_eq!(plan("Sure! [] is my plan").expect("empty plan"), vec![]);
        assert_eq!(plan(r#"{"steps": [{"action": "a", "tool": "t"}]}"#).expect("object form")[0].params, json!({}));
    }

    #[test]
    fn bad_plans_are_errors_not_panics() {
        assert!(matches!(plan("I cannot help"), Err(ParseError::NoJson { .. })));
        assert!(matches!(plan("{\"steps\": 3}"), Err(ParseError::InvalidJson(_))));
        let fifty = serde_json::to_string(&vec![json!({"action": "a", "tool": "t"}); 50]).expect("json");
        assert_eq!(plan(&fifty), Err(ParseError::TooManySteps { count: 50, max: MAX_STEPS }));
        assert!(matches!(plan(r#"[{"action": "a"}]"#), Err(ParseError::BadStep { index: 0, .. })));
        assert!(matches!(plan(r#"[{"action": "a", "tool": " "}]"#), Err(ParseError::BadStep { .. })));
        assert!(matches!(plan(r#"[{"action": "a", "tool": "t", "params": [1]}]"#), Err(ParseError::BadStep { .. })));
        assert!(plan("[{").is_err());
    }

    #[test]
    fn declarations_are_parsed_and_clamped() {
        let d = declaration(r#"{"planned_action": "read", "tool_params": {"path": "a"}, "confidence": 7}"#)
            .expect("parses");
        assert_eq!(d.confidence, 1.0);
        assert!(declaration(r#"{"planned_action": "read", "tool_params": "a"}"#).is_err());
        assert!(declaration("nothing").is_err());
    }

    #[test]
    fn required_parameters_are_checked() {
        let schema = json!({"type": "object", "required": ["path", "content"]});
        assert_eq!(missing_required(&schema, &json!({"path": "a", "content": null})), vec!["content".to_owned()]);
        assert!(missing_required(&schema, &json!({"path": "a", "content": "x"})).is_empty());
    }
}
