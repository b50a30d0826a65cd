//! Every way the agent answers a request itself instead of the upstream: one error type
//! the layers of both stacks return, and the one place ([`ProxyError::respond`]) that
//! turns it into a response — a status, a short plain-text reason and a `mesh-error`
//! header naming the cause, so a client (and a test) can tell the agent's answers from
//! the app's.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Response, StatusCode};

use crate::http::{Body, error_response};
use crate::metrics::{LimitLabels, Metrics};

/// Why the agent answered a request itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No config (or no endpoints) loaded yet.
    #[error("the mesh agent has no config or endpoints yet")]
    NotReady,
    /// The request names no host.
    #[error("the request names no host (absolute URI or Host header)")]
    NoAuthority,
    /// The authority is not a valid one.
    #[error("`{0}` is not a valid authority")]
    BadAuthority(String),
    /// The request target cannot be forwarded.
    #[error("cannot forward the request: {0}")]
    CannotForward(String),
    /// The client sent a malformed body.
    #[error("cannot read the request body: {0}")]
    BadRequestBody(String),
    /// The route's fault injection aborted the request with this status.
    #[error("fault injected by the route")]
    FaultInjected(StatusCode),
    /// The whole request took longer than the route's timeout.
    #[error("{service} did not answer within the route timeout of {timeout:?}")]
    Timeout {
        /// The called service.
        service: String,
        /// The route timeout.
        timeout: Duration,
    },
    /// One try took longer than the retry profile's per-try timeout.
    #[error("{service} did not answer within the per-try timeout")]
    PerTryTimeout {
        /// The called service.
        service: String,
    },
    /// The backend is not one this workload may call.
    #[error("{0} is not a service this workload may call")]
    NoRoute(String),
    /// A gateway serves no such host, or none of the host's rules matches.
    #[error("{0}")]
    NoGatewayRoute(String),
    /// The backend has no endpoints.
    #[error("{0} has no endpoints")]
    NoEndpoints(String),
    /// mTLS to the callee cannot be set up.
    #[error("cannot set up mTLS to {identity}: {error}")]
    BadIdentity {
        /// The identity the callee must present.
        identity: String,
        /// Why.
        error: String,
    },
    /// The endpoint has no agent and the mesh is strict.
    #[error("{0}")]
    NotMeshed(String),
    /// No connection to the upstream could be made.
    #[error("cannot connect to {target}: {error}")]
    Connect {
        /// What was called (`service at address`).
        target: String,
        /// Why.
        error: String,
    },
    /// The upstream connection or stream failed.
    #[error("{target} failed: {error}")]
    Reset {
        /// What was called.
        target: String,
        /// Why.
        error: String,
    },
    /// The destination is a mesh service this workload may not call, or a policy denied
    /// the request.
    #[error("{0}")]
    Denied(String),
    /// A policy that applies to the request failed to evaluate: denied (fail closed).
    #[error("{0}")]
    PolicyError(String),
    /// The destination is outside the mesh and egress is denied.
    #[error("`{0}` is not a service of the mesh and egress is denied")]
    EgressDenied(String),
    /// The request would come back to the listener that sent it.
    #[error("`{0}` is the agent's own outbound listener")]
    Loop(String),
    /// The local app refused the connection.
    #[error("cannot connect to the local app at {app}: {error}")]
    AppUnavailable {
        /// The app's address.
        app: SocketAddr,
        /// Why.
        error: String,
    },
    /// The local app's connection or stream failed.
    #[error("the local app failed: {0}")]
    AppReset(String),
    /// A rate limit of the callee had no token for the request.
    #[error("rate limit {limit} exceeded: retry after {retry_after}s")]
    RateLimited {
        /// The limit's name.
        limit: String,
        /// Whole seconds until it has a token (at least 1).
        retry_after: u64,
    },
    /// A circuit breaker of the called service refused the try: too many requests in
    /// flight or waiting, or too many connections open.
    #[error("{service} is overloaded: {limit} reached")]
    Overloaded {
        /// The called service.
        service: String,
        /// `max_requests`, `max_pending` or `max_connections`.
        limit: &'static str,
    },
    /// A bug: state that should be consistent was not.
    #[error("{0}")]
    Internal(&'static str),
}

impl ProxyError {
    /// The status and the `mesh-error` cause.
    pub fn status_and_cause(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not-ready"),
            ProxyError::NoAuthority => (StatusCode::BAD_REQUEST, "no-authority"),
            ProxyError::BadAuthority(_) => (StatusCode::BAD_REQUEST, "bad-authority"),
            ProxyError::CannotForward(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ProxyError::BadRequestBody(_) => (StatusCode::BAD_REQUEST, "bad-request-body"),
            ProxyError::FaultInjected(status) => (*status, "fault-injected"),
            ProxyError::Timeout { .. } | ProxyError::PerTryTimeout { .. } => {
                (StatusCode::GATEWAY_TIMEOUT, "timeout")
            }
            ProxyError::NoRoute(_) => (StatusCode::SERVICE_UNAVAILABLE, "no-route"),
            ProxyError::NoGatewayRoute(_) => (StatusCode::NOT_FOUND, "no-route"),
            ProxyError::NoEndpoints(_) => (StatusCode::SERVICE_UNAVAILABLE, "no-endpoints"),
            ProxyError::BadIdentity { .. } => (StatusCode::BAD_GATEWAY, "bad-identity"),
            ProxyError::NotMeshed(_) => (StatusCode::BAD_GATEWAY, "not-meshed"),
            ProxyError::Connect { .. } => (StatusCode::BAD_GATEWAY, "connect-failed"),
            ProxyError::Reset { .. } => (StatusCode::BAD_GATEWAY, "upstream-reset"),
            ProxyError::Denied(_) => (StatusCode::FORBIDDEN, "denied"),
            ProxyError::PolicyError(_) => (StatusCode::FORBIDDEN, "policy-error"),
            ProxyError::EgressDenied(_) => (StatusCode::FORBIDDEN, "egress-denied"),
            ProxyError::Loop(_) => (StatusCode::LOOP_DETECTED, "loop"),
            ProxyError::AppUnavailable { .. } => (StatusCode::BAD_GATEWAY, "app-unavailable"),
            ProxyError::AppReset(_) => (StatusCode::BAD_GATEWAY, "app-reset"),
            ProxyError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ProxyError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ProxyError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The response for this error on `listener`; a malformed body is also counted as
    /// that listener's `malformed_request` limit.
    pub fn respond(&self, metrics: &Metrics, listener: &'static str) -> Response<Body> {
        if matches!(self, ProxyError::BadRequestBody(_)) {
            metrics
                .limits
                .get_or_create(&LimitLabels {
                    listener,
                    limit: "malformed_request",
                })
                .inc();
        }
        let (status, cause) = self.status_and_cause();
        let mut response = error_response(status, cause, &self.to_string());
        if let ProxyError::RateLimited { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, (*retry_after).into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_names_its_cause_and_a_malformed_body_is_counted() {
        let metrics = Metrics::default();
        let response = ProxyError::BadRequestBody("bad chunk".into()).respond(&metrics, "inbound");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["mesh-error"], "bad-request-body");
        let counted = metrics
            .limits
            .get_or_create(&LimitLabels {
                listener: "inbound",
                limit: "malformed_request",
            })
            .get();
        assert_eq!(counted, 1);
        let fault = ProxyError::FaultInjected(StatusCode::IM_A_TEAPOT).respond(&metrics, "x");
        assert_eq!(fault.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(fault.headers()["mesh-error"], "fault-injected");
    }
}
