//! The per-request decision on the agent's hot path: map the authority to a service,
//! route the request (`mesh-config`'s `route`, header matchers, split draw) and pick an
//! endpoint of the chosen backend. Measured for 10 rules with the match on the last one
//! (the worst case for first-match routing) and for each balancing algorithm. And the
//! inbound decision: the caller's principal (per connection) and the Cedar authorization
//! of a request against a bookinfo-sized policy set. And the rate limit decision: which
//! of two limits a request counts against and a token from each (shared and per caller).
//! And tracing's cost per request: a hop's trace decision and `traceparent` (always),
//! and the span recorded and queued for export when sampled, at 0%, 1% and 100%.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_agent::caller::Caller;
use mesh_agent::http::View;
use mesh_agent::inbound::rate_limit::{Limiters, admit};
use mesh_agent::pool::{Pool, Registry};
use mesh_config::Config;
use mesh_config::schema::Balance;
use serde_json::{Value, json};

const RULES: usize = 10;

fn rule(i: usize) -> Value {
    json!({
        "name": format!("r{i}"),
        "when": {"text": {"attr": {"header": "x-user"}, "op": "eq", "value": format!("user-{i}")}},
        "backends": [
            {"service": "ns/reviews", "subset": "v1", "weight_milli": 90_000},
            {"service": "ns/reviews", "subset": "v2", "weight_milli": 10_000}
        ],
        "timeout_us": 2_000_000, "retry": null, "mirrors": [], "fault": null,
        "set_headers": [], "remove_headers": [], "rewrite_prefix": null
    })
}

fn config() -> Config {
    let config = json!({
        "version": 1,
        "mesh": {"name": "bench", "trust_domain": "cluster.local"},
        "workload": {
            "service": "ns/productpage",
            "identity": "spiffe://cluster.local/ns/ns/sa/productpage",
            "ports": [{"protocol": "http", "number": 9080}]
        },
        "inbound": {"mtls": "permissive", "authz": {"kind": "allow_all"}},
        "outbound": {"egress": "allow", "services": [{
            "service": "ns/reviews",
            "authorities": ["reviews", "reviews.ns", "reviews.ns.svc", "reviews.ns.svc.cluster.local"],
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
            "rules": (0..RULES).map(rule).collect::<Vec<_>>()
        }]}
    });
    Config::from_json(config.to_string().as_bytes()).expect("valid bench config")
}

fn pool(balance: Balance) -> Pool {
    let registry = Registry::default();
    let endpoints = (0..8)
        .map(|i| registry.get(format!("127.0.0.1:{}", 10_000 + i).parse().unwrap()))
        .collect();
    Pool::new(endpoints, balance)
}

fn request_path(c: &mut Criterion) {
    let config = config();
    let request = http::Request::builder()
        .uri("/reviews/1")
        .header("host", "reviews.ns.svc.cluster.local:9080")
        .header("x-user", format!("user-{}", RULES - 1))
        .header("accept", "application/json")
        .body(())
        .unwrap();
    let mut group = c.benchmark_group("request_path");
    for (name, balance) in [
        ("round_robin", Balance::RoundRobin),
        ("least_request", Balance::LeastRequest),
        ("ewma", Balance::Ewma),
    ] {
        let pool = pool(balance);
        group.bench_function(format!("route_10_rules+{name}"), |b| {
            let mut draw = 0u32;
            b.iter(|| {
                draw = (draw + 7_919) % mesh_config::schema::FULL_WEIGHT;
                let authority = black_box("reviews.ns.svc.cluster.local:9080");
                let index = config.service_for_authority(authority).unwrap();
                let view = View::new(&request, authority, 9080);
                let decision = config.route(index, &view, draw).unwrap();
                let endpoint = pool.pick(None).unwrap();
                black_box((decision.backend, endpoint.addr))
            });
        });
    }
    group.finish();
}

/// The reviews workload of bookinfo: productpage may read, reviews' own health checker may
/// probe, a debug header is forbidden to everyone.
fn inbound_config() -> Config {
    let policies = r#"
@id("bookinfo.mesh:40 allow productpage")
permit (principal == Mesh::Service::"bookinfo/productpage",
        action in [Mesh::Action::"GET", Mesh::Action::"HEAD"],
        resource == Mesh::Service::"bookinfo/reviews")
when { context.path like "/reviews/*" };

@id("bookinfo.mesh:41 allow health from namespace ops")
permit (principal in Mesh::Namespace::"ops", action == Mesh::Action::"GET",
        resource == Mesh::Service::"bookinfo/reviews")
when { context.path == "/health" };

@id("bookinfo.mesh:42 deny debug")
forbid (principal, action, resource == Mesh::Service::"bookinfo/reviews")
when { context.has_headers.contains("x-debug") };
"#;
    let config = json!({
        "version": 1,
        "mesh": {"name": "bookinfo", "trust_domain": "cluster.local"},
        "workload": {
            "service": "bookinfo/reviews",
            "identity": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
            "ports": [{"protocol": "http", "number": 9080}]
        },
        "inbound": {"mtls": "strict", "authz": {
            "kind": "cedar", "mode": "enforce", "policies": policies,
            "headers": ["x-debug"], "query": [], "patterns": []
        }},
        "outbound": {"egress": "deny", "services": []}
    });
    Config::from_json(config.to_string().as_bytes()).expect("valid bench config")
}

fn inbound_authorize(c: &mut Criterion) {
    let config = inbound_config();
    let trust_domain = &config.source().mesh.trust_domain;
    let id = mesh_identity::SpiffeId::parse("spiffe://cluster.local/ns/bookinfo/sa/productpage")
        .unwrap();
    let request = http::Request::builder()
        .uri("/reviews/1")
        .header("host", "reviews:9080")
        .header("accept", "application/json")
        .body(())
        .unwrap();
    let mut group = c.benchmark_group("inbound");
    // Later requests on a connection: the principal is already built.
    let caller = Caller::new(Some(id.clone()));
    group.bench_function("authorize", |b| {
        b.iter(|| {
            let view = View::new(&request, black_box("reviews:9080"), 9080);
            let decision = config.authorize(&view, &caller.peer(trust_domain));
            assert!(decision.decision == mesh_config::Verdict::Allow);
            black_box(decision.enforced)
        });
    });
    // The first request of a connection: the principal is built from the SPIFFE id.
    group.bench_function("authorize_first_request", |b| {
        b.iter(|| {
            let caller = Caller::new(Some(id.clone()));
            let view = View::new(&request, black_box("reviews:9080"), 9080);
            let decision = config.authorize(&view, &caller.peer(trust_domain));
            black_box(decision.enforced)
        });
    });
    group.finish();
}

fn inbound_rate_limit(c: &mut Criterion) {
    let mut value = serde_json::to_value(inbound_config().source()).unwrap();
    // Rates no iteration can exhaust: the decision and the take are measured, never a
    // refusal.
    value["inbound"]["rate_limits"] = json!([
        {"name": "all", "requests": 4_000_000_000u32, "period_us": 1_000_000,
         "burst": 1_000_000, "per_caller": false, "when": null},
        {"name": "reviews", "requests": 4_000_000_000u32, "period_us": 1_000_000,
         "burst": 1_000_000, "per_caller": true,
         "when": {"text": {"attr": "path", "op": "starts_with", "value": "/reviews"}}}
    ]);
    let config = Config::from_json(value.to_string().as_bytes()).unwrap();
    let limiters = Limiters::new(prometheus_client::metrics::family::Family::default());
    let resolved = limiters.resolve(&config.source().inbound.rate_limits);
    let request = http::Request::builder()
        .uri("/reviews/1")
        .header("host", "reviews:9080")
        .body(())
        .unwrap();
    let mut group = c.benchmark_group("inbound");
    group.bench_function("rate_limit_two_limits", |b| {
        let mut now_ns = 0u64;
        b.iter(|| {
            now_ns += 1_000;
            let view = View::new(&request, black_box("reviews:9080"), 9080);
            let caller = black_box("bookinfo/productpage");
            let applying = || config.rate_limits(&view, Some(caller)).map(|(i, _)| i);
            assert!(admit(&resolved, applying, caller, now_ns).is_ok());
        });
    });
    group.finish();
}

/// One hop's tracing, as a listener does it: the decision and `traceparent` on the
/// request, and the span finished when the response (body) is dropped.
fn tracing_per_request(c: &mut Criterion) {
    use std::sync::Arc;

    use mesh_agent::state::{LoadedConfig, Snapshot};
    use mesh_agent::trace::export::{Counters, Endpoint, Settings};
    use mesh_agent::trace::span::Kind;
    use mesh_agent::trace::{HopOf, Tracer, finish};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let snapshot = |milli: Option<u32>| {
        let mut value = json!({
            "version": 1,
            "mesh": {"name": "bench", "trust_domain": "cluster.local"},
            "workload": {"service": "ns/productpage",
                         "identity": "spiffe://cluster.local/ns/ns/sa/productpage", "ports": []},
            "inbound": {"mtls": "permissive", "authz": {"kind": "allow_all"}},
            "outbound": {"egress": "allow", "services": []}
        });
        if let Some(milli) = milli {
            value["mesh"]["telemetry"] = json!({"tracing_milli": milli, "access_log": "off"});
        }
        let loaded = LoadedConfig {
            config: Config::from_json(value.to_string().as_bytes()).unwrap(),
            hash: String::new(),
            loaded_at: std::time::SystemTime::now(),
        };
        Snapshot::new(Arc::new(loaded), Arc::default(), None, &Registry::default())
    };
    // Exports go nowhere (a refused connection); a full queue drops, as in production.
    let exporting = Tracer::default();
    let endpoint = Endpoint::parse("http://127.0.0.1:9").unwrap();
    exporting.start_export(Settings::new(endpoint, "bench".into()), Counters::default());
    let silent = Tracer::default();
    let hop = HopOf {
        kind: Kind::Client,
        direction: "outbound",
        peer: None,
    };
    let mut group = c.benchmark_group("tracing");
    // The same request and response without tracing: what the others add to.
    group.bench_function("baseline_request_and_response", |b| {
        b.iter(|| {
            let request = http::Request::builder()
                .uri("/reviews/1")
                .header("host", "reviews:9080")
                .body(mesh_agent::http::full(""))
                .unwrap();
            let response = http::Response::new(mesh_agent::http::full(""));
            drop(black_box(response));
            black_box(request)
        });
    });
    for (name, tracer, milli) in [
        ("no_telemetry_no_exporter", &silent, None),
        ("0%", &exporting, Some(0)),
        ("1%", &exporting, Some(1_000)),
        ("100%", &exporting, Some(100_000)),
    ] {
        let snapshot = snapshot(milli);
        group.bench_function(format!("hop_{name}"), |b| {
            b.iter(|| {
                let mut request = http::Request::builder()
                    .uri("/reviews/1")
                    .header("host", "reviews:9080")
                    .body(mesh_agent::http::full(""))
                    .unwrap();
                let span = tracer.begin(Some(&snapshot), &hop, black_box(&mut request));
                let response = http::Response::new(mesh_agent::http::full(""));
                drop(black_box(finish(span, response)));
                request
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    request_path,
    inbound_authorize,
    inbound_rate_limit,
    tracing_per_request
);
criterion_main!(benches);
