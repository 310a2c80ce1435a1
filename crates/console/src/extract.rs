//! Path, query and form extractors whose rejection is a console error page (400, naming what
//! was wrong, in the reader's language) rather than axum's plain-text answer. Handlers use
//! these instead of axum's (clippy's `disallowed-types` keeps it that way).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use gateway::ApiError;
use serde::de::DeserializeOwned;

use crate::pages::ConsoleError;
use crate::session::browser_lang;

fn rejected(headers: &axum::http::HeaderMap, what: &str, detail: String) -> ConsoleError {
    ConsoleError::Api(browser_lang(headers), ApiError::bad_request(format!("invalid {what}: {detail}")))
}

/// Path parameters of type `T`.
#[derive(Debug)]
pub struct Path<T>(pub T);

#[allow(clippy::disallowed_types, reason = "the console's one wrapper of axum's Path")]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(rejected(&parts.headers, "path", rejection.body_text())),
        }
    }
}

/// A query string read into `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

#[allow(clippy::disallowed_types, reason = "the console's one wrapper of axum's Query")]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(rejected(&parts.headers, "query", rejection.body_text())),
        }
    }
}

/// A URL-encoded form body read into `T`.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequest<S> for Form<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(rejection) => Err(rejected(&headers, "form", rejection.body_text())),
        }
    }
}
