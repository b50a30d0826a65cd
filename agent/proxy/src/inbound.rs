//! The inbound side: requests from other workloads' agents, forwarded to the local app.
//! Identity (mTLS) and authorization slot in here as steps before forwarding, so that no
//! request reaches the app before its decision.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use mesh_config::schema::Protocol;

use crate::client::{Clients, SendError};
use crate::http::{Body, boxed, error_response, strip_hop_by_hop};
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
    pub async fn handle(&self, mut request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let Some(snapshot) = self.shared.snapshot() else {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "the mesh agent has no config yet",
            );
        };
        let workload = &snapshot.config.config.source().workload;
        let http2 = workload
            .ports
            .first()
            .is_some_and(|p| matches!(p.protocol, Protocol::Http2 | Protocol::Grpc));
        let upgrade = upgrade::take(&mut request);
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let response = match Uri::try_from(format!("http://{}{path}", self.app)) {
            Err(_) => error_response(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "invalid request target",
            ),
            Ok(uri) => {
                parts.uri = uri;
                let request = Request::from_parts(parts, boxed(body));
                match self.clients.forward(request, http2, upgrade).await {
                    Ok(response) => response,
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
        let metrics = &self.shared.metrics;
        metrics
            .requests
            .get_or_create(&RequestLabels {
                direction: "inbound",
                service: workload.service.clone(),
                subset: String::new(),
                rule: String::new(),
                status: response.status().as_u16(),
            })
            .inc();
        metrics
            .latency
            .get_or_create(&DirectionLabels {
                direction: "inbound",
            })
            .observe(started.elapsed().as_secs_f64());
        response
    }
}
