//! Differential test of authorization: `Config::authorize` (policy slices per caller class
//! and action, scopes left out, a context of only what the slice reads) against plain
//! `cedar_policy::Authorizer::is_authorized` on the whole, unsliced policy set as written
//! (policies for other resources included) with the whole context. Over 100,000 generated
//! (policy set, request) pairs — 2,000 policy sets of 1 to 12 policies, 50 requests each —
//! the decision, the deciding policies, the errors and the fail-closed flag must agree,
//! where the reference fails closed the same way: any evaluation error denies, naming the
//! failed policies. Policies mix permits and forbids; principal `==`, `in`, `is`, `is … in`
//! or unconstrained; action `==`, `in [...]` or unconstrained; resource this workload,
//! another, by type or unconstrained; `when`/`unless` conditions on the principal (first,
//! as `meshc` writes them, or later), the action, path, host, port, headers, query,
//! regex results, presence sets, whole records, and reads that fail (attributes or keys
//! the context does not carry, type errors). Seeded, so a failure reproduces.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failure report"
)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
};
use mesh_config::{AuthzDecision, Config, Peer, RequestView, SimpleRequest, Verdict};
use serde_json::json;

/// A small, seeded generator (xorshift64*): no dependency, the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMESPACES: &[&str] = &["a", "b", "c"];
const SERVICES: &[(&str, &str)] = &[("a", "x"), ("a", "y"), ("b", "x"), ("c", "z")];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PROPFIND"];
const HEADERS: &[&str] = &["x-a", "x-b", "x-c"];
const QUERY: &[&str] = &["q", "r"];
const PATTERNS: &[(&str, &str, &str)] = &[
    ("num", "path", "^/[0-9]+$"),
    ("yes", "x-b", "^y"),
    ("qv", "q", "v"),
];

fn service(ns: &str, sa: &str) -> String {
    format!("Mesh::Service::\"{ns}/{sa}\"")
}

fn principal_test(rng: &mut Rng) -> String {
    let (ns, sa) = *rng.pick(SERVICES);
    match rng.below(5) {
        0 | 1 => format!("principal == {}", service(ns, sa)),
        2 => format!("principal in Mesh::Namespace::\"{}\"", rng.pick(NAMESPACES)),
        3 => format!(
            "principal is Mesh::Service in Mesh::Namespace::\"{}\"",
            rng.pick(NAMESPACES)
        ),
        _ => format!(
            "(principal == {} || principal in Mesh::Namespace::\"{}\")",
            service(ns, sa),
            rng.pick(NAMESPACES)
        ),
    }
}

fn action_list(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    let list: Vec<String> = (0..n)
        .map(|_| format!("Mesh::Action::\"{}\"", rng.pick(METHODS)))
        .collect();
    list.join(", ")
}

fn atom(rng: &mut Rng) -> String {
    let header = *rng.pick(HEADERS);
    let query = *rng.pick(QUERY);
    let value = *rng.pick(&["1", "2", "y", ""]);
    match rng.below(24) {
        0 => principal_test(rng),
        1 => format!("action in [{}]", action_list(rng)),
        2 => format!("action == Mesh::Action::\"{}\"", rng.pick(METHODS)),
        3 => format!("context.path == \"{}\"", rng.pick(&["/", "/a", "/12"])),
        4 => format!("context.path like \"{}\"", rng.pick(&["/a*", "/*", "*2"])),
        5 => format!("context.host == \"{}\"", rng.pick(&["h1", "h2"])),
        6 => format!("context.port == {}", rng.pick(&[0, 80, 8080])),
        7 => "[80, 8080].contains(context.port)".into(),
        8 | 9 => format!("context.headers[\"{header}\"] == \"{value}\""),
        10 => format!("context.has_headers.contains(\"{header}\")"),
        11 => format!(
            "context.has_headers.contains(\"{header}\") && context.headers[\"{header}\"] == \"{value}\""
        ),
        12 => format!("context.query[\"{query}\"] == \"v\""),
        13 => format!("context.has_query.contains(\"{query}\")"),
        14 => format!("context.matched[\"{}\"]", rng.pick(PATTERNS).0),
        15 => format!("context.headers has \"{header}\""),
        16 => "context has host".into(),
        17 => format!("context.headers == {{\"{header}\": \"{value}\"}}"),
        18 => "context.has_headers.isEmpty()".into(),
        19 => format!("context.has_query.containsAll([\"{query}\"])"),
        20 => format!(
            "if context.has_headers.contains(\"{header}\") then context.headers[\"{header}\"] == \"{value}\" else {}",
            rng.pick(&["true", "false"])
        ),
        21 => rng
            .pick(&[
                "context.nope == 1",
                "context.path < 3",
                "context.port like \"8*\"",
            ])
            .to_string(),
        22 => "context.host == context.path".into(),
        _ => rng.pick(&["true", "false"]).to_string(),
    }
}

fn condition(rng: &mut Rng) -> String {
    let mut text = atom(rng);
    for _ in 0..rng.below(3) {
        let op = if rng.chance(70) { "&&" } else { "||" };
        let _ = write!(text, " {op} {}", atom(rng));
    }
    if rng.chance(15) {
        text = format!("!({text})");
    }
    text
}

fn policy(rng: &mut Rng, i: usize) -> String {
    let mut text = String::new();
    if !rng.chance(10) {
        let _ = writeln!(text, "@id(\"p{i}\")");
    }
    let effect = if rng.chance(30) { "forbid" } else { "permit" };
    let (ns, sa) = *rng.pick(SERVICES);
    let principal = match rng.below(10) {
        0..=3 => "principal".to_string(),
        4 | 5 => format!("principal == {}", service(ns, sa)),
        6 => format!("principal in Mesh::Namespace::\"{}\"", rng.pick(NAMESPACES)),
        7 => format!(
            "principal is {}",
            rng.pick(&["Mesh::Service", "Mesh::Anonymous"])
        ),
        8 => format!(
            "principal is Mesh::Service in Mesh::Namespace::\"{}\"",
            rng.pick(NAMESPACES)
        ),
        _ => rng
            .pick(&[
                "principal == Mesh::Anonymous::\"anonymous\"",
                "principal == Mesh::Namespace::\"a\"",
                "principal in Mesh::Service::\"a/x\"",
            ])
            .to_string(),
    };
    let action = match rng.below(4) {
        0 => "action".to_string(),
        1 => format!("action == Mesh::Action::\"{}\"", rng.pick(METHODS)),
        2 => "action == Mesh::Action::\"TCP\"".to_string(),
        _ => format!("action in [{}]", action_list(rng)),
    };
    let resource = match rng.below(20) {
        0..=10 => "resource == Mesh::Service::\"shop/cart\"",
        11..=16 => "resource",
        17 => "resource == Mesh::Service::\"shop/other\"",
        18 => "resource is Mesh::Service",
        _ => "resource in Mesh::Service::\"shop/cart\"",
    };
    let _ = write!(text, "{effect} ({principal}, {action}, {resource})");
    // `meshc` puts the principal test first in the `when`.
    if rng.chance(40) {
        let mut when = principal_test(rng);
        if rng.chance(70) {
            let _ = write!(when, " && {}", condition(rng));
        }
        let _ = write!(text, "\nwhen {{ {when} }}");
    }
    for _ in 0..rng.below(3) {
        let kind = if rng.chance(75) { "when" } else { "unless" };
        let _ = write!(text, "\n{kind} {{ {} }}", condition(rng));
    }
    text.push_str(";\n");
    text
}

/// A generated policy set, its config and what the reference needs of it.
struct Case {
    config: Config,
    all: PolicySet,
    headers: Vec<&'static str>,
    query: Vec<&'static str>,
    patterns: Vec<(&'static str, &'static str, regex::Regex)>,
}

fn subset<T: Copy>(rng: &mut Rng, items: &[T]) -> Vec<T> {
    items.iter().copied().filter(|_| rng.chance(60)).collect()
}

fn case(rng: &mut Rng) -> Option<Case> {
    let count = 1 + rng.below(12);
    let text: String = (0..count).map(|i| policy(rng, i)).collect();
    let headers = subset(rng, HEADERS);
    let query = subset(rng, QUERY);
    let patterns: Vec<(&str, &str, &str)> = subset(rng, PATTERNS);
    let pattern_json: Vec<_> = patterns
        .iter()
        .map(|(key, attr, regex)| {
            let attr = match *attr {
                "path" => json!("path"),
                "q" => json!({ "query": "q" }),
                header => json!({ "header": header }),
            };
            json!({ "key": key, "attr": attr, "regex": regex })
        })
        .collect();
    let value = json!({
        "version": 1,
        "mesh": { "name": "m", "trust_domain": "td" },
        "workload": {
            "service": "shop/cart",
            "identity": "spiffe://td/ns/shop/sa/cart",
            "ports": [{ "protocol": "http", "number": 8080 }]
        },
        "inbound": { "mtls": "permissive", "authz": {
            "kind": "cedar", "mode": "enforce", "policies": text,
            "headers": headers, "query": query, "patterns": pattern_json
        } },
        "outbound": { "egress": "allow", "services": [] }
    });
    // A set whose ids collide is refused at load, by either side: generate another.
    let config = Config::from_json(&serde_json::to_vec(&value).unwrap()).ok()?;
    let parsed = PolicySet::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut all = PolicySet::new();
    for policy in parsed.policies() {
        let id = policy
            .annotation("id")
            .map_or_else(|| policy.id().clone(), PolicyId::new);
        all.add(policy.new_id(id)).unwrap();
    }
    Some(Case {
        config,
        all,
        headers,
        query,
        patterns: patterns
            .into_iter()
            .map(|(k, a, r)| (k, a, regex::Regex::new(r).unwrap()))
            .collect(),
    })
}

/// A caller: (namespace, service account) or anonymous, as the reference sees it.
fn reference_peer(who: Option<(&str, &str)>) -> (EntityUid, Entities) {
    let uid = |t: &str, id: &str| {
        EntityUid::from_type_name_and_id(EntityTypeName::from_str(t).unwrap(), EntityId::new(id))
    };
    match who {
        None => (uid("Mesh::Anonymous", "anonymous"), Entities::empty()),
        Some((ns, sa)) => {
            let principal = uid("Mesh::Service", &format!("{ns}/{sa}"));
            let entity = Entity::new_no_attrs(
                principal.clone(),
                HashSet::from([uid("Mesh::Namespace", ns)]),
            );
            (principal, Entities::from_entities([entity], None).unwrap())
        }
    }
}

/// Plain Cedar on the whole set with the whole context, failing closed on errors.
fn reference(case: &Case, who: Option<(&str, &str)>, r: &dyn RequestView) -> AuthzDecision {
    let (principal, entities) = reference_peer(who);
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    let text = |attr: &str| match attr {
        "path" => r.path().to_string(),
        "q" => r.query_param("q").unwrap_or_default().into_owned(),
        header => r.header(header).unwrap_or_default().to_string(),
    };
    let context = Context::from_pairs([
        ("path".to_string(), string(r.path())),
        ("host".to_string(), string(r.host())),
        (
            "headers".to_string(),
            RestrictedExpression::new_record(
                case.headers
                    .iter()
                    .map(|h| (h.to_string(), string(r.header(h).unwrap_or_default()))),
            )
            .unwrap(),
        ),
        (
            "has_headers".to_string(),
            RestrictedExpression::new_set(
                case.headers
                    .iter()
                    .filter(|h| r.header(h).is_some())
                    .map(|h| string(h)),
            ),
        ),
        (
            "query".to_string(),
            RestrictedExpression::new_record(
                case.query
                    .iter()
                    .map(|q| (q.to_string(), string(&r.query_param(q).unwrap_or_default()))),
            )
            .unwrap(),
        ),
        (
            "has_query".to_string(),
            RestrictedExpression::new_set(
                case.query
                    .iter()
                    .filter(|q| r.query_param(q).is_some())
                    .map(|q| string(q)),
            ),
        ),
        (
            "matched".to_string(),
            RestrictedExpression::new_record(case.patterns.iter().map(|(key, attr, regex)| {
                (
                    key.to_string(),
                    RestrictedExpression::new_bool(regex.is_match(&text(attr))),
                )
            }))
            .unwrap(),
        ),
        (
            "port".to_string(),
            RestrictedExpression::new_long(i64::from(r.port())),
        ),
    ])
    .unwrap();
    let action = EntityUid::from_type_name_and_id(
        EntityTypeName::from_str("Mesh::Action").unwrap(),
        EntityId::new(r.method()),
    );
    let resource = EntityUid::from_type_name_and_id(
        EntityTypeName::from_str("Mesh::Service").unwrap(),
        EntityId::new("shop/cart"),
    );
    let request = Request::new(principal, action, resource, context, None).unwrap();
    let response = Authorizer::new().is_authorized(&request, &case.all, &entities);
    let mut failed: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|AuthorizationError::PolicyEvaluationError(e)| e.policy_id().to_string())
        .collect();
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    let mut errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    failed.sort();
    failed.dedup();
    reasons.sort();
    errors.sort();
    let (decision, policies, policy_error) = if !failed.is_empty() {
        (Verdict::Deny, failed, true)
    } else {
        match response.decision() {
            Decision::Allow => (Verdict::Allow, reasons, false),
            Decision::Deny => (Verdict::Deny, reasons, false),
        }
    };
    AuthzDecision {
        decision,
        enforced: true,
        policies,
        errors,
        policy_error,
    }
}

/// An opaque TCP connection as the reference sees it.
struct Connection(u16);

impl RequestView for Connection {
    fn method(&self) -> &str {
        "TCP"
    }
    fn path(&self) -> &str {
        ""
    }
    fn host(&self) -> &str {
        ""
    }
    fn header(&self, _: &str) -> Option<&str> {
        None
    }
    fn query_param(&self, _: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn port(&self) -> u16 {
        self.0
    }
}

fn request(rng: &mut Rng) -> SimpleRequest {
    let path = *rng.pick(&["/", "/a", "/a/b", "/12", "/p"]);
    let query = match rng.below(4) {
        0 => "?q=v",
        1 => "?r=1&q=x",
        2 => "?r=",
        _ => "",
    };
    let method = *rng.pick(METHODS);
    let host = *rng.pick(&["h1", "h2"]);
    let mut request = SimpleRequest::new(method, &format!("{path}{query}"), host)
        .on_port(*rng.pick(&[0, 80, 8080]));
    for header in HEADERS {
        if rng.chance(40) {
            let value = *rng.pick(&["1", "2", "y", "yes", ""]);
            request = request.header(header, value);
        }
    }
    request
}

#[test]
fn sliced_authorization_decides_exactly_as_cedar_on_the_whole_set() {
    let mut rng = Rng(0x5EED_CAFE_F00D_1234);
    let (mut pairs, mut sets) = (0, 0);
    let mut outcomes = HashSet::new();
    while sets < 2_000 {
        let Some(case) = case(&mut rng) else {
            continue;
        };
        sets += 1;
        for _ in 0..50 {
            let who: Option<(&str, &str)> = if rng.chance(15) {
                None
            } else {
                Some(*rng.pick(SERVICES))
            };
            let peer = match who {
                None => Peer::anonymous(),
                Some((ns, sa)) => {
                    Peer::from_spiffe_id(&format!("spiffe://td/ns/{ns}/sa/{sa}"), "td")
                }
            };
            let (mut got, want) = if rng.chance(10) {
                let port = *rng.pick(&[0, 80, 8080]);
                (
                    case.config.authorize_connection(port, &peer),
                    reference(&case, who, &Connection(port)),
                )
            } else {
                let request = request(&mut rng);
                (
                    case.config.authorize(&request, &peer),
                    reference(&case, who, &request),
                )
            };
            got.errors.sort();
            assert_eq!(got, want, "set {sets}:\n{}\ncaller {who:?}", case.all);
            outcomes.insert((got.decision, got.policy_error, got.policies.len().min(2)));
            pairs += 1;
        }
    }
    assert!(pairs >= 100_000, "{pairs}");
    // Allows, denies by forbid and by default, and failed policies all occur.
    assert!(outcomes.len() >= 5, "{outcomes:?}");
}
