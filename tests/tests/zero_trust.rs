//! `meshc up examples/zero-trust`: two namespaces under default deny — a namespace-scoped
//! allow across namespaces, a per-service allow, refusals, and a policy in audit mode that
//! lets a would-be-denied call through and counts it.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::Path;

use mesh_e2e::{Http, Mesh, metric};

#[tokio::test(flavor = "multi_thread")]
async fn zero_trust_allows_only_what_policies_say_and_audits_the_rest() {
    let mesh = Mesh::up(Path::new("examples/zero-trust"), &[]);
    let http = Http::default();
    let frontend = mesh.addr("web/frontend", None, "outbound");
    let api = mesh.addr("web/api", None, "outbound");
    let orders = mesh.addr("data/orders", None, "outbound");

    // `allow from namespace web`: both web workloads reach data/orders, with their identity.
    let got = http.get(&frontend, "orders.data", "/orders/1", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["service"], "data/orders");
    assert_eq!(
        got.json()["headers"]["x-forwarded-client-cert"],
        "By=spiffe://cluster.local/ns/data/sa/orders;URI=spiffe://cluster.local/ns/web/sa/frontend"
    );
    let got = http.send(&api, "POST", "orders.data", "/orders", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);

    // `allow from frontend { methods [GET, POST] }` on api: GET passes, DELETE is refused.
    let got = http.get(&frontend, "api", "/items", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let got = http.send(&frontend, "DELETE", "api", "/items/1", &[]).await;
    assert_eq!(got.status, 403, "{}", got.body);
    assert_eq!(got.mesh_error.as_deref(), Some("denied"));
    assert_eq!(got.body.trim(), "no policy allows this request");

    // Audit mode on inventory: orders is allowed; api is not, but gets through and is
    // counted as an audit deny.
    let inventory_admin = mesh.addr("data/inventory", None, "admin");
    let audit = r#"decision="deny",mode="audit""#;
    let before = metric(&http, &inventory_admin, "mesh_authz_decisions_total", audit).await;
    let got = http.get(&orders, "inventory", "/inventory/42", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let got = http.get(&api, "inventory.data", "/inventory/42", &[]).await;
    assert_eq!(got.status, 200, "audit mode never blocks: {}", got.body);
    assert_eq!(got.json()["service"], "data/inventory");
    let after = metric(&http, &inventory_admin, "mesh_authz_decisions_total", audit).await;
    assert_eq!(after - before, 1.0, "the would-be deny is counted once");
    mesh.stop();
}
