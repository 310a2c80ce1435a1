//! Path and query extractors whose rejections are [`ApiError`]s: a malformed path segment
//! (`/v1/ledger/bundle/-1`) or query value (`?limit=ten`) is a 400 JSON error in the route's
//! dialect, never axum's plain-text rejection. Handlers use these instead of axum's (clippy's
//! `disallowed-types` keeps it that way).

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Dialect};

/// Path parameters of type `T`.
#[derive(Debug)]
pub struct Path<T>(pub T);

/// Query parameters of type `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

#[allow(clippy::disallowed_types, reason = "the one place axum's extractors are wrapped")]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::of_path(parts.uri.path());
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_error(&rejection).in_dialect(dialect)),
        }
    }
}

#[allow(clippy::disallowed_types, reason = "the one place axum's extractors are wrapped")]
impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::of_path(parts.uri.path());
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_error(&rejection, parts.uri.query().unwrap_or_default()).in_dialect(dialect)),
        }
    }
}

fn path_error(rejection: &PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(failed) = rejection {
        let param = match failed.kind() {
            ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
            ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
            _ => None,
        };
        let error = ApiError::bad_request(format!("invalid path: {}", failed.body_text()));
        return match param {
            Some(param) => error.with_param(param),
            None => error,
        };
    }
    // A route without the parameters its handler reads: the server's fault, not the client's.
    ApiError::internal(rejection.body_text())
}

fn query_error(rejection: &QueryRejection, query: &str) -> ApiError {
    let text = rejection.body_text();
    // serde_urlencoded names the field first: "Failed to deserialize query string: limit: …";
    // an unknown parameter is "unknown field `x`", and an unknown enum value "unknown variant
    // `v`", which names the parameter that carries `v`.
    let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    let quoted = |marker: &str| detail.split(marker).nth(1).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    let carrying = |value: String| {
        query.split('&').filter_map(|pair| pair.split_once('=')).find(|(_, v)| *v == value).map(|(k, _)| k.to_owned())
    };
    let param = detail
        .split_once(": ")
        .map(|(field, _)| field.to_owned())
        .filter(|field| !field.is_empty() && field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .or_else(|| quoted("unknown field `"))
        .or_else(|| quoted("unknown variant `").and_then(carrying));
    let error = ApiError::bad_request(format!("invalid query string: {detail}"));
    match param {
        Some(param) => error.with_param(param),
        None => error,
    }
}
