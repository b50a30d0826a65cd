//! Rate limits, enforced by the callee's agent on the requests its policies allow: a
//! token bucket per limit of `inbound.rate_limits` (one per calling identity with
//! `per_caller`; anonymous callers share one), so a workload sheds what it cannot take
//! before it reaches the app. Which limits a request counts against is the contract's
//! ([`Config::rate_limits`](mesh_config::Config::rate_limits)), the same code `meshc
//! test` runs.
//!
//! A request takes a token from every limit it counts against, or from none: when one
//! has no token the ones already taken are given back, and the request is refused with
//! `429`, `retry-after` (whole seconds until that limit has a token, at least 1) and
//! `mesh-error: rate-limited`. Under `mode audit` policies the request is counted,
//! logged and let through. Buckets ([`buckets`](crate::inbound::buckets)) are lock-free;
//! per-caller ones sit in a bounded map of at most [`MAX_CALLERS`] callers per limit,
//! the least recently used evicted. A limit keeps its buckets across reloads while its
//! name and parameters stay the same.
//!
//! Metrics: `mesh_rate_limit_total{limit, result}`, result `allowed`, `limited` (refused)
//! or `audit` (over the limit, let through).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use mesh_config::schema::{Authz, PolicyMode, RateLimit as RateLimitDef};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::time::Instant;
use tower::Service;

use crate::error::ProxyError;
use crate::http::{View, authority};
use crate::inbound::Arrived;
use crate::inbound::authorize::request_port;
use crate::inbound::buckets::{Bucket, Callers, Rate};
use crate::metrics::{Name, RateLimitLabels};
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

/// Callers with a bucket of their own, per `per_caller` limit.
pub const MAX_CALLERS: usize = 10_000;

/// The key of anonymous callers' shared bucket (service keys are never empty).
const ANONYMOUS: &str = "";

/// One limit's state: its buckets and counters.
#[derive(Debug)]
pub struct Limiter {
    /// The parameters it was made for; a reload that changes them starts afresh.
    def: (u32, u64, u32, bool),
    name: Arc<str>,
    rate: Rate,
    shared: Bucket,
    callers: Option<Callers>,
    allowed: Counter,
    limited: Counter,
    audit: Counter,
}

impl Limiter {
    fn new(def: &RateLimitDef, counters: &Family<RateLimitLabels, Counter>) -> Limiter {
        let name: Arc<str> = def.name.as_str().into();
        let counter = |result| {
            counters
                .get_or_create(&RateLimitLabels {
                    limit: Name::Shared(Arc::clone(&name)),
                    result,
                })
                .clone()
        };
        Limiter {
            def: key(def),
            rate: Rate::new(def.requests, def.period_us, def.burst),
            shared: Bucket::default(),
            callers: def.per_caller.then(|| Callers::new(MAX_CALLERS)),
            allowed: counter("allowed"),
            limited: counter("limited"),
            audit: counter("audit"),
            name,
        }
    }

    fn take(&self, caller: &str, now_ns: u64) -> Result<(), u64> {
        match &self.callers {
            Some(callers) => callers.with(caller, |bucket| bucket.take(now_ns, self.rate)),
            None => self.shared.take(now_ns, self.rate),
        }
    }

    fn refund(&self, caller: &str) {
        match &self.callers {
            Some(callers) => callers.existing(caller, |bucket| bucket.refund(self.rate)),
            None => self.shared.refund(self.rate),
        }
    }
}

fn key(def: &RateLimitDef) -> (u32, u64, u32, bool) {
    (def.requests, def.period_us, def.burst, def.per_caller)
}

/// The agent's limiters by name, kept across reloads.
#[derive(Debug)]
pub struct Limiters {
    by_name: Mutex<HashMap<String, Arc<Limiter>>>,
    epoch: Instant,
    counters: Family<RateLimitLabels, Counter>,
}

impl Limiters {
    /// No limiters yet; decisions are counted in `counters`.
    pub fn new(counters: Family<RateLimitLabels, Counter>) -> Limiters {
        Limiters {
            by_name: Mutex::default(),
            epoch: Instant::now(),
            counters,
        }
    }

    /// The limiters of `defs`, in order: the existing one for a limit whose name and
    /// parameters are unchanged, a new one otherwise. Limits no longer defined are
    /// forgotten.
    pub fn resolve(&self, defs: &[RateLimitDef]) -> Vec<Arc<Limiter>> {
        let mut by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let resolved: Vec<Arc<Limiter>> = defs
            .iter()
            .map(|def| match by_name.get(&def.name) {
                Some(limiter) if limiter.def == key(def) => Arc::clone(limiter),
                _ => {
                    let limiter = Arc::new(Limiter::new(def, &self.counters));
                    by_name.insert(def.name.clone(), Arc::clone(&limiter));
                    limiter
                }
            })
            .collect();
        by_name.retain(|name, _| defs.iter().any(|d| &d.name == name));
        resolved
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A request's refusal: the limit that had no token and how long until it has one.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// Its index in the config's limits.
    pub index: usize,
    /// Nanoseconds until a token.
    pub wait_ns: u64,
}

/// Takes a token from each limit of `applying()` (indexes into `limiters`) for `caller`,
/// or from none of them.
pub fn admit<I: Iterator<Item = usize>>(
    limiters: &[Arc<Limiter>],
    applying: impl Fn() -> I,
    caller: &str,
    now_ns: u64,
) -> Result<(), Refused> {
    for (taken, index) in applying().enumerate() {
        let Some(limiter) = limiters.get(index) else {
            continue;
        };
        if let Err(wait_ns) = limiter.take(caller, now_ns) {
            for earlier in applying().take(taken) {
                if let Some(limiter) = limiters.get(earlier) {
                    limiter.refund(caller);
                }
            }
            return Err(Refused { index, wait_ns });
        }
    }
    Ok(())
}

/// Refuses requests over a rate limit; lets the others through to `inner`.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiters: Arc<Limiters>,
}

impl<S> RateLimit<S> {
    /// The layer over `inner`, with the agent's limiters.
    pub fn new(inner: S, limiters: Arc<Limiters>) -> RateLimit<S> {
        RateLimit { inner, limiters }
    }

    /// `None` when `arrived` may go on; else why not.
    fn refusal(&self, arrived: &Arrived) -> Option<ProxyError> {
        let config = &arrived.snapshot.config.config;
        let defs = &config.source().inbound.rate_limits;
        if defs.is_empty() {
            return None;
        }
        let limiters = arrived
            .snapshot
            .rate_limiters
            .get_or_init(|| self.limiters.resolve(defs));
        let request = &arrived.request;
        let view = View::new(
            request,
            authority(request).unwrap_or(""),
            request_port(arrived),
        );
        let peer = arrived.caller.peer(&config.source().mesh.trust_domain);
        let service = peer.service.as_deref();
        let applying = || config.rate_limits(&view, service).map(|(index, _)| index);
        let caller = service.unwrap_or(ANONYMOUS);
        let Err(refused) = admit(limiters, applying, caller, self.limiters.now_ns()) else {
            for index in applying() {
                if let Some(limiter) = limiters.get(index) {
                    limiter.allowed.inc();
                }
            }
            return None;
        };
        let limiter = limiters.get(refused.index)?;
        let retry_after = refused.wait_ns.div_ceil(1_000_000_000).max(1);
        let who = service.unwrap_or("anonymous");
        let audit = matches!(&config.source().inbound.authz, Authz::Cedar(c) if c.mode == PolicyMode::Audit);
        if audit {
            limiter.audit.inc();
            tracing::warn!(limit = %limiter.name, peer = who, method = %request.method(), path = request.uri().path(), "audit: request over the rate limit let through");
            return None;
        }
        limiter.limited.inc();
        tracing::debug!(limit = %limiter.name, peer = who, method = %request.method(), path = request.uri().path(), retry_after, "request over the rate limit");
        Some(ProxyError::RateLimited {
            limit: limiter.name.to_string(),
            retry_after,
        })
    }
}

impl<S: Stack<Arrived>> Service<Arrived> for RateLimit<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, arrived: Arrived) -> Self::Future {
        match self.refusal(&arrived) {
            Some(refusal) => Box::pin(async { Err(refusal) }),
            None => Box::pin(self.inner.call(arrived)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::testing;
    use serde_json::{Value, json};
    use std::time::Duration;
    use tower::ServiceExt;

    const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/ns/sa/productpage";
    const RATINGS: &str = "spiffe://cluster.local/ns/ns/sa/ratings";

    fn limit(name: &str, requests: u32, burst: u32, per_caller: bool, when: Value) -> Value {
        json!({"name": name, "requests": requests, "period_us": 1_000_000, "burst": burst,
               "per_caller": per_caller, "when": when})
    }

    fn limited(limits: Value, mode: Option<&str>) -> Value {
        let authz = match mode {
            Some(mode) => json!({"kind": "cedar", "mode": mode, "headers": [], "query": [],
                "patterns": [], "policies": "@id(\"p\")\npermit (principal, action, resource);"}),
            None => json!({"kind": "allow_all"}),
        };
        let mut config = testing::config(authz);
        config["inbound"]["rate_limits"] = limits;
        config
    }

    fn layer() -> (
        RateLimit<impl Stack<Arrived>>,
        Family<RateLimitLabels, Counter>,
    ) {
        let counters = Family::default();
        let limiters = Arc::new(Limiters::new(counters.clone()));
        (RateLimit::new(testing::echo_xfcc(), limiters), counters)
    }

    /// GET `path` from `caller` (a SPIFFE id; `None`: anonymous) on `snapshot`, shared by
    /// every request as between reloads.
    async fn send(
        layer: &RateLimit<impl Stack<Arrived>>,
        snapshot: &Arc<crate::state::Snapshot>,
        caller: Option<&str>,
        path: &str,
    ) -> Result<u16, ProxyError> {
        let request = http::Request::builder()
            .uri(path)
            .body(crate::http::full(""))
            .expect("a request");
        let caller = caller.map(|id| mesh_identity::SpiffeId::parse(id).expect("a SPIFFE id"));
        let arrived = Arrived {
            snapshot: Arc::clone(snapshot),
            caller: Arc::new(crate::caller::Caller::new(caller)),
            request,
        };
        layer
            .clone()
            .oneshot(arrived)
            .await
            .map(|r| r.status().as_u16())
    }

    fn count(
        counters: &Family<RateLimitLabels, Counter>,
        limit: &str,
        result: &'static str,
    ) -> u64 {
        counters
            .get_or_create(&RateLimitLabels {
                limit: Name::from(limit),
                result,
            })
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_requests_wait_for_the_refill() {
        let (layer, counters) = layer();
        let snapshot = crate::outbound::testing::snapshot(limited(
            json!([limit("all", 10, 3, false, Value::Null)]),
            None,
        ));
        for _ in 0..3 {
            assert_eq!(send(&layer, &snapshot, None, "/").await.ok(), Some(200));
        }
        let refused = send(&layer, &snapshot, None, "/").await.unwrap_err();
        assert!(
            matches!(refused, ProxyError::RateLimited { ref limit, retry_after: 1 } if limit == "all"),
            "{refused:?}"
        );
        let response = refused.respond(&crate::metrics::Metrics::default(), "inbound");
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["mesh-error"], "rate-limited");
        // One token comes back every 100 ms, and only one.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(send(&layer, &snapshot, None, "/").await.ok(), Some(200));
        assert!(send(&layer, &snapshot, None, "/").await.is_err());
        // A quiet second refills up to the burst, not beyond.
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut passed = 0;
        for _ in 0..5 {
            passed += usize::from(send(&layer, &snapshot, None, "/").await.is_ok());
        }
        assert_eq!(passed, 3);
        assert_eq!(count(&counters, "all", "allowed"), 7);
        assert_eq!(count(&counters, "all", "limited"), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn per_caller_limits_give_each_identity_its_own_bucket_and_anonymous_callers_one() {
        let (layer, _) = layer();
        let snapshot = crate::outbound::testing::snapshot(limited(
            json!([limit("each", 1, 1, true, Value::Null)]),
            None,
        ));
        for caller in [Some(PRODUCTPAGE), Some(RATINGS), None] {
            assert_eq!(send(&layer, &snapshot, caller, "/").await.ok(), Some(200));
        }
        for caller in [Some(PRODUCTPAGE), Some(RATINGS), None] {
            assert!(send(&layer, &snapshot, caller, "/").await.is_err());
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            send(&layer, &snapshot, Some(RATINGS), "/").await.ok(),
            Some(200)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_matching_requests_count_and_a_refused_request_takes_no_token() {
        let (layer, counters) = layer();
        let search = json!({"text": {"attr": "path", "op": "starts_with", "value": "/search"}});
        let snapshot = crate::outbound::testing::snapshot(limited(
            json!([
                limit("all", 1, 2, false, Value::Null),
                limit("search", 1, 1, false, search)
            ]),
            None,
        ));
        assert_eq!(
            send(&layer, &snapshot, None, "/search").await.ok(),
            Some(200)
        );
        // "search" has no token: "all" gives its back each time.
        for _ in 0..5 {
            let refused = send(&layer, &snapshot, None, "/search?q=1")
                .await
                .unwrap_err();
            assert!(
                matches!(refused, ProxyError::RateLimited { ref limit, .. } if limit == "search")
            );
        }
        assert_eq!(
            send(&layer, &snapshot, None, "/other").await.ok(),
            Some(200)
        );
        let refused = send(&layer, &snapshot, None, "/other").await.unwrap_err();
        assert!(matches!(refused, ProxyError::RateLimited { ref limit, .. } if limit == "all"));
        assert_eq!(count(&counters, "search", "limited"), 5);
        assert_eq!(count(&counters, "all", "allowed"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn in_audit_mode_a_request_over_the_limit_is_counted_and_let_through() {
        let (layer, counters) = layer();
        let snapshot = crate::outbound::testing::snapshot(limited(
            json!([limit("all", 1, 1, false, Value::Null)]),
            Some("audit"),
        ));
        for _ in 0..3 {
            assert_eq!(send(&layer, &snapshot, None, "/").await.ok(), Some(200));
        }
        assert_eq!(count(&counters, "all", "audit"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_survive_a_reload_unless_their_parameters_change() {
        let (layer, _) = layer();
        let config = |burst| limited(json!([limit("all", 1, burst, false, Value::Null)]), None);
        let first = crate::outbound::testing::snapshot(config(1));
        assert_eq!(send(&layer, &first, None, "/").await.ok(), Some(200));
        let reloaded = crate::outbound::testing::snapshot(config(1));
        assert!(
            send(&layer, &reloaded, None, "/").await.is_err(),
            "same limit: still empty"
        );
        let changed = crate::outbound::testing::snapshot(config(2));
        assert_eq!(
            send(&layer, &changed, None, "/").await.ok(),
            Some(200),
            "new parameters: a new bucket"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn per_caller_buckets_are_bounded() {
        let (layer, _) = layer();
        let snapshot = crate::outbound::testing::snapshot(limited(
            json!([limit("each", 1, 1, true, Value::Null)]),
            None,
        ));
        for i in 0..(2 * MAX_CALLERS) {
            let id = format!("spiffe://cluster.local/ns/ns/sa/caller-{i}");
            assert_eq!(
                send(&layer, &snapshot, Some(&id), "/").await.ok(),
                Some(200)
            );
        }
        let limiters = snapshot.rate_limiters.get().expect("resolved");
        let callers = limiters[0].callers.as_ref().expect("per caller");
        assert_eq!(callers.len(), MAX_CALLERS);
    }
}
