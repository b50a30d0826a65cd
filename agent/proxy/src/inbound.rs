//! The inbound side: requests from other workloads' agents. The caller's identity comes
//! from the connection's mTLS handshake (none for plaintext under permissive mTLS); each
//! request is authorized with the workload's Cedar policies through `mesh-config` and only
//! then forwarded to the local app. A deny is a 403 naming the decision; in audit mode it is
//! logged and counted and the request goes through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use mesh_config::Verdict;
use mesh_config::schema::Protocol;

use crate::caller::Caller;
use crate::client::{Clients, SendError};
use crate::client_body::{ClientBody, bad_request_body};
use crate::http::{Body, View, authority, boxed, error_response, strip_hop_by_hop};
use crate::metrics::{DirectionLabels, RequestLabels};
use crate::state::Shared;
use crate::upgrade;

/// The inbound request handler.
#[derive(Clone)]
pub struct Inbound {
    shared: Arc<Shared>,
    clients: Clients,
    app: SocketAddr,
}

impl Inbound {
    /// A handler forwarding to the app at `app`.
    pub fn new(shared: Arc<Shared>, clients: Clients, app: SocketAddr) -> Inbound {
        Inbound {
            shared,
            clients,
            app,
        }
    }

    /// Handles one request for this workload.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        caller: Arc<Caller>,
    ) -> Response<Body> {
        let started = Instant::now();
        let Some(snapshot) = self.shared.snapshot() else {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "the mesh agent has no config yet",
            );
        };
        let config = &snapshot.config.config;
        let workload = &config.source().workload;
        if let Some(denied) = self.authorize(config, &request, &caller) {
            self.record(&workload.service, denied.status(), started);
            return denied;
        }
        let http2 = workload
            .ports
            .first()
            .is_some_and(|p| matches!(p.protocol, Protocol::Http2 | Protocol::Grpc));
        let upgrade = upgrade::take(&mut request);
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        forwarded_client_cert(&mut parts.headers, &workload.identity, &caller);
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let response = match Uri::try_from(format!("http://{}{path}", self.app)) {
            Err(_) => error_response(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "invalid request target",
            ),
            Ok(uri) => {
                parts.uri = uri;
                let (body, body_failed) = ClientBody::new(body);
                let request = Request::from_parts(parts, boxed(body));
                match self.clients.forward(request, http2, upgrade).await {
                    Ok(response) => response,
                    Err(SendError::Reset(e)) if body_failed.get() => {
                        bad_request_body(&self.shared.metrics, "inbound", &e.to_string())
                    }
                    Err(SendError::Connect(e)) => error_response(
                        StatusCode::BAD_GATEWAY,
                        "app-unavailable",
                        &format!("cannot connect to the local app at {}: {e}", self.app),
                    ),
                    Err(SendError::Reset(e)) => error_response(
                        StatusCode::BAD_GATEWAY,
                        "app-reset",
                        &format!("the local app failed: {e}"),
                    ),
                }
            }
        };
        self.record(&workload.service, response.status(), started);
        response
    }

    /// Decides whether `request` from `peer` may reach the app: `Some` holds the 403.
    fn authorize(
        &self,
        config: &mesh_config::Config,
        request: &Request<Incoming>,
        caller: &Caller,
    ) -> Option<Response<Body>> {
        let original_dst = caller.original_dst();
        let caller = caller.peer(&config.source().mesh.trust_domain);
        // The port the caller connected to when captured, else the workload's HTTP port.
        let port = original_dst.map_or_else(
            || {
                config
                    .source()
                    .workload
                    .ports
                    .iter()
                    .find(|p| p.protocol != mesh_config::schema::Protocol::Tcp)
                    .map_or(0, |p| p.number)
            },
            |dst| dst.port(),
        );
        let view = View::new(request, authority(request).unwrap_or(""), port);
        let decision = config.authorize(&view, &caller);
        self.shared.metrics.authz(&decision);
        let who = caller.identity.as_deref().unwrap_or("anonymous");
        match (decision.decision, decision.enforced) {
            (Verdict::Allow, _) => None,
            (Verdict::Deny, false) => {
                tracing::warn!(peer = who, method = %request.method(), path = request.uri().path(), reason = %decision.reason(), errors = ?decision.errors, "audit: request would be denied");
                None
            }
            (Verdict::Deny, true) if decision.policy_error => {
                tracing::warn!(peer = who, method = %request.method(), path = request.uri().path(), reason = %decision.reason(), errors = ?decision.errors, "request denied: a policy failed to evaluate");
                Some(error_response(
                    StatusCode::FORBIDDEN,
                    "policy-error",
                    &decision.reason(),
                ))
            }
            (Verdict::Deny, true) => {
                tracing::info!(peer = who, method = %request.method(), path = request.uri().path(), reason = %decision.reason(), "request denied");
                Some(error_response(
                    StatusCode::FORBIDDEN,
                    "denied",
                    &decision.reason(),
                ))
            }
        }
    }

    fn record(&self, service: &str, status: StatusCode, started: Instant) {
        let metrics = &self.shared.metrics;
        metrics
            .requests
            .get_or_create(&RequestLabels {
                direction: "inbound",
                service: service.to_string(),
                subset: String::new(),
                rule: String::new(),
                status: status.as_u16(),
            })
            .inc();
        metrics
            .latency
            .get_or_create(&DirectionLabels {
                direction: "inbound",
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Tells the app who called, as Envoy and Istio do: `x-forwarded-client-cert:
/// By=<this workload's id>;URI=<the caller's verified id>`. Whatever the caller sent under
/// that name is dropped first, so an app can trust the header; plaintext callers get none.
fn forwarded_client_cert(headers: &mut http::HeaderMap, own_identity: &str, caller: &Caller) {
    headers.remove(XFCC);
    if let Some(value) = caller.forwarded_client_cert(own_identity) {
        headers.insert(XFCC, value);
    }
}

const XFCC: &str = "x-forwarded-client-cert";
