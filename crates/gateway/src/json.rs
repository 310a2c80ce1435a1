//! Request bodies: [`Body<T>`] reads JSON and answers a client's mistake precisely — malformed
//! JSON is a 400 with line and column, a missing or mistyped field a 400 naming the field's
//! path (`messages[2].role`), a body over the limit a 413 — in the dialect of the route.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Dialect};

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::of_path(request.uri().path());
        let bytes = Bytes::from_request(request, state).await.map_err(|e| body_error(e).in_dialect(dialect))?;
        parse(&bytes).map(Body).map_err(|e| e.in_dialect(dialect))
    }
}

/// A raw body (for routes whose body is optional), with the same errors as [`Body`].
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::of_path(request.uri().path());
        Bytes::from_request(request, state).await.map(RawBody).map_err(|e| body_error(e).in_dialect(dialect))
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
}
