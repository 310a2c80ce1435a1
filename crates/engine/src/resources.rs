//! Resources derived from a call's actual arguments — never from what the model says it will
//! touch — and canonicalised, so `/workspace/../etc/passwd` is judged as `/etc/passwd`.

use domain::tool::{ResourceKind, ToolDefinition};
use serde_json::Value;

/// The root relative paths are resolved against in resource names.
pub const WORKSPACE_ROOT: &str = "/workspace";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("tool {tool}: missing parameter {param:?}")]
    Missing { tool: String, param: String },
    #[error("tool {tool}: parameter {param:?} must be {expected}")]
    WrongType { tool: String, param: String, expected: &'static str },
    #[error("tool {tool}: parameter {param:?}: {reason}")]
    Invalid { tool: String, param: String, reason: String },
}

/// Every resource the call would touch, e.g. `file:read:/workspace/notes.txt`.
pub fn derive(tool: &ToolDefinition, args: &Value) -> Result<Vec<String>, ResourceError> {
    let mut out = Vec::new();
    for arg in &tool.resource_args {
        let missing = || ResourceError::Missing { tool: tool.name.clone(), param: arg.param.clone() };
        let wrong = |expected| ResourceError::WrongType { tool: tool.name.clone(), param: arg.param.clone(), expected };
        let invalid =
            |reason: String| ResourceError::Invalid { tool: tool.name.clone(), param: arg.param.clone(), reason };
        let value = args.get(&arg.param).filter(|v| !v.is_null());
        let values: Vec<String> = match (value, &arg.default) {
            (None, Some(default)) => vec![default.clone()],
            (None, None) if arg.optional => continue,
            (None, None) => return Err(missing()),
            (Some(Value::String(s)), _) => vec![s.clone()],
            (Some(Value::Array(items)), _) if arg.kind == ResourceKind::Email => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| wrong("a string or a list of strings")))
                .collect::<Result<_, _>>()?,
            (Some(_), _) if arg.kind == ResourceKind::Data => vec![String::new()],
            (Some(_), _) => return Err(wrong("a string")),
        };
        for value in values {
            let resource = match arg.kind {
                ResourceKind::FileRead => format!("file:read:{}", canonical_path(&value).map_err(invalid)?),
                ResourceKind::FileWrite => format!("file:write:{}", canonical_path(&value).map_err(invalid)?),
                ResourceKind::Url => format!("web:{}", url_resource(&value).map_err(invalid)?),
                ResourceKind::Email => format!("email:{}", email(&value).map_err(invalid)?),
                ResourceKind::KnowledgeNamespace => format!("kb:{}", value.trim()),
                ResourceKind::WebSearch => "web:search".to_owned(),
                ResourceKind::Data => format!("data:{}", arg.param),
            };
            out.push(resource);
        }
    }
    Ok(out)
}

/// Lexically normalises a path against the workspace root: `.` and empty segments dropped,
/// `..` pops (never above `/`). Relative paths are taken inside the workspace.
pub fn canonical_path(path: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err("path contains a NUL byte".to_owned());
    }
    if path.trim().is_empty() {
        return Err("path is empty".to_owned());
    }
    let full = if path.starts_with('/') { path.to_owned() } else { format!("{WORKSPACE_ROOT}/{path}") };
    let mut parts: Vec<&str> = Vec::new();
    for segment in full.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn url_resource(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not allowed; use http or https", url.scheme()));
    }
    // Host (and a non-default port) only: a glob's `*` would otherwise let a path such as
    // `evil.com/a.example.com` match a scope meant for a host.
    let host = url.host_str().ok_or("URL has no host")?.to_ascii_lowercase();
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn email(text: &str) -> Result<String, String> {
    let address = text.trim().to_ascii_lowercase();
    let valid = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !address.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if valid { Ok(address) } else { Err(format!("{text:?} is not an email address")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::persona::RiskLevel;
    use domain::tool::ResourceArg;
    use serde_json::json;

    fn tool(kind: ResourceKind, param: &str, default: Option<&str>) -> ToolDefinition {
        ToolDefinition {
            name: "t".into(),
            description: String::new(),
            parameters: json!({}),
            risk_level: RiskLevel::Low,
            resource_pattern: "*".into(),
            resource_args: vec![ResourceArg {
                param: param.into(),
                kind,
                default: default.map(str::to_owned),
                optional: false,
            }],
            timeout_seconds: 30,
            requires_approval: false,
            state_changing: false,
            untrusted_output: false,
        }
    }

    #[test]
    fn paths_are_canonicalised_before_judging() {
        let read = tool(ResourceKind::FileRead, "path", None);
        let cases = [
            ("notes.txt", "file:read:/workspace/notes.txt"),
            ("./a//b/../c.txt", "file:read:/workspace/a/c.txt"),
            ("/workspace/../etc/passwd", "file:read:/etc/passwd"),
            ("../../../../etc/shadow", "file:read:/etc/shadow"),
            ("/../..", "file:read:/"),
        ];
        for (path, expected) in cases {
            assert_eq!(derive(&read, &json!({"path": path})), Ok(vec![expected.to_owned()]), "{path}");
        }
        assert!(crate::glob::in_scope(&["file:read:/workspace/*".into()], "file:read:/workspace/a/c.txt"));
        assert!(!crate::glob::in_scope(&["file:read:/workspace/*".into()], "file:read:/etc/passwd"));
        assert!(matches!(derive(&read, &json!({"path": "a\u{0}b"})), Err(ResourceError::Invalid { .. })));
        assert!(matches!(derive(&read, &json!({})), Err(ResourceError::Missing { .. })));
        assert!(matches!(derive(&read, &json!({"path": 7})), Err(ResourceError::WrongType { .. })));
    }

    #[test]
    fn urls_emails_and_namespaces_become_scoped_resources() {
        let fetch = tool(ResourceKind::Url, "url", None);
        assert_eq!(derive(&fetch, &json!({"url": "https://Docs.RS/serde"})), Ok(vec!["web:docs.rs".to_owned()]));
        assert_eq!(derive(&fetch, &json!({"url": "http://docs.rs:8080/x"})), Ok(vec!["web:docs.rs:8080".to_owned()]));
        let tricky = derive(&fetch, &json!({"url": "https://evil.com/a.example.com"})).expect("derives");
        assert!(!crate::glob::in_scope(&["web:*.example.com".into()], &tricky[0]), "paths never satisfy host scopes");
        assert!(derive(&fetch, &json!({"url": "file:///etc/passwd"})).is_err());
        assert!(derive(&fetch, &json!({"url": "not a url"})).is_err());

        let mail = tool(ResourceKind::Email, "to", None);
        assert_eq!(
            derive(&mail, &json!({"to": ["A@x.org", "b@y.com"]})),
            Ok(vec!["email:a@x.org".to_owned(), "email:b@y.com".to_owned()])
        );
        assert!(derive(&mail, &json!({"to": "nobody"})).is_err());

        let kb = tool(ResourceKind::KnowledgeNamespace, "namespace", Some("default"));
        assert_eq!(derive(&kb, &json!({"query": "x"})), Ok(vec!["kb:default".to_owned()]));
        assert_eq!(derive(&kb, &json!({"namespace": "docs"})), Ok(vec!["kb:docs".to_owned()]));
    }
}
