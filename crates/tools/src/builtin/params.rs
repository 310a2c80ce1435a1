//! Parameters at the edge: JSON Schemas derived from the params structs, and parsing that
//! names the offending parameter.

use std::cell::RefCell;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use serde_json::Value;

use crate::ToolError;

/// The JSON Schema of a params struct, as shown to the model.
pub(crate) fn schema<P: JsonSchema>() -> Value {
    let mut value = schemars::schema_for!(P).to_value();
    if let Value::Object(map) = &mut value {
        // Neither the meta-schema link nor the Rust type's name means anything to a model.
        map.remove("$schema");
        map.remove("title");
    }
    value
}

/// An `InvalidParams` error for one parameter.
pub(crate) fn invalid(param: &str, reason: impl Into<String>) -> ToolError {
    ToolError::InvalidParams { param: param.to_owned(), reason: reason.into() }
}

/// Parses a call's parameters into `P` (which should deny unknown fields). The error names
/// the parameter at fault: the key being read when deserialisation failed, or the missing one.
pub(crate) fn parse<P: DeserializeOwned>(params: Value) -> Result<P, ToolError> {
    let map = match params {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => return Err(invalid("params", format!("expected a JSON object, got {}", kind_of(&other)))),
    };
    let current = RefCell::new(None::<String>);
    let entries = map.into_iter().inspect(|(key, _)| *current.borrow_mut() = Some(key.clone()));
    let deserializer = MapDeserializer::<_, serde_json::Error>::new(entries);
    P::deserialize(deserializer).map_err(|error| {
        let message = error.to_string();
        let param = quoted_after(&message, "missing field `")
            .or_else(|| quoted_after(&message, "unknown field `"))
            .or_else(|| current.borrow().clone())
            .unwrap_or_else(|| "params".to_owned());
        invalid(&param, message)
    })
}

fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.split_once(prefix)?.1;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Example {
        /// What to look for.
        query: String,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        exact: bool,
    }

    fn param_of(value: Value) -> String {
        match parse::<Example>(value) {
            Err(ToolError::InvalidParams { param, .. }) => param,
            other => panic!("expected InvalidParams, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_parameter() {
        assert_eq!(param_of(json!({"limit": 3})), "query");
        assert_eq!(param_of(json!({"query": "x", "bogus": 1})), "bogus");
        assert_eq!(param_of(json!({"query": "x", "limit": "three"})), "limit");
        assert_eq!(param_of(json!({"limit": 3, "query": 7})), "query");
        assert_eq!(param_of(json!({"query": "x", "limit": -1})), "limit");
        assert_eq!(param_of(json!([1, 2])), "params");
        assert_eq!(
            parse::<Example>(json!({"query": "x", "limit": null})),
            Ok(Example { query: "x".into(), limit: None, exact: false })
        );
    }

    #[test]
    fn schemas_list_required_fields_and_refuse_extras() {
        let schema = schema::<Example>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["query"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["properties"]["query"]["description"], "What to look for.");
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
    }
}
