//! `meshc up examples/resilience`: a callee's agent enforces its rate limits per caller
//! (429 with `retry-after` and `mesh-error: rate-limited`, another caller unaffected), and
//! a caller's agent keeps its concurrency limit to a service (503 `overloaded` at once
//! for what is over it, the rest served), counted in both agents' metrics.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_e2e::{Http, Mesh, metric};
use std::path::Path;

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_concurrency_limits_hold_through_the_mesh() {
    let mesh = Mesh::up(Path::new("examples/resilience"), &[]);
    let http = Http::default();
    let storefront = mesh.addr("store/storefront", None, "outbound");
    let partner = mesh.addr("store/partner", None, "outbound");

    // `suggest` is 5/s per caller with a burst of 5: twenty quick calls from storefront
    // get the burst (and at most what refills meanwhile), the rest are refused by
    // search's agent, and partner's first calls still pass.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let got = http.get(&storefront, "search", "/suggest?q=sh", &[]).await;
        if got.status == 429 {
            assert_eq!(got.mesh_error.as_deref(), Some("rate-limited"), "{got:?}");
        } else {
            assert_eq!(got.status, 200, "{got:?}");
        }
        statuses.push(got.status);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == 200),
        "the burst of 5 is served: {statuses:?}"
    );
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 5, "only {refused} of 20 refused: {statuses:?}");
    for _ in 0..3 {
        let got = http.get(&partner, "search", "/suggest?q=sh", &[]).await;
        assert_eq!(got.status, 200, "partner has its own bucket: {got:?}");
    }
    let search_admin = mesh.addr("store/search", None, "admin");
    let limited = metric(
        &http,
        &search_admin,
        "mesh_rate_limit_total",
        r#"limit="suggest""#,
    )
    .await;
    assert!(limited >= 23.0, "suggest counted {limited} requests");

    // `limits { max_requests 4 }` in storefront's agent: twelve slow searches at once,
    // four are served and eight are refused as overloaded (had they queued for a slot
    // instead, all twelve would be served).
    let calls = (0..12).map(|_| {
        let http = http.clone();
        let storefront = storefront.clone();
        tokio::spawn(async move {
            http.get(&storefront, "search", "/search?q=shoes&delay=2s", &[])
                .await
        })
    });
    let mut served = 0;
    let mut overloaded = 0;
    for call in calls.collect::<Vec<_>>() {
        let got = call.await.unwrap();
        match (got.status, got.mesh_error.as_deref()) {
            (200, _) => served += 1,
            (503, Some("overloaded")) => overloaded += 1,
            _ => panic!("unexpected answer: {got:?}"),
        }
    }
    assert_eq!((served, overloaded), (4, 8));
    let storefront_admin = mesh.addr("store/storefront", None, "admin");
    let counted = metric(
        &http,
        &storefront_admin,
        "mesh_overloaded_total",
        r#"service="store/search""#,
    )
    .await;
    assert_eq!(counted, 8.0);
    mesh.stop();
}
