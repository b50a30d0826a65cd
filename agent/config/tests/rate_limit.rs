//! Rate limits, connection limits and outlier ejection in the contract: which limits a
//! request counts against (`Config::rate_limits`, what both the agent and `meshc test`
//! call), and what the loader refuses.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::{Config, ConfigError, SimpleRequest};
use serde_json::{Value, json};

fn workload(rate_limits: Value, service_extra: Value) -> Value {
    let mut service = json!({
        "service": "shop/pricing",
        "authorities": ["pricing"],
        "ports": [{ "protocol": "http", "number": 9090 }],
        "identity": "spiffe://example.org/ns/shop/sa/pricing",
        "labels": { "app": "pricing" },
        "subsets": [],
        "balance": "round_robin",
        "timeout_us": null,
        "retry": null,
        "rules": []
    });
    if let Value::Object(extra) = service_extra {
        for (key, value) in extra {
            service[key] = value;
        }
    }
    json!({
        "version": 1,
        "mesh": { "name": "shop", "trust_domain": "example.org", "namespaces": ["shop"] },
        "workload": {
            "service": "shop/cart",
            "identity": "spiffe://example.org/ns/shop/sa/cart",
            "ports": [{ "protocol": "http", "number": 8080 }]
        },
        "inbound": {
            "mtls": "strict",
            "authz": { "kind": "allow_all" },
            "rate_limits": rate_limits
        },
        "outbound": { "egress": "allow", "services": [service] }
    })
}

fn load(value: &Value) -> Result<Config, ConfigError> {
    Config::from_json(&serde_json::to_vec(value).unwrap())
}

fn limits() -> Value {
    json!([
        { "name": "all", "requests": 100, "period_us": 1_000_000, "burst": 200,
          "per_caller": false, "when": null },
        { "name": "search", "requests": 10, "period_us": 1_000_000, "burst": 10,
          "per_caller": true,
          "when": { "text": { "attr": "path", "op": "starts_with", "value": "/search" } } },
        { "name": "not-frontend", "requests": 5, "period_us": 60_000_000, "burst": 5,
          "per_caller": false,
          "when": { "source": { "services": ["shop/frontend"], "negated": true } } }
    ])
}

fn applying(config: &Config, path: &str, caller: Option<&str>) -> Vec<String> {
    let request = SimpleRequest::new("GET", path, "cart");
    config
        .rate_limits(&request, caller)
        .map(|(index, limit)| format!("{index}:{}", limit.name))
        .collect()
}

#[test]
fn a_request_counts_against_every_limit_whose_condition_holds() {
    let config = load(&workload(limits(), json!({}))).unwrap();
    assert_eq!(applying(&config, "/cart", Some("shop/frontend")), ["0:all"]);
    assert_eq!(
        applying(&config, "/search?q=1", Some("shop/frontend")),
        ["0:all", "1:search"]
    );
    // `source` in a limit's condition is the caller, which varies per request.
    assert_eq!(
        applying(&config, "/cart", Some("shop/checkout")),
        ["0:all", "2:not-frontend"]
    );
    assert_eq!(
        applying(&config, "/search", None),
        ["0:all", "1:search", "2:not-frontend"]
    );
}

#[test]
fn configs_without_limits_load_and_serialize_as_before() {
    let mut value = workload(json!([]), json!({}));
    value["inbound"]
        .as_object_mut()
        .unwrap()
        .remove("rate_limits");
    let config = load(&value).unwrap();
    assert!(config.source().inbound.rate_limits.is_empty());
    let written = serde_json::to_value(config.source()).unwrap();
    assert_eq!(written, value, "empty limits are not written");
}

#[test]
fn bad_rate_limits_are_refused_where_they_are() {
    let cases = [
        (json!({ "requests": 0 }), "at least 1 request"),
        (json!({ "period_us": 0 }), "period"),
        (json!({ "burst": 0 }), "burst"),
        (json!({ "name": "" }), "needs a name"),
        (
            json!({ "when": { "text": { "attr": "path", "op": "matches", "value": "(" } } }),
            "invalid regex",
        ),
    ];
    for (change, words) in cases {
        let mut limits = limits();
        for (key, value) in change.as_object().unwrap() {
            limits[0][key] = value.clone();
        }
        let name = limits[0]["name"].as_str().unwrap().to_string();
        match load(&workload(limits, json!({}))) {
            Err(ConfigError::Invalid { at, problem }) => {
                assert_eq!(at, format!("inbound.rate_limits[0] ({name})"));
                assert!(problem.contains(words), "`{problem}` lacks `{words}`");
            }
            other => panic!("{change} accepted or wrong error: {other:?}"),
        }
    }
    let mut twice = limits();
    twice[2]["name"] = json!("search");
    match load(&workload(twice, json!({}))) {
        Err(ConfigError::Invalid { at, problem }) => {
            assert_eq!(at, "inbound.rate_limits[2] (search)");
            assert!(problem.contains("two rate limits"), "{problem}");
        }
        other => panic!("a repeated name was accepted: {other:?}"),
    }
}

#[test]
fn circuit_breaker_settings_load_and_bad_ones_are_refused() {
    let good = json!({
        "limits": { "max_connections": 100, "max_pending": 50, "max_requests": null },
        "outlier": { "consecutive_5xx": 5, "interval_us": 10_000_000,
                     "base_ejection_us": 30_000_000, "max_ejected_milli": 50_000 }
    });
    let config = load(&workload(json!([]), good.clone())).unwrap();
    let service = config.outbound(0).unwrap();
    assert_eq!(service.limits.unwrap().max_pending, Some(50));
    assert_eq!(service.outlier.unwrap().max_ejected_milli, 50_000);

    let cases = [
        (
            "/limits/max_requests",
            json!(0),
            "max_requests must be at least 1",
        ),
        ("/outlier/consecutive_5xx", json!(0), "consecutive_5xx"),
        ("/outlier/interval_us", json!(0), "longer than 0"),
        ("/outlier/max_ejected_milli", json!(100_001), "above 100%"),
    ];
    for (pointer, value, words) in cases {
        let mut extra = good.clone();
        *extra.pointer_mut(pointer).unwrap() = value;
        match load(&workload(json!([]), extra)) {
            Err(ConfigError::Invalid { at, problem }) => {
                let section = pointer.split('/').nth(1).unwrap();
                assert_eq!(at, format!("outbound.services[0] (shop/pricing).{section}"));
                assert!(problem.contains(words), "`{problem}` lacks `{words}`");
            }
            other => panic!("{pointer} accepted or wrong error: {other:?}"),
        }
    }
}
