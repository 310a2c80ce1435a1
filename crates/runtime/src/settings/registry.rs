//! What a setting is: its name, type, default, scope, whether it is secret, whether a change
//! applies at once, and its documentation. The composition root declares every setting once
//! as a [`SettingSpec`]; this module reads a client's value into the setting's canonical text,
//! or says exactly why it cannot.

use serde::Serialize;

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingType {
    /// Any non-empty text.
    Text,
    /// An `http://` or `https://` address.
    Url,
    /// A whole number in `min..=max`.
    Whole {
        min: u64,
        max: u64,
    },
    /// A number in `min..=max`.
    Number {
        min: f64,
        max: f64,
    },
    Bool,
    /// A comma-separated list (or, from JSON, an array of strings).
    List,
    /// One of the given words.
    Choice(&'static [&'static str]),
    /// `provider/model`.
    ModelRef,
}

impl SettingType {
    /// The name clients see (`text`, `url`, `integer`, `number`, `boolean`, `list`, `choice`,
    /// `model`).
    pub fn name(&self) -> &'static str {
        match self {
            SettingType::Text => "text",
            SettingType::Url => "url",
            SettingType::Whole { .. } => "integer",
            SettingType::Number { .. } => "number",
            SettingType::Bool => "boolean",
            SettingType::List => "list",
            SettingType::Choice(_) => "choice",
            SettingType::ModelRef => "model",
        }
    }

    /// The value's canonical text, from a JSON value (a string, number, boolean or array of
    /// strings); the error says what was expected.
    pub fn read_json(&self, value: &serde_json::Value) -> Result<String, String> {
        match value {
            serde_json::Value::String(text) => self.read(text),
            serde_json::Value::Number(n) => self.read(&n.to_string()),
            serde_json::Value::Bool(b) => self.read(if *b { "true" } else { "false" }),
            serde_json::Value::Array(items) if *self == SettingType::List => {
                let mut texts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        serde_json::Value::String(text) => texts.push(text.clone()),
                        _ => return Err("a list holds strings only".into()),
                    }
                }
                self.read(&texts.join(","))
            }
            _ => Err(format!("expected {}", self.expectation())),
        }
    }

    /// The value's canonical text, from text as typed on a command line or in an environment
    /// variable; the error says what was expected.
    pub fn read(&self, text: &str) -> Result<String, String> {
        let trimmed = text.trim();
        let wrong = || format!("{trimmed:?} is not {}", self.expectation());
        match self {
            SettingType::Text => {
                if trimmed.is_empty() {
                    return Err("the value is empty (unset the setting instead)".into());
                }
                if trimmed.chars().any(char::is_control) {
                    return Err("the value holds control characters".into());
                }
                Ok(trimmed.to_owned())
            }
            SettingType::Url => {
                let rest = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://"));
                match rest {
                    Some(rest)
                        if !rest.is_empty()
                            && !rest.starts_with('/')
                            && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                    {
                        Ok(trimmed.trim_end_matches('/').to_owned())
                    }
                    _ => Err(wrong()),
                }
            }
            SettingType::Whole { min, max } => {
                let n: u64 = trimmed.parse().map_err(|_| wrong())?;
                if n < *min || n > *max {
                    return Err(format!("{n} is outside {min}..={max}"));
                }
                Ok(n.to_string())
            }
            SettingType::Number { min, max } => {
                let n: f64 = trimmed.parse().map_err(|_| wrong())?;
                if !n.is_finite() || n < *min || n > *max {
                    return Err(format!("{trimmed} is outside {min}..={max}"));
                }
                Ok(n.to_string())
            }
            SettingType::Bool => match trimmed.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok("true".into()),
                "false" | "0" | "no" | "off" => Ok("false".into()),
                _ => Err(wrong()),
            },
            SettingType::List => {
                let items: Vec<&str> = trimmed.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
                if items.iter().any(|i| i.chars().any(char::is_control)) {
                    return Err("an item holds control characters".into());
                }
                Ok(items.join(","))
            }
            SettingType::Choice(words) => {
                let lower = trimmed.to_ascii_lowercase();
                words.iter().find(|w| **w == lower).map(|w| (*w).to_owned()).ok_or_else(wrong)
            }
            SettingType::ModelRef => match trimmed.split_once('/') {
                Some((provider, model))
                    if !provider.is_empty() && !model.is_empty() && !trimmed.chars().any(char::is_whitespace) =>
                {
                    Ok(trimmed.to_owned())
                }
                _ => Err(wrong()),
            },
        }
    }

    /// What a value must look like, for errors.
    pub fn expectation(&self) -> String {
        match self {
            SettingType::Text => "text".into(),
            SettingType::Url => "an http:// or https:// address".into(),
            SettingType::Whole { min, max } => format!("a whole number in {min}..={max}"),
            SettingType::Number { min, max } => format!("a number in {min}..={max}"),
            SettingType::Bool => "true or false".into(),
            SettingType::List => "a comma-separated list".into(),
            SettingType::Choice(words) => format!("one of {}", words.join(", ")),
            SettingType::ModelRef => "provider/model, e.g. openai/gpt-4o".into(),
        }
    }

    /// The accepted words of a choice, for forms.
    pub fn choices(&self) -> &'static [&'static str] {
        match self {
            SettingType::Choice(words) => words,
            _ => &[],
        }
    }
}

/// Where a setting applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingScope {
    /// The whole installation.
    Global,
    /// Each tenant may have its own value; the global one is the default.
    Tenant,
}

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// At once, on every process sharing the database.
    Live,
    /// At the next start of each process.
    Restart,
    /// Only from the file, the environment or a flag: it is read before the database opens.
    Bootstrap,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// The dotted name, as in the config file (`models.normal`).
    pub key: &'static str,
    /// The environment variable that sets it, if any.
    pub env: Option<&'static str>,
    pub kind: SettingType,
    /// The built-in default's text, when there is one.
    pub default: Option<&'static str>,
    pub scope: SettingScope,
    /// Stored encrypted; never shown, logged or exported in the clear.
    pub secret: bool,
    pub applies: Applies,
    pub doc: &'static str,
}

/// The settings of an installation, declared once.
#[derive(Debug, Clone, Copy)]
pub struct Registry(pub &'static [SettingSpec]);

impl Registry {
    pub fn get(&self, key: &str) -> Option<&'static SettingSpec> {
        self.0.iter().find(|s| s.key == key)
    }

    pub fn all(&self) -> &'static [SettingSpec] {
        self.0
    }

    /// The closest known name to a mistyped one, for "did you mean".
    pub fn closest(&self, key: &str) -> Option<&'static str> {
        closest(key, self.0.iter().map(|s| s.key))
    }
}

/// Of `known`, the name closest to `name` if it is close enough to be a likely typo (at most
/// three edits); the alphabetically first of equally close ones.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known.into_iter().map(|k| (edit_distance(name, k), k)).filter(|(d, _)| *d <= 3).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_into_canonical_text_or_a_reason() {
        assert_eq!(SettingType::Url.read(" http://127.0.0.1:9/v1/ ").as_deref(), Ok("http://127.0.0.1:9/v1"));
        assert!(SettingType::Url.read("ftp://x").is_err());
        assert!(SettingType::Url.read("http://").is_err());
        let whole = SettingType::Whole { min: 1, max: 10 };
        assert_eq!(whole.read("07").as_deref(), Ok("7"));
        assert_eq!(whole.read("11").expect_err("range"), "11 is outside 1..=10");
        assert!(whole.read("-1").is_err());
        assert_eq!(SettingType::Bool.read("Yes").as_deref(), Ok("true"));
        assert_eq!(SettingType::List.read(" a, ,b ").as_deref(), Ok("a,b"));
        assert_eq!(SettingType::Choice(&["text", "json"]).read("JSON").as_deref(), Ok("json"));
        assert!(SettingType::ModelRef.read("gpt-4o").is_err());
        assert!(SettingType::Text.read("  ").is_err());
        let number = SettingType::Number { min: 0.0, max: 1.0 };
        assert_eq!(number.read_json(&serde_json::json!(0.5)).as_deref(), Ok("0.5"));
        assert!(number.read_json(&serde_json::json!("NaN")).is_err());
        assert_eq!(SettingType::List.read_json(&serde_json::json!(["a", "b"])).as_deref(), Ok("a,b"));
        assert!(SettingType::Bool.read_json(&serde_json::json!({"x": 1})).is_err());
    }

    #[test]
    fn a_mistyped_name_suggests_the_closest() {
        const SPECS: &[SettingSpec] = &[SettingSpec {
            key: "models.normal",
            env: None,
            kind: SettingType::ModelRef,
            default: None,
            scope: SettingScope::Global,
            secret: false,
            applies: Applies::Live,
            doc: "",
        }];
        assert_eq!(Registry(SPECS).closest("models.nromal"), Some("models.normal"));
        assert_eq!(Registry(SPECS).closest("something.else"), None);
    }
}
