//! `/v1/keys`: admin keys create (the secret once), list (no secrets or hashes) and revoke the
//! keys of their own tenant; members get 403, another tenant's key 404, bad input a JSON error
//! naming the field. The OpenAPI document describes the routes as they behave.

use domain::TenantId;
use domain::tenant::{Role, UserLevel};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{App, Options, spawn_app};

async fn admin(app: &App, tenant: &str, level: u8) -> (String, String) {
    let tenant = TenantId::parse(tenant).expect("tenant");
    let level = UserLevel::new(level).expect("level");
    let created = app.runtime.create_api_key(&tenant, "root", level, Role::Admin).await.expect("admin key");
    (created.secret, created.key.id.to_string())
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn admins_create_list_and_revoke_their_tenants_keys() {
    let app = spawn_app(Options::default()).await;
    let (root, root_id) = admin(&app, "acme", 3).await;

    let (status, created) =
        send(app.post("/v1/keys", &root).json(&json!({"name": "  ci bot  ", "role": "admin", "level": 2}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("nxs_"));
    let key = &created["key"];
    assert_eq!(
        (key["name"].as_str(), key["role"].as_str(), key["level"].as_u64()),
        (Some("ci bot"), Some("admin"), Some(2))
    );
    assert_eq!((key["active"].as_bool(), key["revoked_at"].is_null()), (Some(true), true));
    assert!(secret.starts_with(key["prefix"].as_str().expect("prefix")));
    let id = key["id"].as_str().expect("id").to_owned();
    let (status, me) = send(app.get("/v1/whoami", &secret)).await;
    assert_eq!((status, me["role"].as_str()), (StatusCode::OK, Some("admin")), "the new key works");
    let (_, member) = send(app.post("/v1/keys", &root).json(&json!({"name": "app"}))).await;
    assert_eq!(
        (member["key"]["role"].as_str(), member["key"]["level"].as_u64()),
        (Some("member"), Some(0)),
        "defaults"
    );

    let (status, listed) = send(app.get("/v1/keys", &root)).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().expect("list").clone();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let text = serde_json::to_string(&listed).expect("json");
    assert!(!text.contains(&secret) && !text.contains("hash") && !text.contains("secret"), "{text}");

    let (status, revoked) = send(app.client.delete(app.url(&format!("/v1/keys/{id}"))).bearer_auth(&root)).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!((revoked["active"].as_bool(), revoked["revoked_at"].is_string()), (Some(false), true));
    assert_eq!(app.get("/v1/whoami", &secret).send().await.expect("send").status(), StatusCode::UNAUTHORIZED);
    let (status, again) = send(app.client.delete(app.url(&format!("/v1/keys/{id}"))).bearer_auth(&root)).await;
    assert_eq!((status, again["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_revoked")));
    let (_, active) = send(app.get("/v1/keys?state=active", &root)).await;
    assert_eq!(active.as_array().map(Vec::len), Some(2));
    let (_, gone) = send(app.get("/v1/keys?state=revoked", &root)).await;
    assert_eq!(gone[0]["id"].as_str(), Some(id.as_str()));

    // Revoking the key one calls with is allowed (rotation): this answer is its last.
    let (status, _) = send(app.client.delete(app.url(&format!("/v1/keys/{root_id}"))).bearer_auth(&root)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get("/v1/keys", &root).send().await.expect("send").status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn members_other_tenants_and_bad_input_are_refused_with_json_errors() {
    let app = spawn_app(Options::default()).await;
    let (root, _) = admin(&app, "acme", 1).await;
    let (other_root, other_id) = admin(&app, "globex", 5).await;
    let member = app.key("acme", Role::Member).await;

    for request in [
        app.post("/v1/keys", &member).json(&json!({"name": "x"})),
        app.get("/v1/keys", &member),
        app.client.delete(app.url(&format!("/v1/keys/{other_id}"))).bearer_auth(&member),
    ] {
        let (status, body) = send(request).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    }
    // Another tenant's key, and ids that cannot be keys, are simply not found.
    for path in [format!("/v1/keys/{other_id}"), "/v1/keys/no%20such%20key".to_owned(), "/v1/keys/%E2%9C%93".to_owned()]
    {
        let (status, body) = send(app.client.delete(app.url(&path)).bearer_auth(&root)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}: {body}"
        );
    }
    let (_, theirs) = send(app.get("/v1/keys", &other_root)).await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(1), "globex still has its key");

    let cases = [
        (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (json!({"name": "a\u{7}b"}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (json!({"name": "x".repeat(101)}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (json!({"name": "x", "level": 9}), StatusCode::UNPROCESSABLE_ENTITY, "level"),
        (json!({"name": "x", "level": 2}), StatusCode::FORBIDDEN, "level"),
        (json!({"name": "x", "level": -1}), StatusCode::BAD_REQUEST, "level"),
        (json!({"name": "x", "role": "owner"}), StatusCode::BAD_REQUEST, "role"),
        (json!({"name": 5}), StatusCode::BAD_REQUEST, "name"),
        (json!({"role": "admin"}), StatusCode::BAD_REQUEST, "name"),
        (json!({"name": "x", "expires": "never"}), StatusCode::BAD_REQUEST, "expires"),
    ];
    for (body, expected, field) in cases {
        let (status, error) = send(app.post("/v1/keys", &root).json(&body)).await;
        assert_eq!(status, expected, "{body}: {error}");
        let named = error["error"]["field"].as_str().unwrap_or("");
        let message = error["error"]["message"].as_str().unwrap_or("");
        assert!(named == field || message.contains(field), "{body}: {error}");
    }
    let (status, error) = send(app.get("/v1/keys?state=lost", &root)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("state")), "{error}");
    let (status, error) = send(app.get("/v1/keys?limit=3", &root)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{error}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_key_routes() {
    let app = spawn_app(Options::default()).await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.expect("send").json().await.expect("json");
    let paths = &doc["paths"];
    let revoke = &paths["/v1/keys/{id}"]["delete"];
    assert_eq!(revoke["parameters"][0]["name"], "id");
    assert_eq!(revoke["parameters"][0]["in"], "path");
    assert_eq!(revoke["parameters"][0]["required"], true);
    let list = &paths["/v1/keys"]["get"];
    assert_eq!(list["parameters"][0]["name"], "state");
    assert_eq!(list["parameters"][0]["in"], "query");
    assert_ne!(list["parameters"][0]["required"], true);
    let create = &paths["/v1/keys"]["post"];
    assert!(create["responses"]["201"].is_object(), "{create}");
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["CreateKeyRequest"];
    assert_eq!(request["required"], json!(["name"]), "{request}");
    assert_eq!(request["additionalProperties"], false, "unknown fields are refused: {request}");
    assert_eq!(schemas["KeyRole"]["enum"], json!(["member", "admin"]), "{}", schemas["KeyRole"]);
    assert_eq!(request["properties"]["level"]["maximum"], 5, "{request}");
    let created = &schemas["CreatedKeyResponse"];
    assert_eq!(created["required"], json!(["secret", "key"]), "{created}");
    let state = &list["parameters"][0]["schema"];
    assert_eq!(state["enum"], json!(["active", "revoked"]), "{state}");
    // Every schema these routes name is in the document.
    let text = format!("{}{}{request}{created}{}", paths["/v1/keys"], paths["/v1/keys/{id}"], schemas["KeyResponse"]);
    for reference in text.split("#/components/schemas/").skip(1) {
        let name: String = reference.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(schemas[&name].is_object(), "{name} is referenced but not defined");
    }
}
