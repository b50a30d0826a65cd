//! The outbound side: the app's requests to other services, as a stack of tower layers,
//! one per concern, in the order a request meets them:
//!
//! ```text
//! route ─┬─ observe → fault → rewrite → buffer → mirror → timeout → retry → breaker → balance → endpoint
//!        └─ observe → passthrough            (destinations the config does not route)
//! ```
//!
//! [`route`] makes the routing decision once and puts it on the request ([`call::Call`]);
//! every layer below reads its parameters (fault, edits, mirrors, timeout, retry
//! profile, backend) from that decision, typed. Config and identity reach the stack as
//! `tokio::sync::watch` receivers; every failure is a [`ProxyError`] that becomes a
//! response in one place ([`Outbound::handle`]).

pub mod balance;
pub mod breaker;
pub mod buffer;
pub mod call;
pub mod endpoint;
pub mod fault;
pub mod mirror;
pub mod passthrough;
pub mod retry;
pub mod retry_policy;
pub mod rewrite;
pub mod route;
#[cfg(test)]
pub(crate) mod testing;
pub mod timeout;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tower::ServiceExt;

use crate::access_log::{self, Writer};
use crate::caller::Caller;
use crate::client::Clients;
use crate::http::{Body, boxed};
use crate::metrics::Metrics;
use crate::observe::Observe;
use crate::state::{Shared, Snapshots};
use crate::trace::span::Kind;
use crate::trace::{HopOf, Tracer};

use self::balance::Balance;
use self::breaker::Breaker;
use self::buffer::Buffer;
use self::endpoint::Endpoint;
use self::fault::Fault;
use self::mirror::Mirror;
use self::passthrough::Passthrough;
use self::retry::Retry;
use self::rewrite::Rewrite;
use self::route::{Outgoing, Route};
use self::timeout::Timeout;

/// The layers from the router down, for routed requests (a sidecar's and a gateway's).
pub type Routed = Observe<Fault<Rewrite<Buffer<Mirror<Timeout<Retry<Tries>>, Tries>>>>>;

/// One try: admitted by the service's circuit breaker, an endpoint picked, the request
/// sent to it.
type Tries = Breaker<Balance<Endpoint>>;

/// The outbound stack.
#[derive(Clone)]
pub struct Outbound {
    stack: Route<Routed, Observe<Passthrough>>,
    metrics: Arc<Metrics>,
    snapshots: Snapshots,
    access_log: Arc<Writer>,
    tracer: Arc<Tracer>,
}

/// The routed layers, from observe down to the endpoint, over the agent's state.
pub fn routed(shared: &Shared, clients: Clients) -> Routed {
    let metrics = &shared.metrics;
    let balance = Balance::new(
        Endpoint::new(clients),
        metrics.ejections.clone(),
        metrics.outlier_ejections.clone(),
    );
    let tries = Breaker::new(balance, Arc::clone(&shared.gates));
    let retry = Retry::new(
        tries.clone(),
        Arc::clone(&shared.budgets),
        metrics.retries.clone(),
        metrics.budget_exhausted.clone(),
    );
    let mirror = Mirror::new(Timeout::new(retry), tries, metrics.mirrored.clone());
    Observe::new(
        Fault::new(Rewrite::new(Buffer::new(mirror))),
        metrics.requests.clone(),
        metrics.latency.clone(),
    )
}

impl Outbound {
    /// The stack over the agent's state; `listening` is the outbound listener's address.
    pub fn new(shared: &Shared, clients: Clients, listening: SocketAddr) -> Outbound {
        let metrics = Arc::clone(&shared.metrics);
        let routed = routed(shared, clients.clone());
        let passthrough = Observe::new(
            Passthrough::new(clients, listening),
            metrics.requests.clone(),
            metrics.latency.clone(),
        );
        Outbound {
            stack: Route::new(shared.snapshots(), routed, passthrough),
            metrics,
            snapshots: shared.snapshots(),
            access_log: Arc::clone(&shared.access_log),
            tracer: Arc::clone(&shared.tracer),
        }
    }

    /// Handles one request from the app on a connection from `caller` (whose
    /// `original_dst` is where the app was connecting when capture rules redirected its
    /// connection here; `None`: sent to the proxy).
    pub async fn handle(&self, request: Request<Incoming>, caller: &Caller) -> Response<Body> {
        let snapshot = self.snapshots.borrow().clone();
        let sinks = self.access_log.sinks(snapshot.as_deref());
        let mut request = request.map(boxed);
        let hop = HopOf {
            kind: Kind::Client,
            direction: "outbound",
            peer: None,
        };
        let span = self.tracer.begin(snapshot.as_deref(), &hop, &mut request);
        drop(snapshot);
        let original_dst = caller.original_dst();
        let response = access_log::exchange(
            &self.access_log,
            sinks,
            "outbound",
            request,
            caller.remote(),
            None,
            |request| {
                self.stack.clone().oneshot(Outgoing {
                    request,
                    original_dst,
                })
            },
            |error| error.respond(&self.metrics, "outbound"),
        )
        .await;
        crate::trace::finish(span, response)
    }
}
