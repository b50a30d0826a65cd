//! Per-request decision cost: `Config::authorize` with 1, 100 and 1,000 Cedar policies
//! (target: p50 under 10 µs at 100 policies), and `Config::route` with 10 and 1,000 rules.
//! Configs are built programmatically with policies shaped like `meshc` output: principal,
//! action and resource constraints plus `when` conditions on `context.path` and headers.
//! Results and the machine they were measured on are in `agent/config/README.md`.

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
    }
    group.finish();
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
