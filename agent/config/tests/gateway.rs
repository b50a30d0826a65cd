//! Gateways in the contract: which host entry serves a request's host, which rule routes
//! it, which certificate an SNI name gets, telemetry settings, and what the loader
//! refuses.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::{Config, ConfigError, SimpleRequest};
use serde_json::{Value, json};

fn service(name: &str, subsets: &[&str]) -> Value {
    json!({
        "service": format!("shop/{name}"),
        "authorities": [name],
        "ports": [{ "protocol": "http", "number": 8080 }],
        "identity": format!("spiffe://example.org/ns/shop/sa/{name}"),
        "labels": { "app": name },
        "subsets": subsets.iter().map(|s| json!({ "name": s, "labels": { "version": s } }))
            .collect::<Vec<_>>(),
        "balance": "round_robin",
        "timeout_us": 3_000_000,
        "retry": null,
        "rules": []
    })
}

fn rule(name: &str, when: Value, backends: Value) -> Value {
    json!({
        "name": name, "when": when, "backends": backends, "timeout_us": null,
        "retry": null, "mirrors": [], "fault": null, "set_headers": [],
        "remove_headers": [], "rewrite_prefix": null
    })
}

fn to(service: &str, subset: Option<&str>, weight: u32) -> Value {
    json!({ "service": service, "subset": subset, "weight_milli": weight })
}

fn gateway_config(gateway: Value) -> Value {
    json!({
        "version": 1,
        "mesh": {
            "name": "shop", "trust_domain": "example.org", "namespaces": ["shop"],
            "telemetry": { "tracing_milli": 10_000, "access_log": "json" }
        },
        "workload": {
            "service": "shop/public",
            "identity": "spiffe://example.org/ns/shop/sa/ingress",
            "ports": []
        },
        "inbound": { "mtls": "strict", "authz": { "kind": "deny_all" } },
        "outbound": {
            "egress": "deny",
            "services": [service("frontend", &[]), service("catalog", &["v1", "v2"])]
        },
        "gateway": gateway
    })
}

fn gateway() -> Value {
    json!({
        "name": "public",
        "listeners": [
            { "port": 8443, "tls": { "cert": "/certs/public.pem", "key": "/certs/public-key.pem" } },
            { "port": 8080, "tls": null }
        ],
        "hosts": [
            {
                "host": "shop.example.com",
                "rules": [
                    rule("api",
                         json!({ "text": { "attr": "path", "op": "starts_with", "value": "/api" } }),
                         json!([to("shop/frontend", None, 100_000)])),
                    rule("rest", Value::Null,
                         json!([to("shop/catalog", Some("v1"), 90_000),
                                to("shop/catalog", Some("v2"), 10_000)]))
                ]
            },
            {
                "host": "*.example.com",
                "tls": { "cert": "/certs/wild.pem", "key": "/certs/wild-key.pem" },
                "rules": [rule("all", Value::Null, json!([to("shop/catalog", None, 100_000)]))]
            },
            {
                "host": "*.eu.example.com",
                "rules": [rule("eu", Value::Null, json!([to("shop/frontend", None, 100_000)]))]
            },
            {
                "host": "admin.example.com",
                "rules": [rule("only-get", json!({ "method": { "methods": ["GET"], "negated": false } }),
                               json!([to("shop/frontend", None, 100_000)]))]
            }
        ]
    })
}

fn load(value: &Value) -> Result<Config, ConfigError> {
    Config::from_json(&serde_json::to_vec(value).unwrap())
}

fn refusal(value: &Value) -> String {
    match load(value) {
        Ok(_) => format!("accepted: {value}"),
        Err(e) => e.to_string(),
    }
}

/// `(host entry, rule, backend service, subset)` for a request, or `None` for a 404.
fn routed(config: &Config, method: &str, path: &str, host: &str, draw: u32) -> Option<String> {
    let index = config.gateway_host(host)?;
    let request = SimpleRequest::new(method, path, host);
    let decision = config.gateway_route(index, &request, draw)?;
    // The decision resolves again from its key, as the agent's later layers do.
    let again = config.resolve(decision.key).unwrap();
    assert_eq!(again.backend, decision.backend);
    Some(format!(
        "{}:{}:{}{}",
        config.gateway().unwrap().hosts[index].host,
        decision.rule.unwrap().name,
        decision.backend.service,
        decision
            .backend
            .subset
            .as_deref()
            .map_or(String::new(), |s| format!(".{s}")),
    ))
}

#[test]
fn a_request_is_routed_by_its_host_then_by_the_first_matching_rule() {
    let config = load(&gateway_config(gateway())).unwrap();
    assert_eq!(
        routed(&config, "GET", "/api/items", "shop.example.com", 0).as_deref(),
        Some("shop.example.com:api:shop/frontend")
    );
    assert_eq!(
        routed(&config, "GET", "/", "SHOP.example.com:8443", 0).as_deref(),
        Some("shop.example.com:rest:shop/catalog.v1")
    );
    assert_eq!(
        routed(&config, "GET", "/", "shop.example.com", 95_000).as_deref(),
        Some("shop.example.com:rest:shop/catalog.v2")
    );
}

#[test]
fn exact_hosts_beat_wildcards_and_longer_wildcards_beat_shorter() {
    let config = load(&gateway_config(gateway())).unwrap();
    assert_eq!(
        routed(&config, "GET", "/", "a.example.com", 0).as_deref(),
        Some("*.example.com:all:shop/catalog")
    );
    assert_eq!(
        routed(&config, "GET", "/", "a.b.example.com", 0).as_deref(),
        Some("*.example.com:all:shop/catalog")
    );
    assert_eq!(
        routed(&config, "GET", "/", "x.eu.example.com", 0).as_deref(),
        Some("*.eu.example.com:eu:shop/frontend")
    );
    // A wildcard needs at least one label in front of its suffix.
    assert_eq!(routed(&config, "GET", "/", "example.com", 0), None);
    assert_eq!(routed(&config, "GET", "/", "shop.example.org", 0), None);
}

#[test]
fn a_request_no_rule_matches_is_not_routed() {
    let config = load(&gateway_config(gateway())).unwrap();
    assert_eq!(
        routed(&config, "GET", "/", "admin.example.com", 0).as_deref(),
        Some("admin.example.com:only-get:shop/frontend")
    );
    assert_eq!(routed(&config, "POST", "/", "admin.example.com", 0), None);
    assert_eq!(
        config.gateway_rule_matches(3, &SimpleRequest::new("POST", "/", "admin.example.com")),
        [false]
    );
}

#[test]
fn a_star_host_takes_every_host_nothing_else_names() {
    let mut value = gateway_config(gateway());
    value["gateway"]["hosts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "host": "*", "rules": [rule("any", Value::Null,
            json!([to("shop/frontend", None, 100_000)]))] }));
    let config = load(&value).unwrap();
    assert_eq!(
        routed(&config, "GET", "/", "10.0.0.1:8080", 0).as_deref(),
        Some("*:any:shop/frontend")
    );
    assert_eq!(
        routed(&config, "GET", "/", "shop.example.com", 0).as_deref(),
        Some("shop.example.com:rest:shop/catalog.v1")
    );
}

#[test]
fn a_gateway_rule_without_timeout_takes_the_services() {
    let config = load(&gateway_config(gateway())).unwrap();
    let index = config.gateway_host("shop.example.com").unwrap();
    let request = SimpleRequest::new("GET", "/api", "shop.example.com");
    let decision = config.gateway_route(index, &request, 0).unwrap();
    assert_eq!(decision.timeout_us, Some(3_000_000));
    assert_eq!(decision.service.service, "shop/frontend");
}

#[test]
fn sni_picks_the_hosts_own_certificate_else_the_listeners() {
    let config = load(&gateway_config(gateway())).unwrap();
    let cert = |port, sni| {
        config
            .gateway_certificate(port, sni)
            .map(|t| t.cert.clone())
    };
    assert_eq!(
        cert(8443, Some("shop.example.com")).as_deref(),
        Some("/certs/public.pem")
    );
    assert_eq!(
        cert(8443, Some("a.example.com")).as_deref(),
        Some("/certs/wild.pem")
    );
    assert_eq!(
        cert(8443, Some("unknown.org")).as_deref(),
        Some("/certs/public.pem")
    );
    assert_eq!(cert(8443, None).as_deref(), Some("/certs/public.pem"));
    // A plain listener serves no certificate, nor does an unknown port.
    assert_eq!(cert(8080, Some("shop.example.com")), None);
    assert_eq!(cert(9999, None), None);
}

#[test]
fn a_sidecar_config_has_no_gateway() {
    let mut value = gateway_config(gateway());
    value.as_object_mut().unwrap().remove("gateway");
    let config = load(&value).unwrap();
    assert!(config.gateway().is_none());
    assert_eq!(config.gateway_host("shop.example.com"), None);
    let telemetry = config.source().mesh.telemetry.unwrap();
    assert_eq!(telemetry.tracing_milli, 10_000);
}

/// A change to the gateway section of a good config.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn the_loader_refuses_broken_gateways() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no listener",
            Box::new(|g| g["listeners"] = json!([])),
            "needs a listener",
        ),
        (
            "port 0",
            Box::new(|g| g["listeners"][1]["port"] = json!(0)),
            "port 0",
        ),
        (
            "same port",
            Box::new(|g| g["listeners"][1]["port"] = json!(8443)),
            "two listeners",
        ),
        (
            "empty key",
            Box::new(|g| g["listeners"][0]["tls"]["key"] = json!("")),
            "key file",
        ),
        (
            "no name",
            Box::new(|g| g["name"] = json!("")),
            "needs a name",
        ),
        (
            "bad host",
            Box::new(|g| g["hosts"][0]["host"] = json!("shop example")),
            "not a host",
        ),
        (
            "bad wildcard",
            Box::new(|g| g["hosts"][1]["host"] = json!("*.")),
            "not a host",
        ),
        (
            "inner star",
            Box::new(|g| g["hosts"][1]["host"] = json!("a.*.com")),
            "not a host",
        ),
        (
            "twice",
            Box::new(|g| g["hosts"][3]["host"] = json!("SHOP.example.com")),
            "listed twice",
        ),
        (
            "unknown service",
            Box::new(|g| g["hosts"][1]["rules"][0]["backends"][0]["service"] = json!("shop/nope")),
            "not a service of `outbound.services`",
        ),
        (
            "unknown subset",
            Box::new(|g| g["hosts"][1]["rules"][0]["backends"][0]["subset"] = json!("v9")),
            "unknown subset `v9`",
        ),
        (
            "weights",
            Box::new(|g| g["hosts"][1]["rules"][0]["backends"][0]["weight_milli"] = json!(50_000)),
            "add up to 50000",
        ),
        (
            "bad regex",
            Box::new(|g| {
                g["hosts"][0]["rules"][0]["when"] =
                    json!({ "text": { "attr": "path", "op": "matches", "value": "(" } })
            }),
            "invalid regex",
        ),
    ];
    for (what, edit, expected) in cases {
        let mut value = gateway_config(gateway());
        edit(&mut value["gateway"]);
        let problem = refusal(&value);
        assert!(problem.contains(expected), "{what}: {problem}");
        assert!(
            problem.contains("gateway."),
            "{what} names where: {problem}"
        );
    }
}

#[test]
fn the_loader_refuses_tracing_above_everything() {
    let mut value = gateway_config(gateway());
    value["mesh"]["telemetry"]["tracing_milli"] = json!(100_001);
    assert!(refusal(&value).contains("mesh.telemetry.tracing_milli"));
    value["mesh"]["telemetry"] = json!({ "tracing_milli": 0, "access_log": "xml" });
    assert!(refusal(&value).contains("not valid JSON"));
}
