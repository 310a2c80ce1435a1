//! Request input that clients get wrong: [`Body<T>`] reads a JSON body and [`Query<T>`] a query
//! string, and both answer a mistake precisely — malformed JSON is a 400 with line and column,
//! a missing, unknown or mistyped field or parameter a 400 naming it (`messages[2].role`,
//! `limit`), a body over the limit a 413 — as JSON, never a plain-text rejection or a 500.
//!
//! Their rejections are native [`ApiError`]s; the compat surfaces wrap [`Body`] in extractors of
//! their own whose rejection answers in the vendor's shape (`compat::openai::Body`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(body_error)?;
        parse(&bytes).map(Body)
    }
}

/// A raw body (for routes whose body is optional), with the same errors as [`Body`].
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state).await.map(RawBody).map_err(body_error)
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than the configured limit (api.max_body_bytes)",
        );
    }
    ApiError::bad_request(format!("could not read the request body: {rejection}"))
}

/// Parses JSON, naming the failing field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty; send a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
            Ok(value)
        }
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::bad_request(format!("malformed JSON: {inner}")));
            }
            let message = strip_position(&inner.to_string());
            if path == "." || path.is_empty() {
                Err(ApiError::bad_request(format!("invalid request body: {message}")))
            } else {
                Err(ApiError::bad_request(format!("invalid field `{path}`: {message}")).with_param(path))
            }
        }
    }
}

/// Query parameters of type `T`, read with the same care as a body: `?limit=ten` is a 400 naming
/// `limit`; an unknown, repeated or missing parameter a 400 naming it. Handlers use this, never
/// axum's `Query`, whose rejection is plain text (clippy's `disallowed-types` keeps it that way).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses a query string (without the `?`), naming the failing parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        // A parameter's own value failed: the path names it. Otherwise the whole set failed
        // (unknown, repeated or missing parameter), and serde's message quotes the name.
        let param = Some(path).filter(|p| p != "." && !p.is_empty()).or_else(|| {
            ["unknown field `", "duplicate field `", "missing field `"].iter().find_map(|m| quoted(&message, m))
        });
        match param {
            Some(param) => {
                ApiError::bad_request(format!("invalid query parameter `{param}`: {message}")).with_param(param)
            }
            None => ApiError::bad_request(format!("invalid query string: {message}")),
        }
    })
}

/// The name serde quotes after `marker` (`unknown field `colour`, expected …`).
fn quoted(message: &str, marker: &str) -> Option<String> {
    let rest = message.split_once(marker)?.1;
    let name = rest.split('`').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// serde's messages end with " at line 1 column 42": useful for syntax, noise for a named field.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        task: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    #[test]
    fn names_the_failing_field_or_the_syntax_error() {
        let e = parse::<Req>(br#"{"task": "x", "items": [{"n": 1}, {"n": "two"}]}"#).expect_err("type");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("items[1].n"), "{e}");
        let e = parse::<Req>(br#"{"items": []}"#).expect_err("missing");
        assert!(e.message.contains("missing field `task`"), "{e}");
        let e = parse::<Req>(br#"{"task": "x", "#).expect_err("syntax");
        assert!(e.message.starts_with("malformed JSON"), "{e}");
        let e = parse::<Req>(b"  ").expect_err("empty");
        assert!(e.message.contains("empty"), "{e}");
        assert!(parse::<Req>(br#"{"task": "x", "items": []} trailing"#).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        q: String,
        limit: Option<u32>,
        state: Option<State>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum State {
        Active,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let ok = parse_query::<Params>("q=a%20b&limit=3&state=active").expect("valid");
        assert_eq!((ok.q.as_str(), ok.limit), ("a b", Some(3)));
        for (query, param) in [
            ("q=x&limit=ten", "limit"),
            ("q=x&limit=-1", "limit"),
            ("q=x&state=gone", "state"),
            ("q=x&colour=red", "colour"),
            ("q=x&q=y", "q"),
            ("limit=3", "q"),
        ] {
            let e = parse_query::<Params>(query).expect_err(query);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(e.param.as_deref(), Some(param), "{query}: {e}");
            assert!(e.message.contains(&format!("`{param}`")), "{query}: {e}");
        }
    }
}
