//! The routed request every outbound layer below the router handles: the request head
//! and body, the snapshot it was routed on and the routing decision as a [`RouteKey`] into
//! it (so a request owns what it needs without borrowing the config). Each layer reads
//! the parameters it needs from here — the rule, the backend, the timeout, the retry
//! profile — typed, through [`Call::decision`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mesh_config::schema::{Backend, RouteRule};
use mesh_config::{RouteDecision, RouteKey};

use crate::client_body::BodyFailed;
use crate::error::ProxyError;
use crate::http::Body;
use crate::state::Snapshot;
use crate::upgrade;

/// A request routed to an outbound service.
pub struct Call {
    /// The snapshot it was routed on; it keeps it to the end.
    pub snapshot: Arc<Snapshot>,
    /// The routing decision.
    pub route: RouteKey,
    /// Which of the rule's mirrors this copy is for (`None`: the request itself).
    pub mirror: Option<usize>,
    /// Method, URI (origin form: the path and query to send) and headers, hop-by-hop
    /// headers already stripped.
    pub head: http::request::Parts,
    /// The body.
    pub body: CallBody,
    /// The upgrade the client asked for, if any (never retried, mirrored or timed out).
    pub upgrade: Option<upgrade::Requested>,
    /// The endpoint of the last try, when the request may be retried: the next try
    /// avoids it.
    pub tried: Option<Arc<Mutex<Option<SocketAddr>>>>,
}

/// A request body: buffered (so it can be retried and mirrored) or streamed once.
pub enum CallBody {
    /// The whole body.
    Buffered(Bytes),
    /// The client's body as it arrives; `failed` turns true if reading it fails.
    Streaming {
        /// The body.
        body: Body,
        /// Whether reading it failed.
        failed: BodyFailed,
    },
}

impl Call {
    /// The routing decision, borrowed from the snapshot.
    pub fn decision(&self) -> Result<RouteDecision<'_>, ProxyError> {
        self.snapshot
            .config
            .config
            .resolve(self.route)
            .ok_or(ProxyError::Internal("route lookup failed"))
    }

    /// The rule that matched, if any.
    pub fn rule(&self) -> Option<&RouteRule> {
        self.decision().ok().and_then(|d| d.rule)
    }

    /// The backend this request goes to: the route's pick, or the mirror's.
    pub fn backend(&self) -> Result<&Backend, ProxyError> {
        let decision = self.decision()?;
        match self.mirror {
            None => Ok(decision.backend),
            Some(i) => decision
                .rule
                .and_then(|r| r.mirrors.get(i))
                .map(|m| &m.backend)
                .ok_or(ProxyError::Internal("mirror lookup failed")),
        }
    }

    /// The called service's name (`namespace/name`).
    pub fn service(&self) -> &str {
        self.decision().map_or("", |d| d.service.service.as_str())
    }

    /// The called service, to name later (in an error) without allocating now.
    pub fn service_ref(&self) -> ServiceRef {
        ServiceRef {
            snapshot: Arc::clone(&self.snapshot),
            route: self.route,
        }
    }

    /// A copy for another try or a mirror: `None` when the body is streamed or the
    /// request is an upgrade.
    pub fn copy(&self) -> Option<Call> {
        let CallBody::Buffered(bytes) = &self.body else {
            return None;
        };
        if self.upgrade.is_some() {
            return None;
        }
        Some(Call {
            snapshot: Arc::clone(&self.snapshot),
            route: self.route,
            mirror: self.mirror,
            head: self.head.clone(),
            body: CallBody::Buffered(bytes.clone()),
            upgrade: None,
            tried: self.tried.clone(),
        })
    }

    /// The endpoint of the last try.
    pub fn last_tried(&self) -> Option<SocketAddr> {
        let tried = self.tried.as_ref()?;
        *tried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the endpoint this try goes to.
    pub fn trying(&self, addr: SocketAddr) {
        if let Some(tried) = &self.tried {
            *tried
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(addr);
        }
    }
}

/// The service a request was routed to, named on demand.
#[derive(Clone)]
pub struct ServiceRef {
    snapshot: Arc<Snapshot>,
    route: RouteKey,
}

impl ServiceRef {
    /// Its name (`namespace/name`).
    pub fn name(&self) -> String {
        self.snapshot
            .config
            .config
            .resolve(self.route)
            .map_or_else(String::new, |d| d.service.service.clone())
    }
}

/// `service` or `service.subset`, as errors name a backend.
pub fn backend_name(backend: &Backend) -> String {
    match &backend.subset {
        Some(subset) => format!("{}.{subset}", backend.service),
        None => backend.service.clone(),
    }
}
