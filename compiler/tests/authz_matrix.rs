//! Authorization as a decision matrix: `tests/fixtures/authz.mesh` (every kind of access
//! rule: `from` lists, `namespace`, `authenticated`, `any`, `methods`, `paths` globs,
//! `when` on headers and path, denies that override allows, inline `cedar`, `mode audit`,
//! a service without a policy) is compiled to the bytes `meshc compile` writes, each
//! workload's JSON is loaded with `mesh_config::Config::from_json` as the agent loads it,
//! and a table of (peer × method × path × headers) rows is checked for the verdict,
//! whether it is enforced, and the exact policy ids that decided it.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use mesh_config::{Config, Peer, SimpleRequest, Verdict};

const FIXTURE: &str = "tests/fixtures/authz.mesh";
const TRUST_DOMAIN: &str = "example.org";

/// Every workload's config, by service key, loaded from the JSON `meshc compile` writes.
fn configs() -> BTreeMap<String, Config> {
    let checked = mesh_compiler::check_paths(&[PathBuf::from(FIXTURE)]).unwrap();
    assert_eq!(checked.findings, [], "the fixture must check clean");
    mesh_compiler::emit::files(&checked.mesh, &checked.cedar)
        .into_iter()
        .filter_map(|(path, text)| {
            let key = path.strip_suffix(".json")?.to_string();
            (key != "index").then(|| {
                let config = Config::from_json(text.as_bytes())
                    .unwrap_or_else(|e| panic!("{path} does not load: {e}"));
                (key, config)
            })
        })
        .collect()
}

/// The caller of a row: `anon` (plaintext), a full SPIFFE id, or `NS/SA` in the mesh's
/// trust domain.
fn peer(who: &str) -> Peer {
    if who == "anon" {
        Peer::anonymous()
    } else if who.starts_with("spiffe://") {
        Peer::from_spiffe_id(who, TRUST_DOMAIN)
    } else {
        let (ns, sa) = who.split_once('/').unwrap();
        Peer::from_spiffe_id(
            &format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}"),
            TRUST_DOMAIN,
        )
    }
}

/// How a row expects its request to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Allow,
    Deny,
    /// `mode audit`: the verdict is computed and logged, the request goes through.
    AuditAllow,
    AuditDeny,
}

struct Row {
    to: &'static str,
    from: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: Want,
    /// The deciding policies' `@id`s, as `LINE TEXT` (the file name is prepended).
    ids: &'static [&'static str],
}

const fn row(
    to: &'static str,
    from: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: Want,
    ids: &'static [&'static str],
) -> Row {
    Row {
        to,
        from,
        method,
        path,
        headers,
        want,
        ids,
    }
}

use Want::{Allow, AuditAllow, AuditDeny, Deny};

const FRONTEND: &str = "shop/frontend";
const CHECKOUT: &str = "shop/checkout-sa";
const AUDITOR: &str = "ops/auditor";
const CART: &str = "shop/cart";
const CATALOG: &str = "shop/catalog";

const CART_CALLERS: &str = "21 allow from shop/frontend, shop/checkout";
const CART_OPS: &str = "25 allow from namespace ops";
const CART_AUTHENTICATED: &str = "26 allow from authenticated";
const CART_BATCH: &str = "27 allow from shop/checkout";
const CART_NO_INTERNAL: &str = "30 deny from any";
const CART_NO_DEBUG: &str = "31 deny from any";
const CART_CEDAR: &str = "32 cedar 1.1";
const CATALOG_ANY: &str = "39 allow from any";
const CATALOG_FRONTEND: &str = "43 allow from shop/frontend";
const CATALOG_NO_OPS_WRITES: &str = "44 deny from namespace ops";
const CATALOG_CEDAR: &str = "45 cedar 1.1";
const METRICS_SHOP: &str = "57 allow from namespace shop";

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    // cart: a `from` list with methods and path globs.
    row(CART, FRONTEND, "GET", "/cart", &[], Allow, &[CART_CALLERS]),
    row(CART, FRONTEND, "POST", "/cart/items", &[], Allow, &[CART_CALLERS]),
    row(CART, CHECKOUT, "GET", "/cart", &[], Allow, &[CART_CALLERS]),
    // `*` matches any text, `/` included (LANGUAGE.md §7 globs, as Cedar's `like`).
    row(CART, FRONTEND, "GET", "/cart/a/b", &[], Allow, &[CART_CALLERS]),
    row(CART, FRONTEND, "DELETE", "/cart/items", &[], Deny, &[]),
    row(CART, FRONTEND, "GET", "/cartx", &[], Deny, &[]),
    row(CART, FRONTEND, "GET", "/orders", &[], Deny, &[]),
    // The principal is the identity (service account), not the service name.
    row(CART, "shop/checkout", "GET", "/cart", &[], Deny, &[]),
    // A caller of another trust domain is anonymous.
    row(CART, "spiffe://other.org/ns/shop/sa/frontend", "GET", "/cart", &[], Deny, &[]),
    row(CART, "anon", "GET", "/cart", &[], Deny, &[]),
    // `namespace ops when method == GET`.
    row(CART, AUDITOR, "GET", "/anything", &[], Allow, &[CART_OPS]),
    row(CART, "ops/metrics", "GET", "/cart", &[], Allow, &[CART_OPS]),
    row(CART, AUDITOR, "POST", "/cart", &[], Deny, &[]),
    // `authenticated when path == "/health"`.
    row(CART, CATALOG, "GET", "/health", &[], Allow, &[CART_AUTHENTICATED]),
    row(CART, CATALOG, "GET", "/health/x", &[], Deny, &[]),
    row(CART, "anon", "GET", "/health", &[], Deny, &[]),
    // Two allows at once: both are named.
    row(CART, FRONTEND, "GET", "/health", &[], Allow, &[CART_AUTHENTICATED]),
    row(CART, AUDITOR, "GET", "/health", &[], Allow, &[CART_OPS, CART_AUTHENTICATED]),
    // `when header(..) == .. && path like ..` with a `methods` block.
    row(CART, CHECKOUT, "POST", "/batch/day.json", &[("x-batch", "1")], Allow, &[CART_BATCH]),
    row(CART, CHECKOUT, "POST", "/batch/day.json", &[("X-Batch", "1")], Allow, &[CART_BATCH]),
    row(CART, CHECKOUT, "POST", "/batch/day.json", &[], Deny, &[]),
    row(CART, CHECKOUT, "POST", "/batch/day.json", &[("x-batch", "2")], Deny, &[]),
    row(CART, CHECKOUT, "POST", "/batch/day.txt", &[("x-batch", "1")], Deny, &[]),
    row(CART, CHECKOUT, "GET", "/batch/day.json", &[("x-batch", "1")], Deny, &[]),
    row(CART, FRONTEND, "POST", "/batch/day.json", &[("x-batch", "1")], Deny, &[]),
    // Denies override allows, and name themselves.
    row(CART, FRONTEND, "GET", "/cart/internal/stats", &[], Deny, &[CART_NO_INTERNAL]),
    row(CART, FRONTEND, "GET", "/cart", &[("x-debug", "1")], Deny, &[CART_NO_DEBUG]),
    row(CART, FRONTEND, "GET", "/cart", &[("x-debug", "0")], Allow, &[CART_CALLERS]),
    row(CART, AUDITOR, "GET", "/cart/internal", &[("x-debug", "1")], Deny, &[CART_NO_INTERNAL, CART_NO_DEBUG]),
    // The inline Cedar permit, and a deny that overrides it.
    row(CART, AUDITOR, "DELETE", "/cart/items", &[], Allow, &[CART_CEDAR]),
    row(CART, AUDITOR, "DELETE", "/orders", &[], Deny, &[]),
    row(CART, FRONTEND, "DELETE", "/cart/items", &[], Deny, &[]),
    row(CART, AUDITOR, "DELETE", "/cart/internal/x", &[], Deny, &[CART_NO_INTERNAL]),
    // catalog: `any` with methods and paths, a bare `from`, `exists header`.
    row(CATALOG, "anon", "GET", "/products/1", &[], Allow, &[CATALOG_ANY]),
    row(CATALOG, "anon", "HEAD", "/products/1", &[], Allow, &[CATALOG_ANY]),
    row(CATALOG, "anon", "POST", "/products/1", &[], Deny, &[]),
    row(CATALOG, "anon", "GET", "/products", &[], Deny, &[]),
    row(CATALOG, FRONTEND, "POST", "/anything", &[], Allow, &[CATALOG_FRONTEND]),
    row(CATALOG, FRONTEND, "GET", "/products/1", &[], Allow, &[CATALOG_ANY, CATALOG_FRONTEND]),
    row(CATALOG, AUDITOR, "GET", "/products/1", &[], Allow, &[CATALOG_ANY]),
    row(CATALOG, AUDITOR, "GET", "/products/1", &[("x-write", "yes")], Deny, &[CATALOG_NO_OPS_WRITES]),
    // `exists` holds for an empty value too.
    row(CATALOG, AUDITOR, "GET", "/products/1", &[("x-write", "")], Deny, &[CATALOG_NO_OPS_WRITES]),
    row(CATALOG, CHECKOUT, "GET", "/products/1", &[("x-write", "yes")], Allow, &[CATALOG_ANY]),
    // An inline Cedar forbid reading a header that only another service's policy reads.
    row(CATALOG, FRONTEND, "GET", "/products/1", &[("x-debug", "1")], Deny, &[CATALOG_CEDAR]),
    row(CATALOG, "anon", "GET", "/products/1", &[("x-debug", "1")], Deny, &[CATALOG_CEDAR]),
    // admin has no policy: the mesh's `default_policy deny`.
    row("shop/admin", FRONTEND, "GET", "/", &[], Deny, &["default_policy deny"]),
    // ops/metrics is `mode audit`: decided and reported, never blocked.
    row("ops/metrics", FRONTEND, "GET", "/metrics", &[], AuditAllow, &[METRICS_SHOP]),
    row("ops/metrics", FRONTEND, "POST", "/metrics", &[], AuditDeny, &[]),
    row("ops/metrics", AUDITOR, "GET", "/metrics", &[], AuditDeny, &[]),
    row("ops/metrics", "anon", "GET", "/metrics", &[], AuditDeny, &[]),
];

#[test]
fn every_row_of_the_matrix_is_decided_as_expected_by_the_expected_policies() {
    let configs = configs();
    let mut wrong = Vec::new();
    for (n, r) in MATRIX.iter().enumerate() {
        let config = configs
            .get(r.to)
            .unwrap_or_else(|| panic!("row {n}: no config for {}", r.to));
        let mut request = SimpleRequest::new(r.method, r.path, r.to);
        for (name, value) in r.headers {
            request = request.header(name, value);
        }
        let decision = config.authorize(&request, &peer(r.from));
        let got = match (decision.decision, decision.enforced) {
            (Verdict::Allow, true) => Allow,
            (Verdict::Deny, true) => Deny,
            (Verdict::Allow, false) => AuditAllow,
            (Verdict::Deny, false) => AuditDeny,
        };
        let ids: Vec<String> = r
            .ids
            .iter()
            .map(|id| {
                if id.starts_with("default_policy") {
                    id.to_string()
                } else {
                    format!("{FIXTURE}:{id}")
                }
            })
            .collect();
        let allowed = matches!(r.want, Allow | AuditAllow | AuditDeny);
        if got != r.want
            || decision.policies != ids
            || decision.allowed() != allowed
            || !decision.errors.is_empty()
        {
            wrong.push(format!(
                "row {n}: {} {} {:?} from {} to {}: want {:?} by {ids:?}, got {got:?} by {:?} (errors: {:?})",
                r.method, r.path, r.headers, r.from, r.to, r.want, decision.policies, decision.errors
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows are wrong:\n{}",
        wrong.len(),
        MATRIX.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_matrix_names_every_policy_of_the_fixture() {
    // Every generated or inline policy decides at least one row, so none goes untested.
    let configs = configs();
    let mut declared = Vec::new();
    for config in configs.values() {
        if let mesh_config::schema::Authz::Cedar(cedar) = &config.source().inbound.authz {
            for line in cedar.policies.lines() {
                if let Some(id) = line
                    .strip_prefix("@id(\"")
                    .and_then(|l| l.strip_suffix("\")"))
                {
                    declared.push(id.to_string());
                }
            }
        }
    }
    assert_eq!(declared.len(), 12, "{declared:#?}");
    for id in declared {
        let short = id.strip_prefix(&format!("{FIXTURE}:")).unwrap();
        assert!(
            MATRIX.iter().any(|r| r.ids.contains(&short)),
            "no row is decided by `{id}`"
        );
    }
}
