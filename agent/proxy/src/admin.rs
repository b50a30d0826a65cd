//! The admin listener: `/live` (the process answers), `/ready` (a config and endpoints are
//! loaded, and the identity when one is configured), `/metrics` (Prometheus text), `/config` (the active config, its hash and
//! load time, as JSON), `/tap` (a live stream of the requests passing the agent, as JSON
//! lines: [`crate::tap`]) and, for a gateway, `/gateway` (its listeners and where each is
//! bound, as JSON).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::http::{Body, error_response, full};
use crate::state::Shared;

/// Answers one admin request.
pub fn handle(shared: &Arc<Shared>, request: &Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/live" => text(StatusCode::OK, "live\n".into(), "text/plain; charset=utf-8"),
        "/ready" => match shared.ready() {
            Ok(()) => text(
                StatusCode::OK,
                "ready\n".into(),
                "text/plain; charset=utf-8",
            ),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                "text/plain; charset=utf-8",
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            shared.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/config" => match shared.snapshot() {
            Some(snapshot) => {
                let loaded = &snapshot.config;
                let body = serde_json::json!({
                    "hash": loaded.hash,
                    "loaded_at": loaded
                        .loaded_at
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default(),
                    "config": loaded.config.source(),
                });
                text(
                    StatusCode::OK,
                    serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
                    "application/json",
                )
            }
            None => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "no config loaded",
            ),
        },
        "/tap" => shared.tap.subscribe(request.uri().query()),
        "/gateway" => match shared.gateway.get() {
            Some(info) => text(
                StatusCode::OK,
                serde_json::to_string_pretty(info).unwrap_or_default() + "\n",
                "application/json",
            ),
            None => error_response(
                StatusCode::NOT_FOUND,
                "not-a-gateway",
                "this agent runs no gateway (`--gateway NAME`)",
            ),
        },
        _ => error_response(
            StatusCode::NOT_FOUND,
            "not-found",
            "admin endpoints: /live /ready /metrics /config /tap /gateway",
        ),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
