//! What `Config::from_json` and `Config::new` refuse: every rejection path of the loader,
//! each asserting the `ConfigError` variant, where it points (`at`), and that its message
//! names the offending value. Boundary values that must still load are checked too, so
//! the checks are neither too loose nor too strict.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::schema::{FULL_WEIGHT, WorkloadConfig};
use mesh_config::{Config, ConfigError};
use serde_json::{Value, json};

/// A small valid config: Cedar authorization with a header and a pattern, and one
/// outbound service with two subsets and two rules (a `to` and a split).
fn valid() -> Value {
    json!({
        "version": 1,
        "mesh": { "name": "shop", "trust_domain": "example.org" },
        "workload": {
            "service": "shop/cart",
            "identity": "spiffe://example.org/ns/shop/sa/cart-sa",
            "ports": [{ "protocol": "http", "number": 8080 }]
        },
        "inbound": {
            "mtls": "strict",
            "authz": {
                "kind": "cedar",
                "mode": "enforce",
                "policies": "@id(\"shop.mesh:10 allow frontend\")\npermit (principal == Mesh::Service::\"shop/frontend\", action, resource);\n",
                "headers": ["x-debug"],
                "query": ["page"],
                "patterns": [{ "key": "m0", "attr": "path", "regex": "^/cart/[0-9]+$" }]
            }
        },
        "outbound": {
            "egress": "allow",
            "services": [{
                "service": "shop/pricing",
                "authorities": ["pricing", "pricing.shop.svc.cluster.local"],
                "ports": [{ "protocol": "http", "number": 9090 }],
                "identity": "spiffe://example.org/ns/shop/sa/pricing",
                "labels": { "app": "pricing" },
                "subsets": [
                    { "name": "v1", "labels": { "version": "v1" } },
                    { "name": "v2", "labels": { "version": "v2" } }
                ],
                "balance": "round_robin",
                "timeout_us": 3_000_000,
                "retry": null,
                "rules": [
                    {
                        "name": "beta",
                        "when": { "text": { "attr": { "header": "x-beta" }, "op": "eq", "value": "1" } },
                        "backends": [{ "service": "shop/pricing", "subset": "v2", "weight_milli": 100_000 }],
                        "timeout_us": null,
                        "retry": null,
                        "mirrors": [],
                        "fault": null,
                        "set_headers": [],
                        "remove_headers": [],
                        "rewrite_prefix": null
                    },
                    {
                        "name": "rollout",
                        "when": null,
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
                    }
                ]
            }]
        }
    })
}

fn retry() -> Value {
    json!({
        "profile": "inline",
        "attempts": 3,
        "per_try_timeout_us": 250_000,
        "on_status": [503],
        "on_class": [5],
        "on_reset": true,
        "on_connect_failure": true,
        "on_refused_stream": false,
        "backoff": { "base_us": 25_000, "max_us": 250_000 },
        "budget": { "ratio_milli": 20_000, "min_per_second": 10.0 }
    })
}

fn load(config: &Value) -> Result<Config, ConfigError> {
    Config::from_json(&serde_json::to_vec(config).unwrap())
}

/// `config` with the value at JSON pointer `path` replaced.
fn with(path: &str, value: Value) -> Value {
    let mut config = valid();
    *config
        .pointer_mut(path)
        .unwrap_or_else(|| panic!("no `{path}` in the valid config")) = value;
    config
}

/// The `Invalid` error of a config that must be refused, as (at, problem, display).
fn refused(config: &Value) -> (String, String, String) {
    match load(config) {
        Ok(_) => panic!("accepted an invalid config"),
        Err(ConfigError::Invalid { at, problem }) => {
            let display = ConfigError::Invalid {
                at: at.clone(),
                problem: problem.clone(),
            }
            .to_string();
            assert_eq!(display, format!("{at}: {problem}"));
            (at, problem, display)
        }
        Err(other) => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

/// Asserts `config` is refused at `at` with a problem containing every one of `words`.
fn assert_refused(config: &Value, at: &str, words: &[&str]) {
    let (found_at, problem, display) = refused(config);
    assert_eq!(found_at, at, "wrong location in: {display}");
    for word in words {
        assert!(
            problem.contains(word),
            "`{display}` should mention `{word}`"
        );
    }
}

const RULE0: &str = "outbound.services[0] (shop/pricing).rules[0] (beta)";
const RULE1: &str = "outbound.services[0] (shop/pricing).rules[1] (rollout)";
const SERVICE0: &str = "outbound.services[0] (shop/pricing)";

#[test]
fn the_valid_config_loads_and_keeps_its_source() {
    let config = load(&valid()).unwrap();
    let expected: WorkloadConfig = serde_json::from_value(valid()).unwrap();
    assert_eq!(config.source(), &expected);
    assert_eq!(config.service_by_key("shop/pricing"), Some(0));
    assert_eq!(config.service_for_authority("Pricing:9090"), Some(0));
    assert_eq!(config.service_for_authority("ratings"), None);
    // `new` and `from_json` agree.
    assert!(Config::new(expected).is_ok());
}

// --- Shape and version -----------------------------------------------------------------

#[test]
fn malformed_json_is_a_json_error() {
    for bytes in [&b"{"[..], b"", b"[1, 2]", b"{\"version\": 1,}"] {
        match Config::from_json(bytes) {
            Err(error @ ConfigError::Json(_)) => {
                let message = error.to_string();
                assert!(
                    message.starts_with("config is not valid JSON for schema version 1: "),
                    "{message}"
                );
            }
            other => panic!("expected a JSON error for {bytes:?}, got {other:?}"),
        }
    }
}

#[test]
fn unknown_and_missing_fields_are_json_errors_naming_the_field() {
    let mut unknown = valid();
    unknown["workload"]["replicas"] = json!(3);
    let mut missing = valid();
    missing.as_object_mut().unwrap().remove("outbound");
    let mut wrong_type = valid();
    wrong_type["outbound"]["services"][0]["rules"][0]["backends"][0]["weight_milli"] = json!(-1);
    let mut bad_kind = valid();
    bad_kind["inbound"]["authz"]["kind"] = json!("opa");
    for (config, word) in [
        (unknown, "replicas"),
        (missing, "outbound"),
        (wrong_type, "-1"),
        (bad_kind, "opa"),
    ] {
        match load(&config) {
            Err(error @ ConfigError::Json(_)) => {
                assert!(error.to_string().contains(word), "{error} lacks `{word}`");
            }
            other => panic!("expected a JSON error mentioning `{word}`, got {other:?}"),
        }
    }
}

#[test]
fn other_versions_are_refused() {
    for version in [0, 2, 99] {
        match load(&with("/version", json!(version))) {
            Err(error @ ConfigError::Version { found }) => {
                assert_eq!(found, version);
                assert_eq!(
                    error.to_string(),
                    format!(
                        "config version {version} is not supported (this agent reads version 1)"
                    )
                );
            }
            other => panic!("expected a version error, got {other:?}"),
        }
    }
}

// --- The workload ----------------------------------------------------------------------

#[test]
fn the_workload_service_must_be_namespace_slash_name() {
    for key in ["cart", "", "/cart", "shop/", "shop/cart/extra"] {
        assert_refused(
            &with("/workload/service", json!(key)),
            "workload.service",
            &[&format!("`{key}`"), "namespace/name"],
        );
    }
}

#[test]
fn the_workload_identity_must_be_a_spiffe_id_of_the_mesh() {
    for id in [
        "cart",
        "https://example.org/ns/shop/sa/cart",
        "spiffe://example.org/cart",
        "spiffe://example.org/ns/shop/sa/",
        "spiffe://example.org/ns/shop/sa/cart/x",
        "spiffe:///ns/shop/sa/cart",
    ] {
        assert_refused(
            &with("/workload/identity", json!(id)),
            "workload.identity",
            &[&format!("`{id}`"), "SPIFFE id"],
        );
    }
    assert_refused(
        &with(
            "/workload/identity",
            json!("spiffe://other.org/ns/shop/sa/cart-sa"),
        ),
        "workload.identity",
        &["spiffe://other.org/ns/shop/sa/cart-sa", "`example.org`"],
    );
}

#[test]
fn identities_are_held_to_the_parser_that_reads_certificates() {
    // These used to pass validation (the config split ids more loosely than
    // `mesh-identity` reads them from certificates), so a workload could load a config
    // naming a peer it could never recognise. Now both use `mesh_vocab::SpiffeId`.
    for (id, why) in [
        (
            "spiffe://Example.org/ns/shop/sa/cart-sa",
            "the trust domain holds 'E'",
        ),
        (
            "spiffe://example.org:8443/ns/shop/sa/cart-sa",
            "the trust domain holds ':'",
        ),
        ("spiffe://example.org/ns/shop/sa/cart sa", "holds ' '"),
        ("spiffe://example.org/ns/../sa/cart-sa", "a \"..\" segment"),
        ("spiffe://example.org/ns/shop/sa/cart%2Dsa", "holds '%'"),
    ] {
        assert!(
            mesh_config::SpiffeId::parse(id).is_err(),
            "the agent refuses {id}"
        );
        assert_refused(
            &with("/workload/identity", json!(id)),
            "workload.identity",
            &[&format!("`{id}`"), "SPIFFE id", why],
        );
        assert_refused(
            &with("/outbound/services/0/identity", json!(id)),
            "outbound.services[0] (shop/pricing).identity",
            &[&format!("`{id}`"), why],
        );
    }
}

// --- Outbound services -----------------------------------------------------------------

#[test]
fn outbound_service_keys_and_identities_are_checked() {
    assert_refused(
        &with("/outbound/services/0/service", json!("pricing")),
        "outbound.services[0] (pricing).service",
        &["`pricing`", "namespace/name"],
    );
    assert_refused(
        &with("/outbound/services/0/identity", json!("pricing")),
        "outbound.services[0] (shop/pricing).identity",
        &["`pricing`", "SPIFFE id"],
    );
}

#[test]
fn a_service_listed_twice_is_refused() {
    let mut config = valid();
    let mut twin = config["outbound"]["services"][0].clone();
    twin["authorities"] = json!(["pricing-twin"]);
    config["outbound"]["services"]
        .as_array_mut()
        .unwrap()
        .push(twin);
    assert_refused(
        &config,
        "outbound.services[1] (shop/pricing)",
        &["listed twice"],
    );
}

#[test]
fn an_authority_claimed_by_two_services_is_refused_whatever_its_case() {
    let mut config = valid();
    let mut other = config["outbound"]["services"][0].clone();
    other["service"] = json!("shop/tax");
    other["authorities"] = json!(["tax", "PRICING"]);
    other["rules"] = json!([]);
    config["outbound"]["services"]
        .as_array_mut()
        .unwrap()
        .push(other);
    assert_refused(
        &config,
        "outbound.services[1] (shop/tax)",
        &["`PRICING`", "claimed by two services"],
    );
}

#[test]
fn an_authority_must_be_a_bare_host_as_lookups_compare_hosts() {
    // The agent strips the port (and user information) of every request's authority
    // before looking it up, so an authority written with one could never match.
    for authority in ["pricing:8080", "user@pricing", ""] {
        let mut config = valid();
        config["outbound"]["services"][0]["authorities"] = json!(["pricing", authority]);
        assert_refused(
            &config,
            SERVICE0,
            &[&format!("`{authority}`"), "not a host name"],
        );
    }
    let mut config = valid();
    config["outbound"]["services"][0]["authorities"] = json!(["Pricing.Shop", "[fd00::1]"]);
    let config = load(&config).unwrap();
    assert_eq!(config.service_for_authority("pricing.shop:80"), Some(0));
    assert_eq!(config.service_for_authority("[fd00::1]:8080"), Some(0));
    assert_eq!(config.service_for_authority("u:p@PRICING.shop:80"), Some(0));
}

#[test]
fn a_subset_defined_twice_is_refused() {
    assert_refused(
        &with("/outbound/services/0/subsets/1/name", json!("v1")),
        "outbound.services[0] (shop/pricing).subsets[1]",
        &["`v1`", "defined twice"],
    );
}

// --- Rules: backends, weights, mirrors, faults -----------------------------------------

#[test]
fn a_rule_without_backends_is_refused() {
    assert_refused(
        &with("/outbound/services/0/rules/0/backends", json!([])),
        RULE0,
        &["at least one backend"],
    );
}

#[test]
fn split_weights_must_add_up_to_exactly_100_percent() {
    for (a, b) in [
        (90_000u32, 9_999u32),
        (90_000, 10_001),
        (0, 0),
        (u32::MAX, 1),
    ] {
        let config = with(
            "/outbound/services/0/rules/1/backends",
            json!([
                { "service": "shop/pricing", "subset": "v1", "weight_milli": a },
                { "service": "shop/pricing", "subset": "v2", "weight_milli": b }
            ]),
        );
        let sum = u64::from(a) + u64::from(b);
        assert_refused(
            &config,
            RULE1,
            &[&format!("add up to {sum} "), &FULL_WEIGHT.to_string()],
        );
    }
    // A zero-weight backend is allowed (a split at 100/0).
    let config = with(
        "/outbound/services/0/rules/1/backends",
        json!([
            { "service": "shop/pricing", "subset": "v1", "weight_milli": 100_000 },
            { "service": "shop/pricing", "subset": "v2", "weight_milli": 0 }
        ]),
    );
    assert!(load(&config).is_ok());
}

#[test]
fn a_backend_or_mirror_naming_an_unknown_subset_is_refused() {
    assert_refused(
        &with(
            "/outbound/services/0/rules/1/backends/1/subset",
            json!("v3"),
        ),
        RULE1,
        &["unknown subset `v3`", "`shop/pricing`"],
    );
    assert_refused(
        &with(
            "/outbound/services/0/rules/0/mirrors",
            json!([{ "service": "shop/pricing", "subset": "canary", "percent_milli": 10_000 }]),
        ),
        RULE0,
        &["unknown subset `canary`"],
    );
    // A mirror to a known subset loads.
    let config = with(
        "/outbound/services/0/rules/0/mirrors",
        json!([{ "service": "shop/pricing", "subset": "v1", "percent_milli": FULL_WEIGHT }]),
    );
    assert!(load(&config).is_ok());
}

#[test]
fn a_backend_service_must_be_a_service_key() {
    assert_refused(
        &with(
            "/outbound/services/0/rules/0/backends/0/service",
            json!("pricing"),
        ),
        RULE0,
        &["`pricing`", "namespace/name"],
    );
}

#[test]
fn percents_above_100_are_refused() {
    assert_refused(
        &with(
            "/outbound/services/0/rules/0/mirrors",
            json!([{ "service": "shop/pricing", "subset": null, "percent_milli": FULL_WEIGHT + 1 }]),
        ),
        RULE0,
        &["mirror percent is above 100%"],
    );
    for fault in [
        json!({ "delay": { "delay_us": 1000, "percent_milli": FULL_WEIGHT + 1 }, "abort": null }),
        json!({ "delay": null, "abort": { "status": 503, "percent_milli": FULL_WEIGHT + 1 } }),
    ] {
        assert_refused(
            &with("/outbound/services/0/rules/0/fault", fault),
            RULE0,
            &["fault percent is above 100%"],
        );
    }
    let full = json!({
        "delay": { "delay_us": 1000, "percent_milli": FULL_WEIGHT },
        "abort": { "status": 503, "percent_milli": FULL_WEIGHT }
    });
    assert!(load(&with("/outbound/services/0/rules/0/fault", full)).is_ok());
}

#[test]
fn fault_abort_statuses_must_be_http_statuses() {
    for status in [0, 99, 600, 999] {
        let fault = json!({ "delay": null, "abort": { "status": status, "percent_milli": 1000 } });
        assert_refused(
            &with("/outbound/services/0/rules/0/fault", fault),
            RULE0,
            &["abort status is outside 100..=599"],
        );
    }
    for status in [100, 599] {
        let fault = json!({ "delay": null, "abort": { "status": status, "percent_milli": 1000 } });
        assert!(load(&with("/outbound/services/0/rules/0/fault", fault)).is_ok());
    }
}

#[test]
fn header_edits_must_name_lower_case_headers() {
    assert_refused(
        &with(
            "/outbound/services/0/rules/0/set_headers",
            json!([{ "name": "X-Canary", "value": "1" }]),
        ),
        RULE0,
        &["`X-Canary`", "lower-case header name"],
    );
    for name in ["", "x canary", "x:y"] {
        assert_refused(
            &with("/outbound/services/0/rules/0/remove_headers", json!([name])),
            RULE0,
            &[&format!("`{name}`"), "header name"],
        );
    }
    let config = with(
        "/outbound/services/0/rules/0/set_headers",
        json!([{ "name": "x-canary_2.b", "value": "1" }]),
    );
    assert!(load(&config).is_ok());
}

// --- Retries ---------------------------------------------------------------------------

#[test]
fn retry_attempts_must_be_1_to_10_on_services_and_rules() {
    for attempts in [0, 11, 1000] {
        let mut r = retry();
        r["attempts"] = json!(attempts);
        assert_refused(
            &with("/outbound/services/0/retry", r.clone()),
            &format!("{SERVICE0}.retry"),
            &[&format!("attempts {attempts} is outside 1..=10")],
        );
        assert_refused(
            &with("/outbound/services/0/rules/1/retry", r),
            &format!("{RULE1}.retry"),
            &[&format!("attempts {attempts}")],
        );
    }
    for attempts in [1, 10] {
        let mut r = retry();
        r["attempts"] = json!(attempts);
        assert!(load(&with("/outbound/services/0/retry", r)).is_ok());
    }
}

#[test]
fn retry_backoff_and_budget_must_be_in_range() {
    let mut backoff = retry();
    backoff["backoff"] = json!({ "base_us": 300_000, "max_us": 250_000 });
    assert_refused(
        &with("/outbound/services/0/rules/0/retry", backoff),
        &format!("{RULE0}.retry"),
        &["backoff base is above its maximum"],
    );
    let mut equal = retry();
    equal["backoff"] = json!({ "base_us": 250_000, "max_us": 250_000 });
    assert!(load(&with("/outbound/services/0/retry", equal)).is_ok());

    for budget in [
        json!({ "ratio_milli": FULL_WEIGHT + 1, "min_per_second": 10.0 }),
        json!({ "ratio_milli": 20_000, "min_per_second": -1.0 }),
    ] {
        let mut r = retry();
        r["budget"] = budget;
        assert_refused(
            &with("/outbound/services/0/retry", r),
            &format!("{SERVICE0}.retry"),
            &["budget out of range"],
        );
    }
    // Non-finite rates cannot be written in JSON, but `Config::new` takes them.
    for rate in [f64::NAN, f64::INFINITY] {
        let mut source: WorkloadConfig = serde_json::from_value(valid()).unwrap();
        let mut r: mesh_config::schema::Retry = serde_json::from_value(retry()).unwrap();
        r.budget.as_mut().unwrap().min_per_second = rate;
        source.outbound.services[0].retry = Some(r);
        match Config::new(source) {
            Err(ConfigError::Invalid { at, problem }) => {
                assert_eq!(at, format!("{SERVICE0}.retry"));
                assert_eq!(problem, "budget out of range");
            }
            other => panic!("expected an invalid budget for {rate}, got {other:?}"),
        }
    }
}

// --- Conditions ------------------------------------------------------------------------

fn when(condition: Value) -> Value {
    with("/outbound/services/0/rules/0/when", condition)
}

#[test]
fn an_invalid_regex_is_refused_with_the_regex() {
    let condition = json!({ "text": { "attr": "path", "op": "matches", "value": "^/cart/(" } });
    assert_refused(&when(condition), RULE0, &["invalid regex `^/cart/(`"]);
    // Also deep inside a combination.
    let nested = json!({ "all": [
        { "method": { "methods": ["GET"], "negated": false } },
        { "not": { "any": [{ "text": { "attr": "host", "op": "matches", "value": "[a-" } }] } }
    ] });
    assert_refused(&when(nested), RULE0, &["invalid regex `[a-`"]);
}

#[test]
fn an_invalid_glob_is_refused_with_the_glob() {
    let condition = json!({ "text": { "attr": "path", "op": "like", "value": "/cart/\\d*" } });
    assert_refused(
        &when(condition),
        RULE0,
        &["glob `/cart/\\d*`", "invalid escape at bytes 6..8"],
    );
}

#[test]
fn an_unknown_method_is_refused() {
    for negated in [false, true] {
        let condition = json!({ "method": { "methods": ["GET", "get"], "negated": negated } });
        assert_refused(&when(condition), RULE0, &["unknown method `get`"]);
    }
    let condition = json!({ "method": { "methods": ["FETCH"], "negated": false } });
    assert_refused(&when(condition), RULE0, &["unknown method `FETCH`"]);
}

#[test]
fn exists_applies_only_to_headers_and_query_parameters() {
    for attr in ["path", "host"] {
        let condition = json!({ "exists": { "attr": attr } });
        assert_refused(
            &when(condition),
            RULE0,
            &["`exists` applies to headers and query parameters"],
        );
    }
    let condition = json!({ "exists": { "attr": { "query": "debug" } } });
    assert!(load(&when(condition)).is_ok());
}

#[test]
fn conditions_must_name_lower_case_headers() {
    for condition in [
        json!({ "text": { "attr": { "header": "X-Beta" }, "op": "eq", "value": "1" } }),
        json!({ "text_in": { "attr": { "header": "X-Beta" }, "values": ["1"] } }),
        json!({ "exists": { "attr": { "header": "X-Beta" } } }),
    ] {
        assert_refused(&when(condition), RULE0, &["`X-Beta`", "header name"]);
    }
}

// --- Authorization ---------------------------------------------------------------------

#[test]
fn cedar_policies_that_do_not_parse_are_refused() {
    for text in [
        "permit (principal, action, resource",
        "allow (principal, action, resource);",
        "permit (principal, action, resource) when { context.path like };",
    ] {
        let (at, problem, _) = refused(&with("/inbound/authz/policies", json!(text)));
        assert_eq!(at, "inbound.authz");
        assert!(
            problem.starts_with("Cedar policies do not parse: "),
            "{problem}"
        );
    }
}

#[test]
fn two_cedar_policies_with_one_id_are_refused() {
    let text = "@id(\"dup\")\npermit (principal, action, resource);\n\
                @id(\"dup\")\nforbid (principal, action, resource);\n";
    assert_refused(
        &with("/inbound/authz/policies", json!(text)),
        "inbound.authz",
        &["policy `dup`"],
    );
}

#[test]
fn an_invalid_pattern_regex_is_refused_with_its_key() {
    assert_refused(
        &with("/inbound/authz/patterns/0/regex", json!("^/cart/(")),
        "inbound.authz",
        &["pattern `m0`"],
    );
}

#[test]
fn context_keys_listed_twice_are_refused() {
    assert_refused(
        &with("/inbound/authz/headers", json!(["x-debug", "x-debug"])),
        "inbound.authz",
        &["`x-debug` is listed twice in `headers`"],
    );
    assert_refused(
        &with("/inbound/authz/query", json!(["page", "page"])),
        "inbound.authz",
        &["`page` is listed twice in `query`"],
    );
    assert_refused(
        &with(
            "/inbound/authz/patterns",
            json!([
                { "key": "m0", "attr": "path", "regex": "^/a" },
                { "key": "m0", "attr": "host", "regex": "^b" }
            ]),
        ),
        "inbound.authz",
        &["`m0` is listed twice in `patterns`"],
    );
}

#[test]
fn authorization_headers_must_be_lower_case() {
    assert_refused(
        &with("/inbound/authz/headers", json!(["X-Debug"])),
        "inbound.authz.headers",
        &["`X-Debug`", "header name"],
    );
    assert_refused(
        &with(
            "/inbound/authz/patterns/0/attr",
            json!({ "header": "User-Agent" }),
        ),
        "inbound.authz.patterns (m0)",
        &["`User-Agent`", "header name"],
    );
}

#[test]
fn allow_all_and_deny_all_need_no_policies() {
    for kind in ["allow_all", "deny_all"] {
        let config = with("/inbound/authz", json!({ "kind": kind }));
        assert!(load(&config).is_ok(), "{kind}");
    }
}
