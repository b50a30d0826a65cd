//! `meshc up examples/canary`: a progressive rollout as a user would watch it — the
//! opt-in header always reaches the canary, everyone else is split 95/5, and a failing
//! service is retried within the retry budget.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_e2e::{Http, Mesh, metric};
use std::path::Path;

#[tokio::test(flavor = "multi_thread")]
async fn the_canary_rollout_routes_splits_and_retries_within_budget() {
    let mesh = Mesh::up(Path::new("examples/canary"), &[]);
    let http = Http::default();
    let frontend = mesh.addr("shop/frontend", None, "outbound");

    // Opt-in: always the canary.
    for _ in 0..30 {
        let got = http
            .get(&frontend, "checkout", "/cart", &[("x-canary", "always")])
            .await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.subset().as_deref(), Some("canary"));
    }

    // Everyone else: 95/5. Over 1,000 draws the canary gets 50 ± 7 (sd): 20..=85 is
    // more than 4 standard deviations either side.
    let mut canary = 0;
    for _ in 0..1_000 {
        let got = http.get(&frontend, "checkout", "/cart", &[]).await;
        assert_eq!(got.status, 200, "{}", got.body);
        match got.subset().as_deref() {
            Some("canary") => canary += 1,
            Some("stable") => {}
            other => panic!("rule rollout sent a request to {other:?}"),
        }
    }
    assert!((20..=85).contains(&canary), "canary got {canary} of 1000");

    // checkout fails 30% of tries: retries (3 tries) hide most failures.
    let admin = mesh.addr("shop/frontend", None, "admin");
    let labels = r#"service="shop/checkout""#;
    let before = metric(&http, &admin, "mesh_retries_total", labels).await;
    let requests = 300;
    let mut failed = 0;
    for _ in 0..requests {
        let got = http.get(&frontend, "checkout", "/cart?fail=0.3", &[]).await;
        match got.status {
            200 => {}
            503 => failed += 1,
            other => panic!("unexpected {other}: {}", got.body),
        }
    }
    let retries = metric(&http, &admin, "mesh_retries_total", labels).await - before;
    assert!(retries > 0.0, "no retry was sent");
    assert!(
        failed < requests * 20 / 100,
        "{failed} of {requests} failed although 30% of tries fail and 3 tries are allowed"
    );

    // checkout fails every try: without a budget each request would be retried twice.
    // The budget (20% of the requests of its 10s window, plus 5/s) refuses most of them.
    let before = metric(&http, &admin, "mesh_retries_total", labels).await;
    for _ in 0..requests {
        let got = http.get(&frontend, "checkout", "/cart?fail=1", &[]).await;
        assert_eq!(got.status, 503, "{}", got.body);
    }
    let retries = metric(&http, &admin, "mesh_retries_total", labels).await - before;
    let exhausted = metric(&http, &admin, "mesh_retry_budget_exhausted_total", labels).await;
    assert!(
        exhausted > 0.0,
        "the budget never refused a retry ({retries} retries)"
    );
    let all_requests = 30.0 + 1_000.0 + 2.0 * f64::from(requests);
    let allowed = 0.2 * all_requests + 5.0 * 10.0 + 20.0;
    assert!(
        retries <= allowed && retries < 2.0 * f64::from(requests),
        "{retries} retries for {requests} failing requests exceed the budget ({allowed:.0})"
    );
    mesh.stop();
}
