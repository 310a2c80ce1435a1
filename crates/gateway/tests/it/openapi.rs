//! The OpenAPI document is true: it validates as OpenAPI 3.1 (`openapi-spec-validator`), every
//! parameter sits where its route takes it, and a property-based run generated from it
//! (`schemathesis`, against a real server with an admin key and fake upstream providers) finds
//! no 5xx and no response that contradicts the document. Both Python packages are installed
//! from the package index like the official SDKs ([`pip_install`]); outside CI a machine
//! without them skips with a notice.

use std::collections::BTreeSet;

use domain::tenant::Role;
use serde_json::Value;

use crate::python_clients::pip_install;
use crate::support::{LetterEmbedder, Options, mount_defaults, spawn_app};

const VALIDATOR: &[&str] = &["openapi-spec-validator==0.9.0"];
const SCHEMATHESIS: &[&str] = &["schemathesis==4.32.5"];

async fn served_document() -> Value {
    let app = spawn_app(Options::default()).await;
    app.client.get(app.url("/openapi.json")).send().await.expect("send").json().await.expect("JSON")
}

#[tokio::test]
async fn every_parameter_is_where_its_route_takes_it() {
    let spec = served_document().await;
    let paths = spec["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let template: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        for (method, operation) in item.as_object().expect("path item") {
            let params = operation["parameters"].as_array().cloned().unwrap_or_default();
            let mut in_path = BTreeSet::new();
            for param in &params {
                let name = param["name"].as_str().expect("name");
                match param["in"].as_str() {
                    Some("path") => {
                        assert!(template.contains(name), "{method} {path}: {name} is not in the path");
                        assert_eq!(param["required"], true, "{method} {path}: path parameter {name}");
                        in_path.insert(name);
                    }
                    Some("query" | "header") => {
                        assert!(!template.contains(name), "{method} {path}: {name} is in the path");
                    }
                    other => panic!("{method} {path}: {name} is in {other:?}"),
                }
            }
            assert_eq!(in_path, template, "{method} {path}: every path segment is described");
        }
    }
    let query = |path: &str, name: &str| -> Value {
        spec["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
    };
    assert_eq!(query("/v1/knowledge/query", "q")["required"], true);
    assert_eq!(query("/v1/ledger/proof/inclusion", "index")["required"], true);
    assert_eq!(query("/v1/ledger/proof/consistency", "old")["required"], true);
    assert_eq!(query("/v1/ledger", "limit")["schema"]["maximum"], 500);
    assert!(query("/v1/ledger", "kind")["schema"].to_string().contains("model_call"));
    assert!(query("/v1/approvals", "status")["schema"].to_string().contains("expired"));
    // The documented status values are exactly the domain's spellings.
    let chain_statuses: BTreeSet<&str> = domain::agent::ChainStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(enum_values(&query("/v1/chains", "status")["schema"]), chain_statuses);
    let approval_statuses: BTreeSet<&str> = domain::agent::ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(enum_values(&query("/v1/approvals", "status")["schema"]), approval_statuses);
    // Message content is a string or a list of parts, never an untyped object.
    let schemas = &spec["components"]["schemas"];
    let content = schemas["ChatMessage"]["properties"]["content"].to_string();
    assert!(content.contains("ContentSchema"), "{content}");
    assert!(schemas["ContentSchema"]["oneOf"].is_array(), "{}", schemas["ContentSchema"]);
    assert!(schemas["InputMessage"]["properties"]["role"].to_string().contains("assistant"));
    // The ledger acknowledgement a gateway caller may ask for, by its header.
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let params = spec["paths"][path]["post"]["parameters"].as_array().cloned().unwrap_or_default();
        let ack = params.iter().find(|p| p["name"] == "x-nexus-ledger-ack").expect("the x-nexus-ledger-ack header");
        assert_eq!(ack["in"], "header", "{path}");
        // The header's schema, inline or behind a reference into the components.
        let reference = ack["schema"].to_string();
        let schema = match reference.split("#/components/schemas/").nth(1) {
            Some(rest) => &schemas[rest.split('"').next().unwrap_or_default()],
            None => &ack["schema"],
        };
        assert_eq!(enum_values(schema), BTreeSet::from(["durable", "queued"]), "{path}: {ack}");
    }
}

/// Every string listed in an `enum` anywhere inside a schema.
fn enum_values(schema: &Value) -> BTreeSet<&str> {
    match schema {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("enum", Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
                _ => enum_values(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(enum_values).collect(),
        _ => BTreeSet::new(),
    }
}

#[tokio::test]
async fn the_served_document_validates_as_openapi_3_1() {
    let Some(site) = pip_install(VALIDATOR).await else { return };
    let spec = served_document().await;
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", spec["openapi"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, spec.to_string()).expect("write");
    let script = "import json, sys\n\
                  from openapi_spec_validator import OpenAPIV31SpecValidator, validate\n\
                  validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
                  print('valid')\n";
    let output = tokio::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .env("PYTHONPATH", &site)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the document is not valid OpenAPI 3.1:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Examples per operation: enough to reach every parameter's edges (schemathesis's coverage
/// phase adds its boundary cases on top), few enough to finish in about two minutes on two cores.
const MAX_EXAMPLES: &str = "100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_based_run_from_the_document_finds_no_server_error_or_schema_violation() {
    let Some(site) = pip_install(SCHEMATHESIS).await else { return };
    let app =
        spawn_app(Options { embedder: Some(std::sync::Arc::new(LetterEmbedder)), metrics: true, ..Options::default() })
            .await;
    mount_defaults(&app.openai, &app.anthropic).await;
    // The demo tenant has the default personas, so generated runs really run.
    let key = app.key("demo", Role::Admin).await;
    let reports = tempfile::tempdir().expect("tempdir");
    let script =
        "import sys\nfrom schemathesis.cli import schemathesis\nsys.argv[0] = 'st'\nsys.exit(schemathesis())\n";
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, "--no-color", "run"])
        .arg(app.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // An endless live stream with many filter parameters: every generated request would
        // wait out the request timeout. `logs::admins_read_and_follow_the_server_s_log_lines`
        // covers it; `/v1/logs`, with the same filter, is fuzzed here.
        .args(["--exclude-path", "/v1/logs/stream"])
        // One worker: Python 3.11's parser is not thread-safe under hypothesis's lambda
        // introspection ("AST constructor recursion depth mismatch"), a flake of the tool.
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "20261202", "--workers", "1"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .arg("--report-dir")
        .arg(reports.path())
        .env("PYTHONPATH", &site)
        .env("NO_PROXY", "*")
        .current_dir(reports.path())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(output.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}");
}
