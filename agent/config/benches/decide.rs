//! Per-request decision cost: `Config::authorize` for bookinfo's `reviews` (the policies
//! `meshc` generates for it, target p50 ≤ 3 µs) and with 1, 100 and 1,000 Cedar policies
//! (target: p50 ≤ 5 µs at 100 policies), and `Config::route` with 10 and 1,000 rules.
//! Configs are built programmatically with policies shaped like `meshc` output: principal,
//! action and resource constraints plus `when` conditions on `context.path` and headers.
//! Results are in `BENCHMARKS.md` (Authorization) and `agent/config/README.md`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup: a panic is a failure report"
)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_config::{Config, Peer, SimpleRequest, Verdict};
use serde_json::{Value, json};

/// `count` policies protecting `shop/cart`: per-caller permits with a method list and
/// a path glob and header test, per-namespace read permits, and a forbid every 10th.
fn policies(count: usize) -> String {
    let mut text = String::new();
    for i in 0..count {
        let line = i + 1;
        let ns = i % 7;
        let _ = match i % 10 {
            9 => writeln!(
                text,
                "@id(\"mesh.mesh:{line} deny debug {i}\")\n\
                 forbid (principal, action, resource == Mesh::Service::\"shop/cart\")\n\
                 when {{ context.has_headers.contains(\"x-debug\") && \
                 context.headers[\"x-debug\"] == \"{i}\" }};\n"
            ),
            4 => writeln!(
                text,
                "@id(\"mesh.mesh:{line} allow from namespace ns{ns}\")\n\
                 permit (principal in Mesh::Namespace::\"ns{ns}\", \
                 action in [Mesh::Action::\"GET\", Mesh::Action::\"HEAD\"], \
                 resource == Mesh::Service::\"shop/cart\")\n\
                 when {{ context.path like \"/internal/{i}/*\" }};\n"
            ),
            _ => writeln!(
                text,
                "@id(\"mesh.mesh:{line} allow from ns{ns}/svc{i}\")\n\
                 permit (principal == Mesh::Service::\"ns{ns}/svc{i}\", \
                 action in [Mesh::Action::\"GET\", Mesh::Action::\"POST\"], \
                 resource == Mesh::Service::\"shop/cart\")\n\
                 when {{ context.path like \"/api/v1/cart/*\" && \
                 context.headers[\"x-tenant\"] == \"tenant-{i}\" }};\n"
            ),
        };
    }
    text
}

/// What `meshc compile examples/bookinfo` emits for `reviews` (see
/// `meshc/tests/snapshots/cli_compile__compile-examples-bookinfo-reviews.json.snap`): an
/// allow for productpage's GETs and a deny of `x-debug: 1` from anyone.
const BOOKINFO_REVIEWS: &str = r#"@id("examples/bookinfo/bookinfo.mesh:80 allow from bookinfo/productpage")
permit (principal, action in [Mesh::Action::"GET"], resource == Mesh::Service::"bookinfo/reviews")
when { principal == Mesh::Service::"bookinfo/bookinfo-productpage" };

@id("examples/bookinfo/bookinfo.mesh:83 deny from any")
forbid (principal, action in [Mesh::Action::"GET", Mesh::Action::"HEAD", Mesh::Action::"POST", Mesh::Action::"PUT", Mesh::Action::"DELETE", Mesh::Action::"PATCH", Mesh::Action::"OPTIONS", Mesh::Action::"CONNECT", Mesh::Action::"TRACE"], resource == Mesh::Service::"bookinfo/reviews")
when { context.headers["x-debug"] == "1" };
"#;

fn bookinfo_reviews() -> Config {
    let value = json!({
        "version": 1,
        "mesh": { "name": "bookinfo", "trust_domain": "cluster.local" },
        "workload": {
            "service": "bookinfo/reviews",
            "identity": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
            "ports": [{ "protocol": "http", "number": 9080 }]
        },
        "inbound": { "mtls": "strict", "authz": {
            "kind": "cedar",
            "mode": "enforce",
            "policies": BOOKINFO_REVIEWS,
            "headers": ["x-debug"],
            "query": [],
            "patterns": []
        } },
        "outbound": { "egress": "allow", "services": [] }
    });
    Config::from_json(&serde_json::to_vec(&value).unwrap()).unwrap()
}

fn base(authz: Value, services: Vec<Value>) -> Config {
    let value = json!({
        "version": 1,
        "mesh": { "name": "bench", "trust_domain": "cluster.local" },
        "workload": {
            "service": "shop/cart",
            "identity": "spiffe://cluster.local/ns/shop/sa/cart",
            "ports": [{ "protocol": "http", "number": 8080 }]
        },
        "inbound": { "mtls": "strict", "authz": authz },
        "outbound": { "egress": "deny", "services": services }
    });
    Config::from_json(&serde_json::to_vec(&value).unwrap()).unwrap()
}

fn authz_config(count: usize) -> Config {
    base(
        json!({
            "kind": "cedar",
            "mode": "enforce",
            "policies": policies(count),
            "headers": ["x-debug", "x-tenant"],
            "query": [],
            "patterns": []
        }),
        Vec::new(),
    )
}

fn route_config(count: usize) -> Config {
    let rules: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "name": format!("rule-{i}"),
                "when": { "all": [
                    { "method": { "methods": ["GET", "POST"], "negated": false } },
                    { "text": { "attr": "path", "op": "starts_with", "value": format!("/api/v{i}/") } },
                    { "text": { "attr": { "header": "x-tenant" }, "op": "eq", "value": format!("tenant-{i}") } }
                ] },
                "backends": [
                    { "service": "shop/pricing", "subset": "v1", "weight_milli": 90_000 },
                    { "service": "shop/pricing", "subset": "v2", "weight_milli": 10_000 }
                ],
                "timeout_us": null,
                "retry": null,
                "mirrors": [],
                "fault": null,
                "set_headers": [],
                "remove_headers": [],
                "rewrite_prefix": null
            })
        })
        .collect();
    base(
        json!({ "kind": "allow_all" }),
        vec![json!({
            "service": "shop/pricing",
            "authorities": ["pricing"],
            "ports": [{ "protocol": "http", "number": 9090 }],
            "identity": "spiffe://cluster.local/ns/shop/sa/pricing",
            "labels": { "app": "pricing" },
            "subsets": [
                { "name": "v1", "labels": { "version": "v1" } },
                { "name": "v2", "labels": { "version": "v2" } }
            ],
            "balance": "round_robin",
            "timeout_us": 3_000_000,
            "retry": null,
            "rules": rules
        })],
    )
}

fn authorize_benchmark(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize");
    let config = bookinfo_reviews();
    let peer = Peer::from_spiffe_id(
        "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
        "cluster.local",
    );
    let request = SimpleRequest::new("GET", "/reviews/0", "reviews:9080")
        .header("end-user", "jason")
        .header("user-agent", "bench")
        .on_port(9080);
    let decision = config.authorize(&request, &peer);
    assert_eq!(decision.decision, Verdict::Allow, "{decision:?}");
    group.bench_function("bookinfo reviews", |b| {
        b.iter(|| config.authorize(black_box(&request), black_box(&peer)));
    });
    // Requests that differ in what the policies read (`x-debug`), more of them than the
    // decision memo keeps: every decision is made afresh.
    let distinct: Vec<SimpleRequest> = (0..DISTINCT)
        .map(|i| request.clone().header("x-debug", &format!("v{i}")))
        .collect();
    uncached(
        &mut group,
        "bookinfo reviews, uncached",
        &config,
        &distinct,
        &peer,
    );
    for count in [1, 100, 1_000] {
        let config = authz_config(count);
        // The caller permitted by the first policy, so every size decides `Allow`
        // after evaluating every policy whose scope matches.
        let peer = Peer::from_spiffe_id("spiffe://cluster.local/ns/ns0/sa/svc0", "cluster.local");
        let request = SimpleRequest::new("GET", "/api/v1/cart/items?page=2", "cart:8080")
            .header("x-tenant", "tenant-0")
            .header("user-agent", "bench");
        let decision = config.authorize(&request, &peer);
        assert_eq!(decision.decision, Verdict::Allow, "{decision:?}");
        assert!(decision.errors.is_empty(), "{decision:?}");
        group.bench_function(format!("{count} policies"), |b| {
            b.iter(|| config.authorize(black_box(&request), black_box(&peer)));
        });
        let distinct: Vec<SimpleRequest> = (0..DISTINCT)
            .map(|i| {
                SimpleRequest::new("GET", &format!("/api/v1/cart/items/{i}"), "cart:8080")
                    .header("x-tenant", "tenant-0")
                    .header("user-agent", "bench")
            })
            .collect();
        let name = format!("{count} policies, uncached");
        uncached(&mut group, &name, &config, &distinct, &peer);
    }
    group.finish();
}

/// More distinct requests than the decision memo keeps (4,096).
const DISTINCT: usize = 8_192;

/// `authorize` over `requests` in turn, so no decision is remembered from the last time.
fn uncached(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    config: &Config,
    requests: &[SimpleRequest],
    peer: &Peer,
) {
    let want = config.authorize(&requests[0], peer).decision;
    assert!(
        requests
            .iter()
            .all(|r| config.authorize(r, peer).decision == want)
    );
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            next = (next + 1) % requests.len();
            config.authorize(black_box(&requests[next]), black_box(peer))
        });
    });
}

fn route_benchmark(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for count in [10, 1_000] {
        let config = route_config(count);
        // The last rule matches: the worst case, every earlier rule is tried.
        let last = count - 1;
        let request = SimpleRequest::new("GET", &format!("/api/v{last}/items"), "pricing")
            .header("x-tenant", &format!("tenant-{last}"));
        let decision = config.route(0, &request, 95_000).unwrap();
        assert_eq!(decision.rule.unwrap().name, format!("rule-{last}"));
        assert_eq!(decision.backend.subset.as_deref(), Some("v2"));
        group.bench_function(format!("{count} rules"), |b| {
            b.iter(|| config.route(0, black_box(&request), black_box(95_000)));
        });
    }
    group.finish();
}

criterion_group!(benches, authorize_benchmark, route_benchmark);
criterion_main!(benches);
