//! The call-graph lints: W0004 (retries multiplying along a call chain) and W0005 (a
//! caller's timeout shorter than its callee's retries). Mostly what must NOT warn —
//! chains at exactly 10×, graphs built from `any`, `authenticated` or default-allow,
//! cycles — and what the warnings say when they do fire.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::fmt::Write;

use mesh_compiler::{Checked, check_loaded, load::load_sources};

fn check(src: &str) -> Checked {
    check_loaded(load_sources(vec![("test.mesh".into(), src.to_string())]))
}

fn codes(checked: &Checked) -> Vec<&'static str> {
    checked.findings.iter().map(|f| f.diagnostic.code).collect()
}

fn messages(checked: &Checked, code: &str) -> Vec<String> {
    checked
        .findings
        .iter()
        .filter(|f| f.diagnostic.code == code)
        .map(|f| f.diagnostic.message.clone())
        .collect()
}

/// Services `names`, each with a route retrying `attempts` times (in order), and each
/// allowing the previous one to call it: a chain `names[0] → names[1] → …`.
fn chain(names: &[&str], attempts: &[u32]) -> String {
    let mut src = String::new();
    for (i, (name, attempts)) in names.iter().zip(attempts).enumerate() {
        let _ = writeln!(
            src,
            "service {name} {{ port 80 }}\nroute {name} {{ retry {{ attempts {attempts} }} rule all {{ to {name} }} }}"
        );
        if i > 0 {
            let _ = writeln!(src, "policy {name} {{ allow from {} }}", names[i - 1]);
        }
    }
    src
}

#[test]
fn a_chain_at_exactly_ten_times_does_not_warn() {
    let checked = check(&chain(&["a", "b", "c"], &[3, 5, 2]));
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
    let checked = check(&chain(&["a", "b", "c", "d"], &[10, 1, 10, 1]));
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
}

#[test]
fn a_chain_just_above_ten_times_warns_once_at_the_retry_that_crosses() {
    let checked = check(&chain(&["a", "b", "c", "d"], &[9, 2, 3, 2]));
    assert_eq!(codes(&checked), ["W0004"], "{:#?}", checked.findings);
    assert_eq!(
        messages(&checked, "W0004"),
        ["retries multiply along a → b → c → d: 2 × 3 × 2 = 12 tries of d per request"]
    );
    // Reported at `route d`'s retry, the hop that takes the chain from 6× to 12×.
    let finding = &checked.findings[0];
    let (line, _) = checked.loaded.files[0]
        .source
        .line_col(finding.diagnostic.span.start);
    assert_eq!(line, 10);
}

#[test]
fn a_long_chain_is_reported_once_with_where_it_ends() {
    let checked = check(&chain(&["a", "b", "c", "d", "e", "f"], &[3, 3, 3, 3, 3, 3]));
    assert_eq!(codes(&checked), ["W0004"], "{:#?}", checked.findings);
    let d = &checked.findings[0].diagnostic;
    assert_eq!(
        d.message,
        "retries multiply along a → b → c → d: 3 × 3 × 3 = 27 tries of d per request"
    );
    let help = d.help.clone().unwrap();
    assert!(
        help.starts_with("the chain goes on to 243 tries of `f` per request"),
        "{help}"
    );
    // The other hops of the chain are labelled.
    assert_eq!(d.labels.len(), 2, "{:#?}", d.labels);
}

#[test]
fn allow_from_any_authenticated_or_default_allow_builds_no_chain() {
    let mut src = String::new();
    for name in ["a", "b", "c", "d"] {
        let _ = writeln!(
            src,
            "service {name} {{ port 80 }}\nroute {name} {{ retry {{ attempts 5 }} rule all {{ to {name} }} }}"
        );
    }
    let any = format!(
        "mesh m {{ mtls permissive }}\n{src}policy a {{ allow from any }}\npolicy b {{ allow from any }}\npolicy c {{ allow from any }}\npolicy d {{ allow from any }}\n"
    );
    let checked = check(&any);
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
    let authenticated = format!(
        "{src}policy a {{ allow from authenticated }}\npolicy b {{ allow from authenticated }}\npolicy c {{ allow from authenticated }}\npolicy d {{ allow from authenticated }}\n"
    );
    let checked = check(&authenticated);
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
    let default_allow = format!("mesh m {{ default_policy allow }}\n{src}");
    let checked = check(&default_allow);
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
}

#[test]
fn cycles_never_repeat_a_service() {
    // a → b → a: one hop at most, 3×.
    let two = "service a { port 80 }\nservice b { port 80 }\nroute a { retry { attempts 3 } rule all { to a } }\nroute b { retry { attempts 3 } rule all { to b } }\npolicy a { allow from b }\npolicy b { allow from a }\n";
    let checked = check(two);
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
    // a → b → c → a: two hops at most, 9×.
    let three = "service a { port 80 }\nservice b { port 80 }\nservice c { port 80 }\nretry thrice { attempts 3 }\nroute a { retry thrice rule all { to a } }\nroute b { retry thrice rule all { to b } }\nroute c { retry thrice rule all { to c } }\npolicy a { allow from c }\npolicy b { allow from a }\npolicy c { allow from b }\n";
    let checked = check(three);
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
    // A service that may call itself, and a namespace that may call itself.
    let own = "namespace n {\n  service a { port 80 }\n  service b { port 80 }\n  route a { retry { attempts 3 } rule all { to a } }\n  route b { retry { attempts 3 } rule all { to b } }\n  policy a { allow from a, namespace n }\n  policy b { allow from namespace n }\n}\n";
    let checked = check(own);
    assert_eq!(codes(&checked), [] as [&str; 0], "{:#?}", checked.findings);
}

#[test]
fn namespace_callers_chain_and_names_are_qualified_across_namespaces() {
    let src = "namespace front {\n  service web { port 80 }\n  service api { port 80 }\n  route api { retry { attempts 3 } rule all { to api } }\n  policy api { allow from web }\n}\nnamespace back {\n  service db { port 80 }\n  service cache { port 80 }\n  route db { retry { attempts 2 } rule all { to db } }\n  route cache { retry { attempts 2 } rule all { to cache } }\n  policy db { allow from namespace front }\n  policy cache { allow from db }\n}\n";
    let checked = check(src);
    assert_eq!(
        messages(&checked, "W0004"),
        [
            "retries multiply along front/web → front/api → back/db → back/cache: 3 × 2 × 2 = 12 tries of back/cache per request"
        ]
    );
    assert_eq!(codes(&checked), ["W0004"]);
}

#[test]
fn the_largest_attempts_of_a_route_counts_and_long_runs_without_retries_are_shortened() {
    let mut src = String::new();
    let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(src, "service {name} {{ port 80 }}");
        if i > 0 {
            let _ = writeln!(src, "policy {name} {{ allow from {} }}", names[i - 1]);
        }
    }
    // s1 retries 4 times only on one rule; s7 retries 3 times.
    src.push_str("route s1 { retry none rule slow when path == \"/slow\" { to s1 retry { attempts 4 } } rule all { to s1 } }\n");
    src.push_str("route s7 { retry { attempts 3 } rule all { to s7 } }\n");
    let checked = check(&src);
    assert_eq!(
        messages(&checked, "W0004"),
        [
            "retries multiply along s0 → s1 → (5 more without retries) → s7: 4 × 3 = 12 tries of s7 per request"
        ],
        "{:#?}",
        checked.findings
    );
}

#[test]
fn a_long_line_of_services_is_checked_without_recursion() {
    let count = 3_000;
    let mut src = String::from("retry twice { attempts 2 }\n");
    for i in 0..count {
        let _ = writeln!(
            src,
            "service s{i} {{ port 80 }}\nroute s{i} {{ retry twice rule all {{ to s{i} }} }}"
        );
        if i + 1 < count {
            let _ = writeln!(src, "policy s{i} {{ allow from s{} }}", i + 1);
        }
    }
    // s2999 → s2998 → … → s0, searched depth first from s0.
    let checked = check(&src);
    // Every chain crosses 10× at its fourth callee (2⁴ = 16): one warning for all.
    assert_eq!(
        messages(&checked, "W0004"),
        [
            "retries multiply along s2999 → s2998 → s2997 → s2996 → s2995: 2 × 2 × 2 × 2 = 16 tries of s2995 per request"
        ]
    );
    let help = checked.findings[0].diagnostic.help.clone().unwrap();
    assert!(
        help.contains("over 1000000000000000000 tries of `s0`"),
        "{help}"
    );
}

#[test]
fn one_large_namespace_calling_itself_is_fast_and_exact_enough() {
    let count = 1_500;
    let mut src = String::from("namespace big {\n");
    for i in 0..count {
        let _ = writeln!(
            src,
            "service s{i} {{ port 80 }}\nroute s{i} {{ retry none rule all {{ to s{i} }} }}\npolicy s{i} {{ allow from namespace big }}"
        );
    }
    src.push_str("}\n");
    let checked = check(&src);
    assert_eq!(codes(&checked), [] as [&str; 0]);
}

fn timeouts(callee_route: &str) -> String {
    format!(
        "service reviews {{ port 80 }}\nservice ratings {{ port 80 }}\nroute reviews {{ timeout 500ms rule all {{ to reviews }} }}\nroute ratings {{ {callee_route} rule all {{ to ratings }} }}\npolicy ratings {{ allow from reviews }}\n"
    )
}

#[test]
fn a_callee_retrying_longer_than_its_callers_wait_warns() {
    let checked = check(&timeouts(
        "timeout 2s retry { attempts 3 per_try_timeout 200ms backoff 10ms..50ms }",
    ));
    assert_eq!(
        messages(&checked, "W0005"),
        [
            "callers of reviews give up after 500ms, but reviews may spend up to 700ms retrying ratings (3 × 200ms + 2 × 50ms of back-off)"
        ]
    );
    assert_eq!(codes(&checked), ["W0005"]);
    // Without a per-try timeout, the callee's own timeout bounds its retries.
    let checked = check(&timeouts("timeout 2s retry { attempts 2 }"));
    assert_eq!(
        messages(&checked, "W0005"),
        [
            "callers of reviews give up after 500ms, but reviews may spend up to 2s retrying ratings (2 tries within the 2s timeout of `route ratings`)"
        ]
    );
}

#[test]
fn callee_retries_that_fit_or_are_unknown_do_not_warn() {
    for callee in [
        // Exactly the caller's timeout.
        "retry { attempts 2 per_try_timeout 250ms }",
        // Bounded by the callee's timeout.
        "timeout 400ms retry { attempts 2 per_try_timeout 150ms backoff 1s..1s }",
        // No retries: not this lint's business.
        "timeout 2s retry none",
        "timeout 2s retry { attempts 1 per_try_timeout 1s }",
        // Unknown: neither a per-try timeout nor a timeout.
        "retry { attempts 3 }",
    ] {
        let checked = check(&timeouts(callee));
        assert_eq!(
            messages(&checked, "W0005"),
            [] as [&str; 0],
            "{callee}: {:#?}",
            checked.findings
        );
    }
}

#[test]
fn timeouts_follow_only_explicit_callers_and_long_rule_timeouts() {
    // `allow from any`: not followed.
    let src = timeouts("timeout 2s retry { attempts 2 }")
        .replace("allow from reviews", "allow from authenticated");
    assert_eq!(codes(&check(&src)), [] as [&str; 0]);
    // A rule of reviews waits long enough: those requests may be the ones calling ratings.
    let src = timeouts("timeout 2s retry { attempts 2 }").replace(
        "route reviews { timeout 500ms rule all { to reviews } }",
        "route reviews { timeout 500ms rule export when path == \"/export\" { to reviews timeout 5s } rule all { to reviews } }",
    );
    assert_eq!(codes(&check(&src)), [] as [&str; 0]);
    // Through a namespace: warns, naming the callee with its namespace.
    let src = "namespace a {\n  service reviews { port 80 }\n  route reviews { timeout 500ms rule all { to reviews } }\n}\nnamespace b {\n  service ratings { port 80 }\n  route ratings { timeout 2s retry { attempts 2 } rule all { to ratings } }\n  policy ratings { allow from namespace a }\n}\n";
    let checked = check(src);
    assert_eq!(
        messages(&checked, "W0005"),
        [
            "callers of reviews give up after 500ms, but reviews may spend up to 2s retrying b/ratings (2 tries within the 2s timeout of `route ratings`)"
        ]
    );
}
