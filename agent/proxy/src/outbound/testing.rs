//! In-memory fixtures for the outbound layers' tests: a one-service config (`ns/reviews`
//! with subsets `v1` and `v2`, one endpoint each), snapshots built from it, calls routed
//! on it, and recording services that stand in for the layers below the one under test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Request, Response};
use mesh_config::Config;
use mesh_config::schema::FULL_WEIGHT;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::discovery::{Endpoint, Endpoints};
use crate::error::ProxyError;
use crate::http::{Body, View, full};
use crate::outbound::call::{Call, CallBody};
use crate::outbound::passthrough::Unrouted;
use crate::pool::Registry;
use crate::stack::{BoxFuture, Stack};
use crate::state::{LoadedConfig, Snapshot, Snapshots};

/// A workload config calling `ns/reviews` with `rules` (JSON route rules).
pub fn config(rules: Value) -> Value {
    json!({
        "version": 1,
        "mesh": {"name": "test", "trust_domain": "cluster.local"},
        "workload": {
            "service": "ns/productpage",
            "identity": "spiffe://cluster.local/ns/ns/sa/productpage",
            "ports": [{"protocol": "http", "number": 9080}]
        },
        "inbound": {"mtls": "permissive", "authz": {"kind": "allow_all"}},
        "outbound": {"egress": "allow", "services": [{
            "service": "ns/reviews",
            "authorities": ["reviews", "reviews.ns"],
            "ports": [{"protocol": "http", "number": 9080}],
            "identity": "spiffe://cluster.local/ns/ns/sa/reviews",
            "labels": {"app": "reviews"},
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}}
            ],
            "balance": "round_robin",
            "timeout_us": null,
            "retry": null,
            "rules": rules
        }]}
    })
}

/// A route rule named `name` sending everything to `v1`, with `extra` fields merged in.
pub fn rule(name: &str, extra: Value) -> Value {
    let mut rule = json!({
        "name": name,
        "when": null,
        "backends": [{"service": "ns/reviews", "subset": "v1", "weight_milli": FULL_WEIGHT}],
        "timeout_us": null, "retry": null, "mirrors": [], "fault": null,
        "set_headers": [], "remove_headers": [], "rewrite_prefix": null
    });
    if let (Some(rule), Value::Object(extra)) = (rule.as_object_mut(), extra) {
        rule.extend(extra);
    }
    rule
}

/// The snapshot of `config` with one endpoint per subset: `v1` at 127.0.0.1:1, `v2` at
/// 127.0.0.1:2.
pub fn snapshot(config: Value) -> Arc<Snapshot> {
    let config = Config::from_json(config.to_string().as_bytes()).expect("valid test config");
    let endpoint = |port: u16, version: &str| Endpoint {
        service: "ns/reviews".into(),
        address: ([127, 0, 0, 1], port).into(),
        labels: BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), version.to_string()),
        ]),
        meshed: true,
    };
    let loaded = LoadedConfig {
        config,
        hash: String::new(),
        loaded_at: std::time::SystemTime::now(),
    };
    let endpoints = Endpoints::from_list(vec![endpoint(1, "v1"), endpoint(2, "v2")]);
    Arc::new(Snapshot::new(
        Arc::new(loaded),
        Arc::new(endpoints),
        None,
        &Registry::default(),
    ))
}

/// A watch publishing the snapshot of `config`.
pub fn snapshots(config: Value) -> (Snapshots, watch::Sender<Option<Arc<Snapshot>>>) {
    let (send, receive) = watch::channel(Some(snapshot(config)));
    (receive, send)
}

/// `request` (to `reviews`) routed on `snapshot`, its body buffered.
pub fn call(snapshot: &Arc<Snapshot>, request: Request<&'static str>) -> Call {
    let config = &snapshot.config.config;
    let index = config
        .service_for_authority("reviews")
        .expect("reviews is routed");
    let route = config
        .route(index, &View::new(&request, "reviews", 0), 0)
        .expect("a decision")
        .key;
    let (head, body) = request.into_parts();
    Call {
        snapshot: Arc::clone(snapshot),
        route,
        mirror: None,
        head,
        body: CallBody::Buffered(body.into()),
        upgrade: None,
        tried: Some(Arc::new(Mutex::new(None))),
    }
}

/// What a recording service saw: the backend (or authority), the URI and the headers.
pub type Record = (String, String, HeaderMap);

/// How a recording service answers its `n`th request: a status, or an error.
type Answers = dyn Fn(usize) -> Result<u16, fn() -> ProxyError> + Send + Sync;

/// A stand-in for the layers below the one under test: records each request and
/// answers with the status `answer` gives for the request's number (from 0).
#[derive(Clone)]
pub struct Seen {
    seen: Arc<Mutex<Vec<Record>>>,
    answer: Arc<Answers>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen::answering(|_| Ok(200))
    }
}

impl Seen {
    /// Answers request `n` with `answer(n)`: a status, or an error.
    pub fn answering(
        answer: impl Fn(usize) -> Result<u16, fn() -> ProxyError> + Send + Sync + 'static,
    ) -> Seen {
        Seen {
            seen: Arc::default(),
            answer: Arc::new(answer),
        }
    }

    fn record(&self, record: Record) -> Result<Response<Body>, ProxyError> {
        let mut seen = self.seen.lock().expect("not poisoned");
        let n = seen.len();
        seen.push(record);
        let status = (self.answer)(n).map_err(|error| error())?;
        let mut response = Response::new(full("ok"));
        *response.status_mut() = http::StatusCode::from_u16(status).expect("a status");
        Ok(response)
    }

    /// A service for routed calls, recording `service.subset` (or the mirror's backend).
    pub fn service(&self) -> impl Stack<Call> {
        let this = self.clone();
        tower::service_fn(move |call: Call| {
            let this = this.clone();
            let backend = call.backend().map(crate::outbound::call::backend_name);
            let uri = call.head.uri.to_string();
            let headers = call.head.headers.clone();
            let answer = backend.and_then(|backend| this.record((backend, uri, headers)));
            Box::pin(async move { answer }) as BoxFuture<_>
        })
    }

    /// A service for unrouted requests, recording the authority.
    pub fn unrouted_service(&self) -> impl Stack<Unrouted> {
        let this = self.clone();
        tower::service_fn(move |unrouted: Unrouted| {
            let answer = this.record((
                unrouted.authority.clone(),
                unrouted.request.uri().to_string(),
                unrouted.request.headers().clone(),
            ));
            Box::pin(async move { answer }) as BoxFuture<_>
        })
    }

    /// Every record so far.
    pub fn all(&self) -> Vec<Record> {
        self.seen.lock().expect("not poisoned").clone()
    }

    /// The last record.
    pub fn last(&self) -> Record {
        self.all().pop().expect("a request reached the service")
    }
}
