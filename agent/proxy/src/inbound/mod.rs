//! The inbound side: requests from other workloads' agents, as a stack of tower layers:
//!
//! ```text
//! (TLS accept → caller, per connection: crate::accept, crate::caller)
//! observe → authorize → rate_limit → forwarded client cert → app
//! ```
//!
//! The caller's identity comes from the connection's mTLS handshake (none for plaintext
//! under permissive mTLS); each request is authorized with the workload's Cedar policies
//! through `mesh-config`, counted against the workload's rate limits, and only then
//! forwarded to the local app.

pub mod app;
pub mod authorize;
pub mod buckets;
pub mod forwarded;
pub mod rate_limit;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tower::ServiceExt;

use crate::caller::Caller;
use crate::client::Clients;
use crate::error::ProxyError;
use crate::http::{Body, boxed};
use crate::metrics::{Metrics, RequestLabels};
use crate::observe::{Labelled, Observe};
use crate::state::{Shared, Snapshot, Snapshots};
use crate::trace::span::Kind;
use crate::trace::{HopOf, Tracer};

use self::app::App;
use self::authorize::Authorize;
use self::forwarded::ForwardedClientCert;
use self::rate_limit::RateLimit;

/// A request for this workload, with who sent it and the snapshot it is handled on.
pub struct Arrived {
    /// The active snapshot when it arrived.
    pub snapshot: Arc<Snapshot>,
    /// The connection's caller.
    pub caller: Arc<Caller>,
    /// The request.
    pub request: Request<Body>,
}

impl Labelled for Arrived {
    fn labels(&self) -> RequestLabels {
        self.snapshot.inbound_labels.clone()
    }
}

/// The inbound stack.
#[derive(Clone)]
pub struct Inbound {
    access_log: Arc<crate::access_log::Writer>,
    snapshots: Snapshots,
    stack: Observe<Authorize<RateLimit<ForwardedClientCert<App>>>>,
    metrics: Arc<Metrics>,
    tracer: Arc<Tracer>,
}

impl Inbound {
    /// The stack over the agent's state, forwarding to the app at `app`.
    pub fn new(shared: &Shared, clients: Clients, app: SocketAddr) -> Inbound {
        let metrics = Arc::clone(&shared.metrics);
        let app = App::new(clients, app);
        let limited = RateLimit::new(
            ForwardedClientCert::new(app),
            Arc::clone(&shared.rate_limits),
        );
        let authorize = Authorize::new(limited, Arc::clone(&metrics));
        Inbound {
            access_log: Arc::clone(&shared.access_log),
            snapshots: shared.snapshots(),
            stack: Observe::new(authorize, metrics.requests.clone(), metrics.latency.clone()),
            metrics,
            tracer: Arc::clone(&shared.tracer),
        }
    }

    /// Handles one request for this workload from `caller`.
    pub async fn handle(&self, request: Request<Incoming>, caller: Arc<Caller>) -> Response<Body> {
        let Some(snapshot) = self.snapshots.borrow().clone() else {
            return ProxyError::NotReady.respond(&self.metrics, "inbound");
        };
        let sinks = self.access_log.sinks(Some(&snapshot));
        let (remote, peer) = (caller.remote(), caller.id().cloned());
        match peer {
            Some(_) => self.metrics.inbound_mtls.inc(),
            None => self.metrics.inbound_plaintext.inc(),
        };
        let mut request = request.map(boxed);
        let hop = HopOf {
            kind: Kind::Server,
            direction: "inbound",
            peer: peer.as_ref(),
        };
        let span = self.tracer.begin(Some(&snapshot), &hop, &mut request);
        let response = crate::access_log::exchange(
            &self.access_log,
            sinks,
            "inbound",
            request,
            remote,
            peer.as_ref(),
            |request| {
                self.stack.clone().oneshot(Arrived {
                    snapshot,
                    caller,
                    request,
                })
            },
            |error| error.respond(&self.metrics, "inbound"),
        )
        .await;
        crate::trace::finish(span, response)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! In-memory fixtures for the inbound layers' tests.

    use super::*;
    use serde_json::{Value, json};

    /// A `ns/reviews` workload config with `authz`.
    pub fn config(authz: Value) -> Value {
        json!({
            "version": 1,
            "mesh": {"name": "test", "trust_domain": "cluster.local"},
            "workload": {
                "service": "ns/reviews",
                "identity": "spiffe://cluster.local/ns/ns/sa/reviews",
                "ports": [{"protocol": "http", "number": 9080}]
            },
            "inbound": {"mtls": "permissive", "authz": authz},
            "outbound": {"egress": "allow", "services": []}
        })
    }

    /// `request` from `caller` (a SPIFFE id; `None`: anonymous) on `config`.
    pub fn arrived(config: Value, caller: Option<&str>, request: Request<Body>) -> Arrived {
        let caller = caller.map(|id| mesh_identity::SpiffeId::parse(id).expect("a SPIFFE id"));
        Arrived {
            snapshot: crate::outbound::testing::snapshot(config),
            caller: Arc::new(Caller::new(caller)),
            request,
        }
    }

    /// A stand-in app answering 200 with the `x-forwarded-client-cert` it got as body.
    pub fn echo_xfcc() -> impl crate::stack::Stack<Arrived> {
        tower::service_fn(|arrived: Arrived| {
            let xfcc = arrived
                .request
                .headers()
                .get("x-forwarded-client-cert")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            Box::pin(async move { Ok(Response::new(crate::http::full(xfcc))) })
                as crate::stack::BoxFuture<_>
        })
    }
}
