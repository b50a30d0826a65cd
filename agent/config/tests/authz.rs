//! Authorization semantics through the public API (`Config::authorize`, `Peer`): permits
//! allow, a matching forbid wins over any permit, nothing matching denies; principals by
//! service and by namespace, anonymous and foreign-domain callers; the request context
//! (path, headers, query parameters, regex results); audit mode; the `@id`s of the
//! deciding policies; evaluation errors (which deny: fail closed); and the `allow_all`/`deny_all` shortcuts.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::{AuthzDecision, Config, Peer, SimpleRequest, SpiffeId, Verdict};
use serde_json::{Value, json};

const POLICIES: &str = r#"
@id("frontend reads and writes the cart")
permit (
    principal == Mesh::Service::"shop/frontend",
    action in [Mesh::Action::"GET", Mesh::Action::"POST"],
    resource == Mesh::Service::"shop/cart-sa"
) when { context.path like "/cart/*" };

@id("ops reads")
permit (principal in Mesh::Namespace::"ops", action == Mesh::Action::"GET", resource);

@id("anyone checks health")
permit (principal, action == Mesh::Action::"GET", resource)
when { context.path == "/health" };

@id("checkout with numeric ids")
permit (principal == Mesh::Service::"shop/checkout", action, resource)
when { context.matched["numeric"] };

@id("admin with token")
permit (principal == Mesh::Service::"shop/admin", action, resource)
when { context.has_query.contains("token") && context.query["token"] == "s3cret" };

@id("no debug")
forbid (principal, action, resource)
when { context.has_headers.contains("x-debug") && context.headers["x-debug"] == "1" };

@id("no anonymous writes")
forbid (principal is Mesh::Anonymous, action, resource)
unless { action == Mesh::Action::"GET" };

@id("another workload")
permit (principal, action, resource == Mesh::Service::"shop/other");

@id("broken")
permit (principal == Mesh::Service::"shop/broken", action, resource)
when { context.headers["x-not-listed"] == "1" };
"#;

fn config_value(mode: &str) -> Value {
    json!({
        "version": 1,
        "mesh": { "name": "shop", "trust_domain": "example.org" },
        "workload": {
            "service": "shop/cart",
            "identity": "spiffe://example.org/ns/shop/sa/cart-sa",
            "ports": [{ "protocol": "http", "number": 8080 }]
        },
        "inbound": {
            "mtls": "permissive",
            "authz": {
                "kind": "cedar",
                "mode": mode,
                "policies": POLICIES,
                "headers": ["x-debug"],
                "query": ["token"],
                "patterns": [{ "key": "numeric", "attr": "path", "regex": "^/cart/[0-9]+$" }]
            }
        },
        "outbound": { "egress": "allow", "services": [] }
    })
}

fn load(value: &Value) -> Config {
    Config::from_json(&serde_json::to_vec(value).unwrap()).unwrap()
}

fn enforce() -> Config {
    load(&config_value("enforce"))
}

fn peer(namespace: &str, account: &str) -> Peer {
    Peer::from_spiffe_id(
        &format!("spiffe://example.org/ns/{namespace}/sa/{account}"),
        "example.org",
    )
}

fn request(method: &str, path: &str) -> SimpleRequest {
    SimpleRequest::new(method, path, "cart:8080")
}

fn allowed_by(decision: &AuthzDecision, ids: &[&str]) {
    assert_eq!(decision.decision, Verdict::Allow, "{decision:?}");
    assert_eq!(decision.policies, ids, "{decision:?}");
    assert!(decision.errors.is_empty(), "{decision:?}");
}

fn denied_by(decision: &AuthzDecision, ids: &[&str]) {
    assert_eq!(decision.decision, Verdict::Deny, "{decision:?}");
    assert_eq!(decision.policies, ids, "{decision:?}");
    assert!(!decision.policy_error, "{decision:?}");
}

#[test]
fn a_matching_permit_allows_and_is_named() {
    let config = enforce();
    let frontend = peer("shop", "frontend");
    for method in ["GET", "POST"] {
        let d = config.authorize(&request(method, "/cart/items"), &frontend);
        allowed_by(&d, &["frontend reads and writes the cart"]);
        assert!(d.enforced && d.allowed());
        assert_eq!(
            d.reason(),
            "allowed by policy frontend reads and writes the cart"
        );
    }
}

#[test]
fn nothing_matching_denies_by_default() {
    let config = enforce();
    let frontend = peer("shop", "frontend");
    for r in [
        request("DELETE", "/cart/items"),   // action not permitted
        request("GET", "/cart"),            // path glob needs `/cart/…`
        request("PROPFIND", "/cart/items"), // a method the mesh does not name
    ] {
        let d = config.authorize(&r, &frontend);
        denied_by(&d, &[]);
        assert!(d.errors.is_empty(), "{d:?}");
        assert!(!d.allowed());
        assert_eq!(d.reason(), "no policy allows this request");
    }
    // Another service of the same namespace is not the frontend.
    denied_by(
        &config.authorize(&request("GET", "/cart/items"), &peer("shop", "frontend2")),
        &[],
    );
}

#[test]
fn a_matching_forbid_wins_over_permits() {
    let config = enforce();
    let frontend = peer("shop", "frontend");
    let debug = request("GET", "/cart/items").header("X-Debug", "1");
    let d = config.authorize(&debug, &frontend);
    denied_by(&d, &["no debug"]);
    assert_eq!(d.reason(), "denied by policy no debug");
    // Only the listed value triggers it.
    let d = config.authorize(
        &request("GET", "/cart/items").header("x-debug", "0"),
        &frontend,
    );
    allowed_by(&d, &["frontend reads and writes the cart"]);
}

#[test]
fn every_deciding_permit_is_named_in_order() {
    let config = enforce();
    let d = config.authorize(&request("GET", "/health"), &peer("ops", "monitor"));
    allowed_by(&d, &["anyone checks health", "ops reads"]);
    assert_eq!(
        d.reason(),
        "allowed by policy anyone checks health, ops reads"
    );
}

#[test]
fn namespace_principals_cover_every_service_account_in_the_namespace() {
    let config = enforce();
    for account in ["monitor", "backup", "a"] {
        let d = config.authorize(&request("GET", "/anything"), &peer("ops", account));
        allowed_by(&d, &["ops reads"]);
    }
    denied_by(
        &config.authorize(&request("POST", "/anything"), &peer("ops", "monitor")),
        &[],
    );
    denied_by(
        &config.authorize(&request("GET", "/anything"), &peer("ops2", "monitor")),
        &[],
    );
}

#[test]
fn anonymous_callers_get_only_what_any_principal_gets() {
    let config = enforce();
    let anonymous = Peer::anonymous();
    assert_eq!(anonymous.identity, None);
    allowed_by(
        &config.authorize(&request("GET", "/health"), &anonymous),
        &["anyone checks health"],
    );
    denied_by(
        &config.authorize(&request("GET", "/cart/1"), &anonymous),
        &[],
    );
    denied_by(
        &config.authorize(&request("POST", "/health"), &anonymous),
        &["no anonymous writes"],
    );
    // A verified caller is not anonymous: the same forbid does not apply.
    denied_by(
        &config.authorize(&request("POST", "/health"), &peer("shop", "someone")),
        &[],
    );
}

#[test]
fn foreign_or_malformed_identities_are_anonymous_but_kept_for_logs() {
    let config = enforce();
    for id in [
        "spiffe://other.org/ns/shop/sa/frontend",
        "spiffe://example.org/shop/frontend",
        "spiffe://example.org/ns/shop/sa/frontend/extra",
        "not a spiffe id",
    ] {
        let peer = Peer::from_spiffe_id(id, "example.org");
        assert_eq!(peer.identity.as_deref(), Some(id));
        denied_by(
            &config.authorize(&request("GET", "/cart/items"), &peer),
            &[],
        );
        denied_by(
            &config.authorize(&request("POST", "/cart/items"), &peer),
            &["no anonymous writes"],
        );
    }
    let frontend = Peer::from_spiffe_id("spiffe://example.org/ns/shop/sa/frontend", "example.org");
    assert_eq!(
        frontend.identity.as_deref(),
        Some("spiffe://example.org/ns/shop/sa/frontend")
    );
    assert!(
        config
            .authorize(&request("GET", "/cart/items"), &frontend)
            .allowed()
    );
}

#[test]
fn regex_results_and_query_parameters_reach_the_context() {
    let config = enforce();
    let checkout = peer("shop", "checkout");
    allowed_by(
        &config.authorize(&request("DELETE", "/cart/123"), &checkout),
        &["checkout with numeric ids"],
    );
    denied_by(
        &config.authorize(&request("DELETE", "/cart/12a"), &checkout),
        &[],
    );

    let admin = peer("shop", "admin");
    allowed_by(
        &config.authorize(&request("PUT", "/x?token=s3cret"), &admin),
        &["admin with token"],
    );
    allowed_by(
        &config.authorize(&request("PUT", "/x?a=1&token=s3%63ret"), &admin),
        &["admin with token"],
    );
    denied_by(
        &config.authorize(&request("PUT", "/x?token=guess"), &admin),
        &[],
    );
    let d = config.authorize(&request("PUT", "/x"), &admin);
    denied_by(&d, &[]);
    assert!(d.errors.is_empty(), "`has_query` guards the lookup: {d:?}");
}

#[test]
fn policies_for_another_resource_never_apply() {
    // "another workload" permits everything on `shop/other`, not on this workload.
    let config = enforce();
    denied_by(
        &config.authorize(&request("GET", "/x"), &peer("shop", "anyone")),
        &[],
    );
}

#[test]
fn a_policy_that_fails_to_evaluate_denies_the_request() {
    // "broken" reads a header the context does not carry: Cedar would skip it and decide
    // on the others; the mesh fails closed instead, with its own reason.
    let config = enforce();
    let d = config.authorize(&request("GET", "/x"), &peer("shop", "broken"));
    assert_eq!(d.decision, Verdict::Deny, "{d:?}");
    assert!(d.policy_error && !d.allowed(), "{d:?}");
    assert_eq!(d.policies, ["broken"]);
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("broken"), "{:?}", d.errors);
    assert!(d.errors[0].contains("x-not-listed"), "{:?}", d.errors);
    assert_eq!(d.reason(), "policy broken failed to evaluate");
    // Even where another policy allows ("anyone checks health"), the error wins.
    let d = config.authorize(&request("GET", "/health"), &peer("shop", "broken"));
    assert_eq!(d.decision, Verdict::Deny, "{d:?}");
    assert!(d.policy_error, "{d:?}");
    assert_eq!(d.policies, ["broken"]);
    // Other callers do not reach the failing condition, and their decisions are plain.
    let d = config.authorize(&request("GET", "/cart/1"), &peer("shop", "frontend"));
    allowed_by(&d, &["frontend reads and writes the cart"]);
    assert!(!d.policy_error);
    let d = config.authorize(&request("GET", "/x"), &peer("shop", "frontend"));
    denied_by(&d, &[]);
    assert!(!d.policy_error);
    // In audit mode the same decision is made, and the request goes through.
    let audit = load(&config_value("audit"));
    let d = audit.authorize(&request("GET", "/health"), &peer("shop", "broken"));
    assert_eq!(d.decision, Verdict::Deny, "{d:?}");
    assert!(d.policy_error && !d.enforced && d.allowed(), "{d:?}");
}

#[test]
fn audit_mode_decides_the_same_but_never_blocks() {
    let audit = load(&config_value("audit"));
    let enforce = enforce();
    let cases = [
        (request("GET", "/cart/items"), peer("shop", "frontend")),
        (
            request("GET", "/cart/items").header("x-debug", "1"),
            peer("shop", "frontend"),
        ),
        (request("DELETE", "/cart/items"), peer("shop", "frontend")),
        (request("POST", "/health"), Peer::anonymous()),
    ];
    for (r, p) in &cases {
        let a = audit.authorize(r, p);
        let e = enforce.authorize(r, p);
        assert_eq!(
            (a.decision, &a.policies, &a.errors),
            (e.decision, &e.policies, &e.errors)
        );
        assert!(!a.enforced && e.enforced);
        assert!(a.allowed(), "audit never blocks: {a:?}");
        assert_eq!(e.allowed(), e.decision == Verdict::Allow);
    }
    let d = audit.authorize(&cases[1].0, &cases[1].1);
    assert_eq!(d.decision, Verdict::Deny);
    assert_eq!(d.reason(), "denied by policy no debug");
}

#[test]
fn allow_all_and_deny_all() {
    let mut value = config_value("enforce");
    value["inbound"]["authz"] = json!({ "kind": "allow_all" });
    let d = load(&value).authorize(&request("DELETE", "/x"), &Peer::anonymous());
    assert_eq!(d.decision, Verdict::Allow);
    assert_eq!(d.policies, ["default_policy allow"]);
    assert!(d.enforced && d.allowed());

    value["inbound"]["authz"] = json!({ "kind": "deny_all" });
    let d = load(&value).authorize(&request("GET", "/health"), &peer("ops", "monitor"));
    assert_eq!(d.decision, Verdict::Deny);
    assert_eq!(d.policies, ["default_policy deny"]);
    assert!(d.enforced && !d.allowed());
    assert_eq!(d.reason(), "denied by policy default_policy deny");
}

#[test]
fn policies_without_an_id_are_named_by_position() {
    let mut value = config_value("enforce");
    value["inbound"]["authz"]["policies"] = json!("permit (principal, action, resource);");
    let d = load(&value).authorize(&request("GET", "/"), &Peer::anonymous());
    allowed_by(&d, &["policy0"]);
}

#[test]
fn callers_are_named_by_the_strict_spiffe_parser() {
    let id = SpiffeId::parse("spiffe://example.org/ns/shop/sa/cart-sa").unwrap();
    assert_eq!(
        (id.trust_domain(), id.namespace(), id.service_account()),
        ("example.org", "shop", "cart-sa")
    );
    // A caller whose id the agent's certificate parser refuses is anonymous, whatever
    // its trust domain: the old, looser split made `Example.org`'s `shop/cart` a
    // principal while the handshake could never have produced that id.
    for bad in [
        "spiffe://example.org/ns/shop/sa",
        "spiffe://example.org/ns//sa/cart",
        "spiffe://example.org/ns/shop/sa/cart?x=1",
        "spiffe://example.org/ns/../sa/cart",
    ] {
        let peer = Peer::from_spiffe_id(bad, "example.org");
        assert_eq!(peer.identity.as_deref(), Some(bad));
        let d = load(&config_value("enforce")).authorize(&request("GET", "/"), &peer);
        assert_eq!(
            d,
            load(&config_value("enforce")).authorize(&request("GET", "/"), &Peer::anonymous()),
            "{bad}"
        );
    }
}

#[test]
fn connections_are_authorized_as_the_tcp_action_with_their_port() {
    let mut value = config_value("enforce");
    value["inbound"]["authz"]["policies"] = json!(
        r#"
@id("orders on 5432")
permit (principal == Mesh::Service::"shop/orders", action, resource)
when { [5432].contains(context.port) };

@id("frontend reads")
permit (principal == Mesh::Service::"shop/frontend", action in [Mesh::Action::"GET"], resource);

@id("no admin paths")
forbid (principal, action in [Mesh::Action::"GET", Mesh::Action::"POST"], resource)
when { context.path like "/admin*" };
"#
    );
    let config = load(&value);
    allowed_by(
        &config.authorize_connection(5432, &peer("shop", "orders")),
        &["orders on 5432"],
    );
    denied_by(
        &config.authorize_connection(80, &peer("shop", "orders")),
        &[],
    );
    denied_by(
        &config.authorize_connection(5432, &peer("shop", "frontend")),
        &[],
    );
    denied_by(&config.authorize_connection(5432, &Peer::anonymous()), &[]);
    // HTTP requests carry their port too.
    allowed_by(
        &config.authorize(&request("GET", "/x").on_port(5432), &peer("shop", "orders")),
        &["orders on 5432"],
    );
    denied_by(
        &config.authorize(&request("GET", "/admin/x"), &peer("shop", "frontend")),
        &["no admin paths"],
    );
}
