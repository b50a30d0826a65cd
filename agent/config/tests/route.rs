//! Routing semantics through the public API (`Config::route`, `Config::rule_matches`):
//! rules are tried in order and the first match wins; every condition kind (method, path,
//! host, headers, query parameters, source, and their combinations); the fallback to the
//! whole service; exact split boundaries of the draw; and the timeout and retry in force.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::schema::{Backend, FULL_WEIGHT};
use mesh_config::{Config, SimpleRequest};
use serde_json::{Value, json};

fn retry(profile: &str, attempts: u32) -> Value {
    json!({
        "profile": profile,
        "attempts": attempts,
        "per_try_timeout_us": null,
        "on_status": [],
        "on_class": [5],
        "on_reset": true,
        "on_connect_failure": true,
        "on_refused_stream": false,
        "backoff": null,
        "budget": null
    })
}

/// A rule named `name` with condition `when` going to `backends` (`(subset, weight)`).
fn rule(name: &str, when: Value, backends: &[(Option<&str>, u32)]) -> Value {
    let backends: Vec<Value> = backends
        .iter()
        .map(|(subset, weight)| {
            json!({ "service": "shop/pricing", "subset": subset, "weight_milli": weight })
        })
        .collect();
    json!({
        "name": name,
        "when": when,
        "backends": backends,
        "timeout_us": null,
        "retry": null,
        "mirrors": [],
        "fault": null,
        "set_headers": [],
        "remove_headers": [],
        "rewrite_prefix": null
    })
}

/// The config of `shop/cart` calling `shop/pricing` (subsets v1, v2, v3) with `rules`,
/// a 3 s timeout and a 2-attempt `service-default` retry.
fn config(rules: Vec<Value>) -> Config {
    let value = json!({
        "version": 1,
        "mesh": { "name": "shop", "trust_domain": "example.org" },
        "workload": {
            "service": "shop/cart",
            "identity": "spiffe://example.org/ns/shop/sa/cart",
            "ports": [{ "protocol": "http", "number": 8080 }]
        },
        "inbound": { "mtls": "strict", "authz": { "kind": "allow_all" } },
        "outbound": {
            "egress": "deny",
            "services": [{
                "service": "shop/pricing",
                "authorities": ["pricing", "pricing.shop.svc.cluster.local"],
                "ports": [{ "protocol": "http", "number": 9090 }],
                "identity": "spiffe://example.org/ns/shop/sa/pricing",
                "labels": { "app": "pricing" },
                "subsets": [
                    { "name": "v1", "labels": { "version": "v1" } },
                    { "name": "v2", "labels": { "version": "v2" } },
                    { "name": "v3", "labels": { "version": "v3" } }
                ],
                "balance": "least_request",
                "timeout_us": 3_000_000,
                "retry": retry("service-default", 2),
                "rules": rules
            }]
        }
    });
    Config::from_json(&serde_json::to_vec(&value).unwrap()).unwrap()
}

/// A config with one rule `hit` under `when`, to test a single condition.
fn single(when: Value) -> Config {
    config(vec![rule("hit", when, &[(Some("v2"), FULL_WEIGHT)])])
}

fn get(path: &str) -> SimpleRequest {
    SimpleRequest::new("GET", path, "pricing:9090")
}

fn matches(config: &Config, request: &SimpleRequest) -> bool {
    let decision = config.route(0, request, 0).unwrap();
    let matched = decision.rule.map(|r| r.name.as_str()) == Some("hit");
    assert_eq!(config.rule_matches(0, request), [matched]);
    matched
}

fn text(attr: Value, op: &str, value: &str) -> Value {
    json!({ "text": { "attr": attr, "op": op, "value": value } })
}

fn subset<'c>(config: &'c Config, request: &SimpleRequest, draw: u32) -> Option<&'c str> {
    config
        .route(0, request, draw)
        .unwrap()
        .backend
        .subset
        .as_deref()
}

#[test]
fn the_first_matching_rule_wins() {
    let config = config(vec![
        rule(
            "beta",
            text(json!({ "header": "x-beta" }), "eq", "1"),
            &[(Some("v3"), FULL_WEIGHT)],
        ),
        rule(
            "api",
            text(json!("path"), "starts_with", "/api/"),
            &[(Some("v2"), FULL_WEIGHT)],
        ),
        rule("rest", Value::Null, &[(Some("v1"), FULL_WEIGHT)]),
        rule(
            "never",
            text(json!("path"), "starts_with", "/"),
            &[(Some("v2"), FULL_WEIGHT)],
        ),
    ]);
    let name = |request: &SimpleRequest| {
        config
            .route(0, request, 0)
            .unwrap()
            .rule
            .map(|r| r.name.clone())
    };
    let beta_api = get("/api/prices").header("X-Beta", "1");
    assert_eq!(name(&beta_api).as_deref(), Some("beta"));
    assert_eq!(subset(&config, &beta_api, 0), Some("v3"));
    assert_eq!(config.rule_matches(0, &beta_api), [true, true, true, true]);

    let api = get("/api/prices");
    assert_eq!(name(&api).as_deref(), Some("api"));
    assert_eq!(config.rule_matches(0, &api), [false, true, true, true]);

    // A rule without `when` matches everything left, so later rules never apply.
    let other = get("/other");
    assert_eq!(name(&other).as_deref(), Some("rest"));
    assert_eq!(subset(&config, &other, 0), Some("v1"));
    assert_eq!(config.rule_matches(0, &other), [false, false, true, true]);
}

#[test]
fn requests_matching_no_rule_go_to_the_whole_service() {
    let config = single(text(json!("path"), "eq", "/only"));
    for draw in [0, FULL_WEIGHT - 1, u32::MAX] {
        let decision = config.route(0, &get("/else"), draw).unwrap();
        assert!(decision.rule.is_none());
        assert_eq!(
            decision.backend,
            &Backend {
                service: "shop/pricing".into(),
                subset: None
            }
        );
        assert_eq!(decision.backends.len(), 1);
        assert_eq!(decision.backends[0].weight_milli, FULL_WEIGHT);
        assert_eq!(decision.service.service, "shop/pricing");
    }
    // A service without rules routes everything that way.
    let empty = config_without_rules();
    let decision = empty.route(0, &get("/x"), 7).unwrap();
    assert!(decision.rule.is_none());
    assert_eq!(decision.backend.subset, None);
    assert_eq!(empty.rule_matches(0, &get("/x")), Vec::<bool>::new());
}

fn config_without_rules() -> Config {
    config(Vec::new())
}

#[test]
fn an_unknown_service_index_routes_nowhere() {
    let config = single(Value::Null);
    assert!(config.route(1, &get("/"), 0).is_none());
    assert!(config.route(usize::MAX, &get("/"), 0).is_none());
    assert!(config.rule_matches(1, &get("/")).is_empty());
}

#[test]
fn authorities_name_services_with_or_without_port_and_case() {
    let config = single(Value::Null);
    for authority in [
        "pricing",
        "pricing:9090",
        "PRICING:9090",
        "pricing.shop.svc.cluster.local",
        "Pricing.Shop.svc.cluster.local:80",
    ] {
        assert_eq!(
            config.service_for_authority(authority),
            Some(0),
            "{authority}"
        );
    }
    for authority in ["pricing.shop", "ratings", "", "pricing.shop.svc"] {
        assert_eq!(config.service_for_authority(authority), None, "{authority}");
    }
    assert_eq!(config.service_by_key("shop/pricing"), Some(0));
    assert_eq!(config.service_by_key("shop/ratings"), None);
}

#[test]
fn header_conditions() {
    let h = || json!({ "header": "x-user" });
    let eq = single(text(h(), "eq", "alice"));
    assert!(matches(&eq, &get("/").header("x-user", "alice")));
    assert!(matches(&eq, &get("/").header("X-User", "alice")));
    assert!(!matches(&eq, &get("/").header("x-user", "Alice")));
    assert!(!matches(&eq, &get("/")));

    // An absent header reads as empty.
    let ne = single(text(h(), "ne", "alice"));
    assert!(matches(&ne, &get("/")));
    assert!(matches(&ne, &get("/").header("x-user", "bob")));
    assert!(!matches(&ne, &get("/").header("x-user", "alice")));
    let empty = single(text(h(), "eq", ""));
    assert!(matches(&empty, &get("/")));

    let prefix = single(text(h(), "starts_with", "adm"));
    assert!(matches(&prefix, &get("/").header("x-user", "admin")));
    assert!(!matches(&prefix, &get("/").header("x-user", "sysadm")));

    // Regexes search; anchors make them whole-value.
    let regex = single(text(h(), "matches", "^user-[0-9]+$"));
    assert!(matches(&regex, &get("/").header("x-user", "user-42")));
    assert!(!matches(&regex, &get("/").header("x-user", "user-42x")));
    let search = single(text(h(), "matches", "[0-9]"));
    assert!(matches(&search, &get("/").header("x-user", "abc1def")));

    // Globs match whole values.
    let glob = single(text(h(), "like", "*@example.org"));
    assert!(matches(&glob, &get("/").header("x-user", "a@example.org")));
    assert!(!matches(
        &glob,
        &get("/").header("x-user", "a@example.org.evil")
    ));

    let one_of = single(json!({ "text_in": { "attr": h(), "values": ["alice", "bob"] } }));
    assert!(matches(&one_of, &get("/").header("x-user", "bob")));
    assert!(!matches(&one_of, &get("/").header("x-user", "carol")));
    assert!(!matches(&one_of, &get("/")));

    let exists = single(json!({ "exists": { "attr": h() } }));
    assert!(matches(&exists, &get("/").header("x-user", "")));
    assert!(!matches(&exists, &get("/").header("x-other", "alice")));
}

#[test]
fn path_and_host_conditions() {
    let path = single(text(json!("path"), "like", "/cart/*"));
    assert!(matches(&path, &get("/cart/items")));
    assert!(matches(&path, &get("/cart/a/b?x=1")));
    assert!(!matches(&path, &get("/cart")));
    assert!(!matches(&path, &get("/carts/1")));

    // The path excludes the query.
    let exact = single(text(json!("path"), "eq", "/health"));
    assert!(matches(&exact, &get("/health?verbose=1")));
    assert!(!matches(&exact, &get("/health/")));

    // The host excludes the port and is lower case.
    let host = single(text(json!("host"), "eq", "pricing"));
    assert!(matches(
        &host,
        &SimpleRequest::new("GET", "/", "PRICING:9090")
    ));
    assert!(!matches(
        &host,
        &SimpleRequest::new("GET", "/", "pricing.shop")
    ));
}

#[test]
fn query_conditions_read_decoded_parameters() {
    let q = || json!({ "query": "q" });
    let eq = single(text(q(), "eq", "a b/c"));
    assert!(matches(&eq, &get("/search?x=1&q=a+b%2Fc")));
    assert!(!matches(&eq, &get("/search?q=a")));
    let exists = single(json!({ "exists": { "attr": q() } }));
    assert!(matches(&exists, &get("/search?q")));
    assert!(matches(&exists, &get("/search?q=")));
    assert!(!matches(&exists, &get("/search?qq=1")));
    let absent = single(text(q(), "eq", ""));
    assert!(matches(&absent, &get("/search")));
}

#[test]
fn method_conditions() {
    let reads = single(json!({ "method": { "methods": ["GET", "HEAD"], "negated": false } }));
    let writes = single(json!({ "method": { "methods": ["GET", "HEAD"], "negated": true } }));
    let request = |m: &str| SimpleRequest::new(m, "/", "pricing");
    for (method, read) in [
        ("GET", true),
        ("head", true),
        ("POST", false),
        ("DELETE", false),
        ("TRACE", false),
        ("PROPFIND", false),
    ] {
        assert_eq!(matches(&reads, &request(method)), read, "{method}");
        // The negation holds for every other method, including ones the mesh does not
        // name.
        assert_eq!(matches(&writes, &request(method)), !read, "not {method}");
    }
}

#[test]
fn source_conditions_are_about_this_workload() {
    // On the outbound side the caller is this workload (`shop/cart`).
    let me =
        single(json!({ "source": { "services": ["shop/cart", "ops/audit"], "negated": false } }));
    let not_me = single(json!({ "source": { "services": ["shop/cart"], "negated": true } }));
    let others = single(json!({ "source": { "services": ["ops/audit"], "negated": false } }));
    assert!(matches(&me, &get("/")));
    assert!(!matches(&not_me, &get("/")));
    assert!(!matches(&others, &get("/")));
}

#[test]
fn combinations() {
    let condition = json!({ "all": [
        { "method": { "methods": ["POST"], "negated": false } },
        { "any": [
            text(json!("path"), "starts_with", "/admin"),
            { "exists": { "attr": { "header": "x-admin" } } }
        ] },
        { "not": text(json!({ "header": "x-env" }), "eq", "prod") }
    ] });
    let config = single(condition);
    let post = |path: &str| SimpleRequest::new("POST", path, "pricing");
    assert!(matches(&config, &post("/admin/users")));
    assert!(matches(&config, &post("/x").header("x-admin", "1")));
    assert!(!matches(&config, &post("/x")));
    assert!(!matches(&config, &get("/admin/users")));
    assert!(!matches(&config, &post("/admin").header("x-env", "prod")));
    // Empty combinations: `all` of nothing holds, `any` of nothing does not.
    assert!(matches(&single(json!({ "all": [] })), &get("/")));
    assert!(!matches(&single(json!({ "any": [] })), &get("/")));
}

#[test]
fn split_draws_pick_backends_at_exact_boundaries() {
    let config = config(vec![rule(
        "rollout",
        Value::Null,
        &[(Some("v1"), 90_000), (Some("v2"), 9_999), (Some("v3"), 1)],
    )]);
    let request = get("/");
    for (draw, expected) in [
        (0, "v1"),
        (89_999, "v1"),
        (90_000, "v2"),
        (99_998, "v2"),
        (99_999, "v3"),
        // Draws at or above FULL_WEIGHT wrap around.
        (FULL_WEIGHT, "v1"),
        (FULL_WEIGHT + 90_000, "v2"),
        // 4_294_967_295 % 100_000 = 67_295.
        (u32::MAX, "v1"),
    ] {
        assert_eq!(
            subset(&config, &request, draw),
            Some(expected),
            "draw {draw}"
        );
    }
    let decision = config.route(0, &request, 0).unwrap();
    assert_eq!(decision.backends.len(), 3);
    assert_eq!(decision.rule.unwrap().name, "rollout");
}

#[test]
fn uniform_draws_give_exactly_the_configured_weights() {
    let config = config(vec![rule(
        "split",
        Value::Null,
        &[
            (Some("v1"), 33_333),
            (Some("v2"), 0),
            (None, 33_334),
            (Some("v3"), 33_333),
        ],
    )]);
    let request = get("/");
    let mut counts = [0u32; 4];
    for draw in 0..FULL_WEIGHT {
        let index = match subset(&config, &request, draw) {
            Some("v1") => 0,
            Some("v2") => 1,
            None => 2,
            Some("v3") => 3,
            Some(other) => panic!("unexpected subset {other}"),
        };
        counts[index] += 1;
    }
    assert_eq!(counts, [33_333, 0, 33_334, 33_333]);
    // A zero-weight backend is skipped at its boundary.
    assert_eq!(subset(&config, &request, 33_332), Some("v1"));
    assert_eq!(subset(&config, &request, 33_333), None);
}

#[test]
fn timeouts_and_retries_pass_through_with_rule_overrides() {
    let mut own = rule(
        "own",
        text(json!("path"), "eq", "/own"),
        &[(Some("v1"), FULL_WEIGHT)],
    );
    own["timeout_us"] = json!(1_000_000);
    own["retry"] = retry("careful", 5);
    let inherit = rule(
        "inherit",
        text(json!("path"), "eq", "/inherit"),
        &[(Some("v2"), FULL_WEIGHT)],
    );
    let config = config(vec![own, inherit]);

    let d = config.route(0, &get("/own"), 0).unwrap();
    assert_eq!(d.timeout_us, Some(1_000_000));
    let r = d.retry.unwrap();
    assert_eq!((r.profile.as_str(), r.attempts), ("careful", 5));

    let d = config.route(0, &get("/inherit"), 0).unwrap();
    assert_eq!(d.timeout_us, Some(3_000_000));
    let r = d.retry.unwrap();
    assert_eq!((r.profile.as_str(), r.attempts), ("service-default", 2));
    assert_eq!(r.on_class, [5]);

    // The fallback uses the service's settings too.
    let d = config.route(0, &get("/neither"), 0).unwrap();
    assert!(d.rule.is_none());
    assert_eq!(d.timeout_us, Some(3_000_000));
    assert_eq!(d.retry.unwrap().profile, "service-default");
}

#[test]
fn hosts_of_mesh_namespaces_that_are_not_outbound_services_are_forbidden() {
    let mut value = serde_json::to_value(config(Vec::new()).source()).unwrap();
    value["mesh"]["namespaces"] = json!(["shop", "billing"]);
    let config = Config::from_json(&serde_json::to_vec(&value).unwrap()).unwrap();
    for (authority, expected) in [
        // Outbound services are never forbidden, in any spelling.
        ("pricing", None),
        ("pricing:9090", None),
        ("pricing.shop.svc.cluster.local", None),
        // Bare names are in the workload's own namespace.
        ("inventory", Some("shop")),
        ("Inventory:8080", Some("shop")),
        ("invoices.billing", Some("billing")),
        ("invoices.billing.svc", Some("billing")),
        ("invoices.billing.svc.cluster.local:80", Some("billing")),
        // Not the mesh's: external hosts and other namespaces.
        ("localhost", None),
        ("localhost:8080", None),
        ("example.com", None),
        ("api.example.com", None),
        ("x.other.svc.cluster.local", None),
        ("10.0.0.1:80", None),
        ("[::1]:80", None),
    ] {
        assert_eq!(
            config.forbidden_mesh_namespace(authority),
            expected,
            "{authority}"
        );
    }

    // Configs without the list (older compilers) treat every unknown host as external.
    assert_eq!(
        self::config(Vec::new()).forbidden_mesh_namespace("inventory"),
        None
    );
}

/// `source` conditions decide alone.
fn source_is(service: &str) -> Value {
    json!({ "source": { "services": [service], "negated": false } })
}

#[test]
fn connections_take_the_first_rule_decidable_without_a_request() {
    let config = config(vec![
        rule(
            "by-header",
            text(json!({ "header": "x-beta" }), "eq", "1"),
            &[(Some("v2"), FULL_WEIGHT)],
        ),
        rule(
            "other-caller",
            source_is("shop/admin"),
            &[(Some("v1"), FULL_WEIGHT)],
        ),
        rule(
            "this-caller",
            json!({ "all": [source_is("shop/cart"), { "not": source_is("shop/admin") }] }),
            &[(Some("v1"), 50_000), (Some("v3"), 50_000)],
        ),
    ]);
    let low = config.route_connection(0, 0).unwrap();
    assert_eq!(low.rule.map(|r| r.name.as_str()), Some("this-caller"));
    assert_eq!(low.backend.subset.as_deref(), Some("v1"));
    let high = config.route_connection(0, FULL_WEIGHT - 1).unwrap();
    assert_eq!(high.backend.subset.as_deref(), Some("v3"));
    assert_eq!(high.retry, None, "connections are never retried");
    assert_eq!(high.timeout_us, None, "the request timeout is HTTP's");
}

#[test]
fn a_rule_mixing_l7_and_source_conditions_is_for_http_only() {
    let config = config(vec![rule(
        "mixed",
        json!({ "all": [source_is("shop/cart"), text(json!("path"), "eq", "/x")] }),
        &[(Some("v2"), FULL_WEIGHT)],
    )]);
    let decision = config.route_connection(0, 0).unwrap();
    assert!(decision.rule.is_none(), "{:?}", decision.rule);
    assert_eq!(
        decision.backend,
        &Backend {
            service: "shop/pricing".into(),
            subset: None
        }
    );
    assert!(config.route_connection(1, 0).is_none(), "out of range");
    // Settled by its `source` part whatever the path: it applies.
    let settled = config_with_any();
    let decision = settled.route_connection(0, 0).unwrap();
    assert_eq!(decision.rule.map(|r| r.name.as_str()), Some("settled"));
}

fn config_with_any() -> Config {
    config(vec![rule(
        "settled",
        json!({ "any": [source_is("shop/cart"), text(json!("path"), "eq", "/x")] }),
        &[(Some("v2"), FULL_WEIGHT)],
    )])
}
