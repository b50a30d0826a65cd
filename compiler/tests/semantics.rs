//! What a checked mesh means: names resolve across namespaces, values are typed, settings
//! merge, and valid meshes produce no finding at all.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::PathBuf;

use mesh_compiler::ir::{
    Balance, CondKind, Dest, Effect, Expect, Method, Mtls, PolicyMode, Principal, Protocol,
    RetryOn, RetryUse, TextAttr, TextOp,
};
use mesh_compiler::{Checked, check_loaded, check_paths, load::load_sources};

fn check(src: &str) -> Checked {
    check_loaded(load_sources(vec![("test.mesh".into(), src.to_string())]))
}

fn codes(checked: &Checked) -> Vec<&'static str> {
    checked.findings.iter().map(|f| f.diagnostic.code).collect()
}

#[test]
fn the_valid_meshes_check_without_any_finding() {
    let checked = check_paths(&[PathBuf::from("tests/valid")]).unwrap();
    assert_eq!(checked.findings, [], "{:#?}", checked.findings);
}

#[test]
fn the_shop_mesh_means_what_it_says() {
    let checked = check_paths(&[PathBuf::from("tests/valid/shop.mesh")]).unwrap();
    let mesh = &checked.mesh;
    assert_eq!(
        (mesh.name.as_str(), mesh.trust_domain.as_str()),
        ("shop", "example.org")
    );
    assert_eq!(
        (mesh.mtls, mesh.default_policy),
        (Mtls::Permissive, Effect::Allow)
    );
    let keys: Vec<String> = mesh.services.iter().map(|s| s.key()).collect();
    assert_eq!(
        keys,
        ["default/gateway", "ops/audit", "shop/cart", "shop/route"]
    );
    let cart = &mesh.services[2];
    assert_eq!(cart.identity, "cart-sa");
    assert_eq!(cart.ports.len(), 2);
    assert_eq!(cart.ports[1].protocol, Protocol::Grpc);
    assert_eq!(cart.balance, Balance::LeastRequest);
    assert_eq!(
        cart.subsets[1].labels.get("track").map(String::as_str),
        Some("canary")
    );
    assert_eq!(
        mesh.services[0].labels.get("app").map(String::as_str),
        Some("gateway"),
        "default app label"
    );

    let route = cart.route.as_ref().unwrap();
    assert_eq!(route.timeout, Some(3_000_000));
    let rules: Vec<&str> = route.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rules, ["beta", "api", "versioned", "callers", "rollout"]);
    assert_eq!(
        route.rules[0].retry,
        Some(RetryUse::Profile(
            mesh.retries
                .iter()
                .position(|p| p.name == "none")
                .map(|i| mesh_compiler::ir::RetryId(i as u32))
                .unwrap()
        ))
    );
    let Some(Dest::Split(split)) = &route.rules[4].dest else {
        panic!()
    };
    assert_eq!(
        split.iter().map(|(_, w)| w.milli).collect::<Vec<_>>(),
        [95_000, 5_000]
    );
    let fault = route.rules[4].fault.unwrap();
    assert_eq!(
        fault.delay,
        Some((100_000, mesh_lang::ast::Percent { milli: 500 }))
    );
    assert_eq!(fault.abort.map(|a| a.0), Some(503));
    assert_eq!(
        route.rules[2].set_headers,
        [("x-route".to_string(), "versioned".to_string())]
    );
    assert_eq!(
        route.rules[2].rewrite_prefix,
        Some(("/v1/".into(), "/".into()))
    );
    let CondKind::All(parts) = &route.rules[0].when.as_ref().unwrap().kind else {
        panic!()
    };
    assert_eq!(
        parts[0].kind,
        CondKind::Text {
            attr: TextAttr::Header("x-beta".into()),
            op: TextOp::Eq,
            value: "1".into()
        }
    );
    assert_eq!(
        parts[1].kind,
        CondKind::Method {
            negated: false,
            methods: vec![Method::Get]
        }
    );

    let careful = mesh.retries.iter().find(|p| p.name == "careful").unwrap();
    assert_eq!(careful.policy.attempts, 3);
    assert!(
        careful.policy.on.contains(&RetryOn::Class(5))
            && careful.policy.on.contains(&RetryOn::Status(503))
    );
    assert_eq!(careful.policy.backoff, Some((25_000, 250_000)));
    assert_eq!(careful.policy.budget.unwrap().ratio.milli, 12_500);

    let policy = cart.policy.as_ref().unwrap();
    assert_eq!(policy.mode, PolicyMode::Audit);
    assert_eq!(
        policy.rules[0].from,
        [
            Principal::Service(mesh_compiler::ir::ServiceId(0)),
            Principal::Service(mesh_compiler::ir::ServiceId(3))
        ]
    );
    assert_eq!(policy.rules[1].from, [Principal::Namespace("ops".into())]);
    assert_eq!(policy.rules[3].effect, Effect::Deny);
    assert_eq!(policy.cedar.len(), 1);

    let test = &mesh.tests[0];
    let mesh_compiler::ir::Probe::Request { headers, .. } = &test.cases[1].probe else {
        panic!("a request case");
    };
    assert_eq!(
        headers,
        &[("x-beta".to_string(), "1".to_string())],
        "header names are lower-cased"
    );
    assert!(
        test.cases[1]
            .expect
            .iter()
            .any(|(e, _)| *e == Expect::Timeout(1_000_000))
    );
}

#[test]
fn std_zero_trust_sets_defaults_that_the_users_mesh_block_overrides() {
    let checked = check("import \"std/zero-trust\"\nmesh mine { default_policy allow }\n");
    assert_eq!(checked.findings, []);
    assert_eq!(
        (checked.mesh.mtls, checked.mesh.default_policy),
        (Mtls::Strict, Effect::Allow)
    );
    assert_eq!(checked.mesh.name, "mine");
}

#[test]
fn names_resolve_in_their_namespace_with_qualified_names_elsewhere() {
    let src = "namespace a { service x { port 80 } }\nnamespace b {\n  service y { port 80 }\n  route y { rule r { to x } }\n}\n";
    let checked = check(src);
    assert_eq!(codes(&checked), ["E0002"]);
    let help = checked.findings[0].diagnostic.help.clone().unwrap();
    assert!(help.contains("`a/x`"), "{help}");
    let fixed = check(&src.replace("to x", "to y"));
    assert_eq!(codes(&fixed), [] as [&str; 0]);
}

#[test]
fn retry_profiles_fall_back_to_the_default_namespace() {
    let checked = check(
        "retry shared { attempts 2 }\nnamespace a {\n  service x { port 80 }\n  route x { retry shared rule r { to x } }\n}\n",
    );
    assert_eq!(checked.findings, []);
}

#[test]
fn a_profile_without_on_retries_what_istio_retries_by_default() {
    let checked = check(
        "retry plain { attempts 3 }\nretry never { attempts 3  on [] }\n\
         retry mine { attempts 3  on [reset] }\n\
         service x { port 80 }\nroute x { retry plain rule a when method == GET { retry never to x } rule b { retry mine to x } }\n",
    );
    assert_eq!(checked.findings, []);
    let on = |name: &str| {
        checked
            .mesh
            .retries
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .policy
            .on
            .clone()
    };
    assert_eq!(
        on("plain"),
        [
            RetryOn::ConnectFailure,
            RetryOn::RefusedStream,
            RetryOn::Status(503)
        ]
    );
    assert_eq!(on("never"), []);
    assert_eq!(on("mine"), [RetryOn::Reset]);
    // What the agent reads: the flags of the compiled retry.
    let route = checked.mesh.services[0].route.as_ref().unwrap();
    let compiled =
        mesh_compiler::emit::retry(&checked.mesh, route.retry.as_ref().unwrap()).unwrap();
    assert!(compiled.on_connect_failure && compiled.on_refused_stream && !compiled.on_reset);
    assert_eq!(compiled.on_status, [503]);
}

#[test]
fn only_a_policy_with_members_but_no_allow_allows_nothing() {
    let head = "service web { port 80 }\nservice cart { port 80 }\n";
    let w0010 = |policy: &str| {
        codes(&check(&format!("{head}{policy}\n")))
            .iter()
            .filter(|c| **c == "W0010")
            .count()
    };
    assert_eq!(w0010("policy cart { deny from any }"), 1);
    assert_eq!(w0010("policy cart { rate_limit 10/s }"), 1);
    // An empty policy refuses everyone on purpose; allows and Cedar permits allow.
    assert_eq!(w0010("policy cart { }"), 0);
    assert_eq!(
        w0010("policy cart { allow from web  deny from any when path == \"/x\" }"),
        0
    );
    assert_eq!(
        w0010("policy cart { cedar r#\"permit(principal, action, resource);\"# }"),
        0
    );
}

#[test]
fn retry_none_without_a_profile_disables_retries() {
    let checked = check("service x { port 80 }\nroute x { retry none rule r { to x } }\n");
    assert_eq!(checked.findings, []);
    assert_eq!(
        checked.mesh.services[0].route.as_ref().unwrap().retry,
        Some(RetryUse::Disabled)
    );
}

#[test]
fn one_mistake_does_not_hide_the_next() {
    let src = "service a {\n  port 0\n  balance nope\n}\nroute a {\n  timeout 5\n  rule r { split { a 60% a 40% } }\n  rule s when method == FETCH { to b }\n}\n";
    let checked = check(src);
    // Rule `r` keeps matching every request despite its broken split, so `s` is unreachable.
    assert_eq!(
        codes(&checked),
        [
            "E0006", "E0004", "E0004", "E0003", "W0001", "E0004", "E0002"
        ]
    );
}

#[test]
fn equal_subsets_and_repeated_rule_names_are_duplicates() {
    let checked = check(
        "service a {\n  port 80\n  subset v1 { version = \"1\" }\n  subset one { version = \"1\" }\n}\nroute a {\n  rule r { to a.v1 }\n  rule r { to a }\n}\n",
    );
    assert_eq!(codes(&checked), ["E0003", "E0003"]);
}

#[test]
fn unreachable_rules_cover_same_and_weaker_conditions_only() {
    let src = "service a { port 80 }\nroute a {\n  rule x when path == \"/a\" { to a }\n  rule same when path == \"/a\" { to a }\n  rule other when path == \"/b\" { to a }\n  rule narrower when path starts_with \"/b/c\" || method == GET { to a }\n}\n";
    let checked = check(src);
    let lines: Vec<usize> = checked
        .findings
        .iter()
        .map(|f| {
            checked.loaded.files[0]
                .source
                .line_col(f.diagnostic.span.start)
                .0
        })
        .collect();
    assert_eq!(codes(&checked), ["W0001"]);
    assert_eq!(lines, [4]);
}

#[test]
fn warnings_never_fire_on_errors_left_out_of_the_mesh() {
    // The split has an error, so the subsets look unused; the lint must wait.
    let checked = check(
        "service a {\n  port 80\n  subset v1 { version = \"1\" }\n}\nroute a { rule r { split { a.v1 50% } } }\n",
    );
    assert_eq!(codes(&checked), ["E0005"]);
}

#[test]
fn trust_domains_are_held_to_the_agents_spiffe_parser() {
    // Before, only an empty value, `/` and spaces were refused here, so a mesh could
    // compile configs whose identities the agent refuses (`Example.org`, a port).
    for bad in [
        "",
        "a/b",
        "a b",
        "Example.org",
        "example.org:8443",
        "user@example.org",
    ] {
        let checked = check(&format!("mesh m {{ trust_domain \"{bad}\" }}"));
        assert_eq!(codes(&checked), ["E0006"], "{bad}");
        assert_eq!(checked.mesh.trust_domain, "cluster.local", "{bad}");
    }
    for good in ["example.org", "my_org-1.example", "localhost"] {
        let checked = check(&format!("mesh m {{ trust_domain \"{good}\" }}"));
        assert_eq!(codes(&checked), Vec::<&str>::new(), "{good}");
        assert_eq!(checked.mesh.trust_domain, good);
    }
}
