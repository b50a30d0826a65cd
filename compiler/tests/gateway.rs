//! Gateways and telemetry (LANGUAGE.md §10) through the compiler: the reference's examples
//! check as written, policies see a gateway as a caller, and the emitted gateway config is
//! what the agent's loader accepts and routes with.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};

use mesh_compiler::emit::{self, Emitter, Neighbours};
use mesh_compiler::ir::{Caller, GatewayId, Principal, ServiceId};
use mesh_compiler::testing::Evaluator;
use mesh_compiler::{Checked, check_loaded, check_paths, load::load_sources};
use mesh_config::schema::{AccessLog, Authz, Egress, Telemetry};
use mesh_config::{Config, Peer, SimpleRequest, Verdict};

const FIXTURE: &str = "tests/fixtures/gateway";

fn fixture() -> Checked {
    check_paths(&[PathBuf::from(FIXTURE)]).unwrap()
}

fn check(src: &str) -> Checked {
    check_loaded(load_sources(vec![("test.mesh".into(), src.to_string())]))
}

fn codes(checked: &Checked) -> Vec<&'static str> {
    checked.findings.iter().map(|f| f.diagnostic.code).collect()
}

fn service_id(checked: &Checked, key: &str) -> ServiceId {
    let index = checked
        .mesh
        .services
        .iter()
        .position(|s| s.key() == key)
        .unwrap();
    ServiceId(index as u32)
}

/// The §10 gateway and telemetry blocks of the language reference are in the fixture as
/// written, and the fixture checks without any finding.
#[test]
fn the_reference_examples_check_as_written() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/design/LANGUAGE.md");
    let spec = std::fs::read_to_string(Path::new(FIXTURE).join("spec.mesh")).unwrap();
    if let Ok(text) = std::fs::read_to_string(&reference) {
        let blocks: Vec<&str> = text
            .split("```mesh\n")
            .skip(1)
            .filter_map(|chunk| chunk.split("```").next())
            .filter(|b| b.starts_with("gateway ") || b.contains("telemetry {"))
            .collect();
        assert_eq!(
            blocks.len(),
            2,
            "the reference's gateway and telemetry examples"
        );
        for block in blocks {
            assert!(spec.contains(block), "spec.mesh lacks:\n{block}");
        }
    }
    let checked = fixture();
    assert_eq!(checked.findings, [], "{:#?}", checked.findings);
    let gateway = &checked.mesh.gateways[0];
    assert_eq!(
        (gateway.key().as_str(), gateway.identity.as_str()),
        ("default/public", "ingress")
    );
    assert_eq!(gateway.listeners.len(), 1);
    assert_eq!(gateway.hosts[0].host, "shop.example.com");
    let rules: Vec<&str> = gateway.hosts[0]
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(rules, ["api", "rest"]);
    let telemetry = checked.mesh.telemetry.unwrap();
    assert_eq!(
        (telemetry.tracing.milli, telemetry.access_log),
        (10_000, true)
    );
}

/// `gateway/public`, `default/public` and `public` (in its namespace) all name the gateway,
/// in `from` lists and in `source` conditions.
#[test]
fn policies_name_the_gateway_as_a_caller() {
    let checked = fixture();
    let mesh = &checked.mesh;
    let frontend = mesh.service(service_id(&checked, "shop/frontend")).unwrap();
    let from = &frontend.policy.as_ref().unwrap().rules[0].from;
    assert_eq!(from, &[Principal::Gateway(GatewayId(0))]);
    let catalog = mesh.service(service_id(&checked, "shop/catalog")).unwrap();
    assert_eq!(
        catalog.policy.as_ref().unwrap().rules[1].from,
        [Principal::Gateway(GatewayId(0))]
    );
    let text = &checked.cedar.services[service_id(&checked, "shop/frontend").0 as usize]
        .as_ref()
        .unwrap()
        .text;
    assert!(
        text.contains(r#"principal == Mesh::Service::"default/ingress""#),
        "{text}"
    );

    let same_namespace = check(
        r#"
        service web { port http 80 }
        gateway edge { listen 80 host "*" { rule all { to web } } }
        policy web { allow from edge, web when source == edge || source in [gateway/edge] }
        "#,
    );
    assert_eq!(codes(&same_namespace), Vec::<&str>::new());
}

/// A namespace really named `gateway` wins over the `gateway/NAME` form; an ambiguous name
/// is an error that lists the candidates.
#[test]
fn gateway_references_resolve_like_the_reference_says() {
    let namespace_wins = check(
        r#"
        namespace gateway { service public { port http 80 } }
        gateway public { listen 80 host "*" { rule all { to gateway/public } } }
        policy gateway/public { allow from gateway/public }
        "#,
    );
    let policy = namespace_wins.mesh.services[0].policy.as_ref().unwrap();
    assert_eq!(policy.rules[0].from, [Principal::Service(ServiceId(0))]);

    let ambiguous = check(
        r#"
        service web { port http 80 }
        namespace a { gateway edge { listen 80 host "*" { rule all { to default/web } } } }
        namespace b { gateway edge { listen 80 host "*" { rule all { to default/web } } } }
        policy web { allow from gateway/edge }
        "#,
    );
    let finding = ambiguous
        .findings
        .iter()
        .find(|f| f.diagnostic.code == "E0002")
        .unwrap();
    assert_eq!(finding.diagnostic.message, "gateway `edge` is ambiguous");
    assert!(
        finding
            .diagnostic
            .help
            .as_deref()
            .unwrap()
            .contains("`a/edge` or `b/edge`")
    );
}

/// The emitted gateway config loads with the agent's loader and routes the reference's
/// requests: `/api` to the frontend, the rest to the catalog, unknown hosts nowhere.
#[test]
fn the_gateway_config_loads_and_routes() {
    let checked = fixture();
    let gateways = emit::gateways(&checked.mesh, &checked.cedar);
    assert_eq!(gateways.len(), 1);
    let (key, config) = &gateways[0];
    assert_eq!(key, "default/public");
    assert_eq!(config.workload.service, "default/public");
    assert_eq!(
        config.workload.identity,
        "spiffe://cluster.local/ns/default/sa/ingress"
    );
    assert!(config.workload.ports.is_empty());
    assert_eq!(config.inbound.authz, Authz::DenyAll);
    assert_eq!(config.outbound.egress, Egress::Deny);
    let outbound: Vec<&str> = config
        .outbound
        .services
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    assert_eq!(outbound, ["shop/catalog", "shop/frontend"]);
    assert!(config.outbound.services.iter().all(|s| s.rules.is_empty()));
    // The catalog's own route still sets its timeout.
    assert_eq!(config.outbound.services[0].timeout_us, Some(3_000_000));
    let gateway = config.gateway.as_ref().unwrap();
    let tls = gateway.listeners[0].tls.as_ref().unwrap();
    let expected_dir = std::path::absolute(FIXTURE).unwrap();
    assert_eq!(
        PathBuf::from(&tls.cert),
        expected_dir.join("certs/public.pem")
    );
    assert_eq!(
        PathBuf::from(&tls.key),
        expected_dir.join("certs/public-key.pem")
    );
    assert_eq!(
        config.mesh.telemetry,
        Some(Telemetry {
            tracing_milli: 10_000,
            access_log: AccessLog::Json
        })
    );

    let loaded = Config::new(config.clone()).unwrap();
    let host = loaded.gateway_host("shop.example.com:8443").unwrap();
    assert_eq!(loaded.gateway_host("other.example.com"), None);
    let api = SimpleRequest::new("GET", "/api/items", "shop.example.com");
    let decision = loaded.gateway_route(host, &api, 0).unwrap();
    assert_eq!(decision.rule.map(|r| r.name.as_str()), Some("api"));
    assert_eq!(decision.backends[0].backend.service, "shop/frontend");
    let page = SimpleRequest::new("GET", "/", "shop.example.com");
    let decision = loaded.gateway_route(host, &page, 0).unwrap();
    assert_eq!(decision.rule.map(|r| r.name.as_str()), Some("rest"));
    assert_eq!(decision.backends[0].backend.service, "shop/catalog");
    assert_eq!(
        loaded.gateway_certificate(8443, Some("shop.example.com")),
        Some(tls)
    );
}

/// The frontend's config, compiled as the agent compiles it, lets the gateway's identity
/// in and keeps others out.
#[test]
fn services_authorize_the_gateway_by_its_identity() {
    let checked = fixture();
    let emitter = Emitter::new(&checked.mesh, &checked.cedar);
    let frontend = service_id(&checked, "shop/frontend");
    let config = Config::new(emitter.workload(frontend, Neighbours::Only(&[]))).unwrap();
    let request = SimpleRequest::new("GET", "/api/items", "frontend").on_port(8080);
    let gateway = Peer::from_spiffe_id(
        "spiffe://cluster.local/ns/default/sa/ingress",
        "cluster.local",
    );
    let other = Peer::from_spiffe_id("spiffe://cluster.local/ns/shop/sa/admin", "cluster.local");
    assert_eq!(
        config.authorize(&request, &gateway).decision,
        Verdict::Allow
    );
    assert_eq!(config.authorize(&request, &other).decision, Verdict::Deny);

    let evaluator = Evaluator::new(&checked);
    let peer = evaluator.peer_of(Caller::Gateway(GatewayId(0))).unwrap();
    assert_eq!(
        peer.identity.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/ingress")
    );
}

/// `meshc test` cases `from gateway/NAME` are authorized as the gateway.
#[test]
fn test_cases_from_a_gateway_pass_and_fail_on_its_identity() {
    let checked = fixture();
    let results = mesh_compiler::testing::run(&checked).unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.passed()), "{results:#?}");
    let outside = &results[1].cases;
    assert_eq!(outside[0].actual, "allow, rule api, backend shop/frontend");
    assert_eq!(
        outside[2].actual,
        "deny by the policy of shop/catalog, rule rest, backend shop/catalog"
    );
    assert_eq!(
        outside[3].actual,
        "404 (no host entry serves \"other.example.com\"), no rule, backend "
    );

    let failing = check(
        r#"
        service web { port http 80 }
        gateway edge { listen 80 host "*" { rule all { to web } } }
        policy web { allow from edge when method == GET }
        test "edge may post" {
          request POST "/" from gateway/edge to web
          expect allow
        }
        "#,
    );
    assert_eq!(codes(&failing), Vec::<&str>::new());
    let results = mesh_compiler::testing::run(&failing).unwrap();
    let failure = &results[0].cases[0].failures[0];
    assert_eq!(failure.expected, "allow");
    assert!(failure.actual.starts_with("deny"), "{}", failure.actual);
}

/// A request without `from` must go to a gateway, and its rules are the gateway's; a
/// wrong expectation fails with what the gateway did.
#[test]
fn requests_into_a_gateway_are_checked_and_run() {
    let src = |case: &str| {
        format!(
            r#"
            service web {{ port http 80 }}
            gateway edge {{ listen 80 host "a.example.com" {{ rule all {{ to web }} }} }}
            policy web {{ allow from gateway/edge }}
            test "t" {{ {case} }}
            "#
        )
    };
    let to_service = check(&src(r#"request GET "/" to web expect allow"#));
    assert_eq!(codes(&to_service), ["E0004"]);
    let unknown_rule = check(&src(
        r#"request GET "/" to gateway/edge header "host" = "a.example.com" expect rule al"#,
    ));
    assert_eq!(codes(&unknown_rule), ["E0002"]);
    assert_eq!(
        unknown_rule.findings[0].diagnostic.help.as_deref(),
        Some("did you mean `all`?")
    );
    let rate_limit = check(&src(
        r#"request GET "/" to gateway/edge expect allow, rate_limit 1"#,
    ));
    assert_eq!(codes(&rate_limit), ["E0004"]);

    let wrong = check(&src(
        r#"request GET "/" to gateway/edge header "host" = "b.example.com" expect allow, rule all"#,
    ));
    assert_eq!(codes(&wrong), Vec::<&str>::new());
    let results = mesh_compiler::testing::run(&wrong).unwrap();
    let failures: Vec<(&str, &str)> = results[0].cases[0]
        .failures
        .iter()
        .map(|f| (f.expected.as_str(), f.actual.as_str()))
        .collect();
    assert_eq!(
        failures,
        [
            ("allow", "404 (no host entry serves \"b.example.com\")"),
            ("rule all", "no rule")
        ]
    );
}

/// Every config carries the mesh's telemetry when the mesh block has it, and none
/// otherwise; the index lists gateways only when there are some.
#[test]
fn telemetry_and_the_index() {
    let checked = fixture();
    let configs = emit::workloads(&checked.mesh, &checked.cedar, Neighbours::Allowed);
    assert!(configs.iter().all(|c| c.mesh.telemetry.is_some()));
    let files = emit::files(&checked.mesh, &checked.cedar);
    let index: serde_json::Value = serde_json::from_str(&files["index.json"]).unwrap();
    assert_eq!(index["gateways"][0]["gateway"], "default/public");
    assert_eq!(index["gateways"][0]["config"], "default/public.json");
    assert_eq!(index["gateways"][0]["listeners"], serde_json::json!([8443]));
    assert!(files.contains_key("default/public.json"));
    let gateway_text = &files["default/public.json"];
    assert!(Config::from_json(gateway_text.as_bytes()).is_ok());

    let plain = check("service web { port http 80 }\npolicy web { allow from web }\n");
    let configs = emit::workloads(&plain.mesh, &plain.cedar, Neighbours::Allowed);
    assert_eq!(configs[0].mesh.telemetry, None);
    let files = emit::files(&plain.mesh, &plain.cedar);
    assert!(!files["index.json"].contains("gateways"));
    assert!(!files["default/web.json"].contains("telemetry"));

    let defaults = check("mesh m { telemetry { } }\n");
    let telemetry = defaults.mesh.telemetry.unwrap();
    assert_eq!((telemetry.tracing.milli, telemetry.access_log), (0, false));
}

/// Subsets a gateway sends traffic to are used (no W0002); a gateway rule may name any
/// service (no W0007); a rule after a host's catch-all is unreachable (W0001); a gateway
/// cannot be routed or protected.
#[test]
fn gateway_rules_in_the_lints() {
    let checked = check(
        r#"
        service web { port http 80 subset v1 { version = "v1" } }
        service api { port http 81 }
        gateway edge {
          listen 80
          host "*" { rule all { split { web.v1 50%  api 50% } } }
        }
        policy web { allow from edge }
        policy api { allow from namespace default }
        "#,
    );
    assert_eq!(codes(&checked), Vec::<&str>::new());

    let unreachable = check(
        r#"
        service web { port http 80 }
        gateway edge {
          listen 80
          host "*" {
            rule all { to web }
            rule api when path starts_with "/api" { to web }
          }
        }
        policy web { allow from edge }
        "#,
    );
    assert_eq!(codes(&unreachable), ["W0001"]);
    assert_eq!(
        unreachable.findings[0].diagnostic.message,
        "rule `api` is unreachable"
    );

    let policy_for_gateway = check(
        r#"
        service web { port http 80 }
        gateway edge { listen 80 host "*" { rule all { to web } } }
        policy edge { allow from web }
        "#,
    );
    assert_eq!(codes(&policy_for_gateway), ["E0004"]);
}
