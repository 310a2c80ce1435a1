//! The path extractor whose rejection is an [`ApiError`]: a malformed path segment
//! (`/v1/ledger/bundle/-1`) is a 400 JSON error naming the parameter, never axum's plain-text
//! rejection. Handlers use this instead of axum's (clippy's `disallowed-types` keeps it that
//! way); query strings are read by [`crate::json::Query`].

use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Path parameters of type `T`.
#[derive(Debug)]
pub struct Path<T>(pub T);

#[allow(clippy::disallowed_types, reason = "the one place axum's Path is wrapped")]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_error(&rejection)),
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
