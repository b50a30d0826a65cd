//! Circuit breaking in the caller's agent (a service's `limits`): this agent keeps at
//! most `max_requests` tries in flight to the service's endpoints together (every try of
//! a retried request and every mirrored copy counts, until its response body ends), lets
//! at most `max_pending` more wait for a slot, and refuses the rest at once with `503`
//! and `mesh-error: overloaded` — so a slow or failing service makes its callers fail
//! fast instead of piling up requests, connections and memory in front of it. Without
//! `max_pending` nothing waits: over `max_requests` a try fails at once, as in Envoy.
//! A wait for a slot is bounded by the route's timeouts above this layer.
//!
//! The counters ([`Gate`]) live per service in the agent and survive reloads while the
//! service stays (a reload that changes the limits applies them to the same counts).
//! `max_connections` is counted by the connections themselves against the same gate:
//! HTTP connections by the service's own clients ([`crate::counted`]: plaintext ones
//! kept by the gate, mTLS ones by the identity), opaque TCP connections by
//! [`crate::tcp`] (one upstream connection per app connection, refused at the limit). Refusals are counted in `mesh_overloaded_total{service, limit}`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use mesh_config::schema::Limits;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;
use tower::Service;

use crate::client::Clients;
use crate::error::ProxyError;
use crate::http::{Body, BoxError, boxed};
use crate::metrics::{Name, OverloadLabels};
use crate::outbound::call::Call;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack, take};

/// No limit.
const UNLIMITED: u32 = u32::MAX;

/// One service's counters and limits in this agent.
#[derive(Debug)]
pub struct Gate {
    name: Arc<str>,
    max_requests: AtomicU32,
    max_pending: AtomicU32,
    max_connections: AtomicU32,
    in_flight: AtomicU32,
    pending: AtomicU32,
    connections: AtomicU32,
    freed: Notify,
    over_requests: Counter,
    over_pending: Counter,
    over_connections: Counter,
    /// Plaintext clients whose connections count against this gate.
    plain: OnceLock<Clients>,
}

impl Gate {
    fn new(name: &str, counters: &Family<OverloadLabels, Counter>) -> Gate {
        let name: Arc<str> = name.into();
        let counter = |limit| {
            counters
                .get_or_create(&OverloadLabels {
                    service: Name::Shared(Arc::clone(&name)),
                    limit,
                })
                .clone()
        };
        Gate {
            over_requests: counter("max_requests"),
            over_pending: counter("max_pending"),
            over_connections: counter("max_connections"),
            name,
            max_requests: AtomicU32::new(UNLIMITED),
            max_pending: AtomicU32::new(0),
            max_connections: AtomicU32::new(UNLIMITED),
            in_flight: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            freed: Notify::new(),
            plain: OnceLock::new(),
        }
    }

    /// The service it counts for.
    pub fn service(&self) -> &str {
        &self.name
    }

    /// Plaintext clients whose connections count against it (made on first use).
    pub fn plain_clients(self: &Arc<Self>) -> &Clients {
        self.plain.get_or_init(|| Clients::gated(self))
    }

    fn set(&self, limits: &Limits) {
        let set = |to: &AtomicU32, value: Option<u32>, absent| {
            to.store(value.unwrap_or(absent), Ordering::Relaxed);
        };
        set(&self.max_requests, limits.max_requests, UNLIMITED);
        set(&self.max_pending, limits.max_pending, 0);
        set(&self.max_connections, limits.max_connections, UNLIMITED);
        // Waiters re-check against the new limits.
        self.freed.notify_waiters();
    }

    fn overloaded(&self, limit: &'static str) -> ProxyError {
        match limit {
            "max_pending" => self.over_pending.inc(),
            "max_connections" => self.over_connections.inc(),
            _ => self.over_requests.inc(),
        };
        ProxyError::Overloaded {
            service: self.name.to_string(),
            limit,
        }
    }

    /// Counts one more of `count` if it stays within `max`.
    fn increment(count: &AtomicU32, max: &AtomicU32) -> bool {
        let max = max.load(Ordering::Relaxed);
        count
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// A request slot now, if one is free.
    pub fn try_enter(self: &Arc<Self>) -> Option<Slot> {
        Gate::increment(&self.in_flight, &self.max_requests).then(|| Slot {
            gate: Arc::clone(self),
        })
    }

    /// A request slot: now, after a wait among at most `max_pending` others, or an
    /// `overloaded` refusal.
    pub async fn enter(self: Arc<Self>) -> Result<Slot, ProxyError> {
        if let Some(slot) = self.try_enter() {
            return Ok(slot);
        }
        if !Gate::increment(&self.pending, &self.max_pending) {
            let limit = if self.max_pending.load(Ordering::Relaxed) == 0 {
                "max_requests"
            } else {
                "max_pending"
            };
            return Err(self.overloaded(limit));
        }
        let _waiting = Waiting(&self.pending);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_enter() {
                return Ok(slot);
            }
            freed.await;
        }
    }

    /// Counts a new connection to the service's endpoints; `None` (counted as
    /// overloaded) at `max_connections`.
    pub fn connect(self: &Arc<Self>) -> Option<ConnectionSlot> {
        if Gate::increment(&self.connections, &self.max_connections) {
            Some(ConnectionSlot {
                gate: Arc::clone(self),
            })
        } else {
            self.over_connections.inc();
            None
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Open connections now.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A request waiting for a slot.
struct Waiting<'g>(&'g AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request in flight; dropping it frees its slot.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.gate.freed.notify_one();
    }
}

/// An open connection; dropping it (the connection closed) frees its count.
#[derive(Debug)]
pub struct ConnectionSlot {
    gate: Arc<Gate>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.gate.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The agent's gates by service, kept across reloads.
#[derive(Debug)]
pub struct Gates {
    by_service: Mutex<HashMap<String, Arc<Gate>>>,
    counters: Family<OverloadLabels, Counter>,
}

impl Gates {
    /// No gates yet; refusals are counted in `counters`.
    pub fn new(counters: Family<OverloadLabels, Counter>) -> Gates {
        Gates {
            by_service: Mutex::default(),
            counters,
        }
    }

    /// `service`'s gate, with `limits` applied.
    pub fn resolve(&self, service: &str, limits: &Limits) -> Arc<Gate> {
        let mut by_service = self
            .by_service
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let gate = by_service
            .entry(service.to_string())
            .or_insert_with(|| Arc::new(Gate::new(service, &self.counters)));
        gate.set(limits);
        Arc::clone(gate)
    }
}

/// Admits each try within its service's limits, then calls `inner`.
#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    gates: Arc<Gates>,
}

impl<S> Breaker<S> {
    /// The layer over `inner`, with the agent's gates.
    pub fn new(inner: S, gates: Arc<Gates>) -> Breaker<S> {
        Breaker { inner, gates }
    }
}

/// The gate of `call`'s backend service, when it has limits.
fn gate(call: &Call, gates: &Gates) -> Option<Arc<Gate>> {
    let backend = call.backend().ok()?;
    let (_, service) = call.snapshot.pool(&backend.service, None)?;
    let limits = service.limits.as_ref()?;
    Some(Arc::clone(
        service
            .gate
            .get_or_init(|| gates.resolve(&backend.service, limits)),
    ))
}

impl<S: Stack<Call>> Service<Call> for Breaker<S> {
    type Response = http::Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, call: Call) -> Self::Future {
        let Some(gate) = gate(&call, &self.gates) else {
            return Box::pin(self.inner.call(call));
        };
        if let Some(slot) = gate.try_enter() {
            let sent = self.inner.call(call);
            return Box::pin(async move { hold(sent.await, slot) });
        }
        let mut inner = take(&mut self.inner);
        Box::pin(async move {
            let slot = gate.enter().await?;
            hold(inner.call(call).await, slot)
        })
    }
}

/// `answer`, keeping `slot` taken until its body ends.
fn hold(answer: Answer, slot: Slot) -> Answer {
    answer.map(|response| response.map(|body| boxed(Held { body, _slot: slot })))
}

/// A response body that frees its request slot when it is done with.
struct Held {
    body: Body,
    _slot: Slot,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing;
    use serde_json::{Value, json};
    use std::time::Duration;
    use tower::ServiceExt;

    fn with_limits(limits: Value) -> Arc<crate::state::Snapshot> {
        let mut config = testing::config(json!([]));
        config["outbound"]["services"][0]["limits"] = limits;
        testing::snapshot(config)
    }

    /// A service whose answers wait until `release` is notified.
    fn held(release: Arc<Notify>) -> impl Stack<Call> {
        tower::service_fn(move |_: Call| {
            let release = Arc::clone(&release);
            Box::pin(async move {
                release.notified().await;
                Ok(http::Response::new(crate::http::full("ok")))
            }) as BoxFuture<Answer>
        })
    }

    fn overloaded(answer: &Answer) -> Option<&'static str> {
        match answer {
            Err(ProxyError::Overloaded { limit, .. }) => Some(limit),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn over_max_requests_a_try_fails_fast_and_a_finished_body_frees_its_slot() {
        let counters = Family::default();
        let gates = Arc::new(Gates::new(counters.clone()));
        let snapshot =
            with_limits(json!({"max_connections": null, "max_pending": null, "max_requests": 2}));
        let release = Arc::new(Notify::new());
        let breaker = Breaker::new(held(Arc::clone(&release)), Arc::clone(&gates));
        let call = || testing::call(&snapshot, http::Request::new(""));
        let first = tokio::spawn(breaker.clone().oneshot(call()));
        let second = tokio::spawn(breaker.clone().oneshot(call()));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let third = breaker.clone().oneshot(call()).await;
        assert_eq!(overloaded(&third), Some("max_requests"));
        let response = third
            .unwrap_err()
            .respond(&crate::metrics::Metrics::default(), "outbound");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["mesh-error"], "overloaded");
        release.notify_waiters();
        let first = first.await.expect("joined").expect("answered");
        let _second = second.await.expect("joined").expect("answered");
        let gate = gates.resolve(
            "ns/reviews",
            &Limits {
                max_connections: None,
                max_pending: None,
                max_requests: Some(2),
            },
        );
        assert_eq!(gate.in_flight(), 2, "bodies not read yet hold their slots");
        drop(first);
        assert_eq!(gate.in_flight(), 1);
        let labels = OverloadLabels {
            service: Name::from("ns/reviews"),
            limit: "max_requests",
        };
        assert_eq!(counters.get_or_create(&labels).get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn max_pending_tries_wait_for_a_slot_and_the_rest_fail_fast() {
        let gates = Arc::new(Gates::new(Family::default()));
        let snapshot =
            with_limits(json!({"max_connections": null, "max_pending": 1, "max_requests": 1}));
        let release = Arc::new(Notify::new());
        let breaker = Breaker::new(held(Arc::clone(&release)), gates);
        let call = || testing::call(&snapshot, http::Request::new(""));
        let running = tokio::spawn(breaker.clone().oneshot(call()));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let waiting = tokio::spawn(breaker.clone().oneshot(call()));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let refused = breaker.clone().oneshot(call()).await;
        assert_eq!(overloaded(&refused), Some("max_pending"));
        // The first answer (its body dropped) lets the waiting one in.
        release.notify_one();
        drop(running.await.expect("joined").expect("answered"));
        tokio::time::sleep(Duration::from_millis(1)).await;
        release.notify_one();
        let waited = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(matches!(waited, Ok(Ok(Ok(_)))), "the waiting try was sent");
    }

    #[tokio::test]
    async fn a_service_without_limits_is_not_counted() {
        let gates = Arc::new(Gates::new(Family::default()));
        let snapshot = testing::snapshot(testing::config(json!([])));
        let seen = testing::Seen::default();
        let breaker = Breaker::new(seen.service(), Arc::clone(&gates));
        for _ in 0..10 {
            let answer = breaker
                .clone()
                .oneshot(testing::call(&snapshot, http::Request::new("")))
                .await;
            assert!(answer.is_ok());
        }
        assert!(gates.by_service.lock().expect("not poisoned").is_empty());
    }

    #[test]
    fn counts_survive_a_change_of_limits() {
        let gates = Gates::new(Family::default());
        let one = Limits {
            max_connections: Some(1),
            max_pending: None,
            max_requests: Some(1),
        };
        let gate = gates.resolve("ns/reviews", &one);
        let _slot = gate.try_enter().expect("a free slot");
        let _connection = gate.connect().expect("a free connection");
        assert!(gate.connect().is_none());
        let two = Limits {
            max_connections: Some(2),
            max_pending: None,
            max_requests: Some(2),
        };
        let same = gates.resolve("ns/reviews", &two);
        assert!(Arc::ptr_eq(&gate, &same));
        assert_eq!((same.in_flight(), same.connections()), (1, 1));
        assert!(same.try_enter().is_some());
        assert!(same.connect().is_some());
    }
}
