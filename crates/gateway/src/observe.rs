//! Request metrics (count and latency by route, method and status), Nexus's own share of a
//! gateway call (`x-nexus-overhead-us`), and `GET /metrics`.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// How long a governed call waited for its upstream; put on the response by the handler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamWait(pub Duration);

/// The outermost layer. For a governed gateway call (a response carrying [`UpstreamWait`]) it
/// sets `x-nexus-overhead-us` and the `nexus_gateway_overhead_seconds` histogram to Nexus's
/// whole share of the request: from its arrival here to the response ready to send (a blocking
/// answer's body fully built, after the ledger and cost bookkeeping; a stream's headers, the
/// first bytes sent), minus the time spent waiting for the upstream.
pub(crate) async fn overhead(request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let mut response = next.run(request).await;
    if let Some(UpstreamWait(upstream)) = response.extensions().get::<UpstreamWait>().copied() {
        let overhead = arrived.elapsed().saturating_sub(upstream);
        metrics::histogram!("nexus_gateway_overhead_seconds").record(overhead.as_secs_f64());
        if let Ok(value) = HeaderValue::from_str(&overhead.as_micros().to_string()) {
            response.headers_mut().insert("x-nexus-overhead-us", value);
        }
    }
    response
}

pub(crate) async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("nexus_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("nexus_http_request_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "text/plain", description = "Prometheus text exposition"), (status = 503, description = "metrics are not enabled in this process")))]
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    metrics::gauge!("nexus_ledger_queue_depth").set(state.runtime.ledger().queue_depth() as f64);
    match &state.metrics {
        Some(render) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response(),
        None => crate::error::ApiError::unavailable("metrics are not enabled in this process").into_response(),
    }
}
