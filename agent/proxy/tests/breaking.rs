//! Circuit breaking and outlier ejection in the caller's agent, with the real binary and
//! real endpoints that fail on cue: concurrency over a service's `max_requests` gets
//! `503 overloaded` at once while requests within it are served; a request that needs a
//! connection beyond `max_connections` too, and the open one serves the next; of two endpoints the
//! one answering 500 is ejected after `consecutive_5xx` failures, gets no traffic until
//! its ejection ends and is used again after, and with a retry profile every request
//! still succeeds (each failed try retried on the other endpoint); `max_ejected` keeps the last endpoint of
//! two in balancing however it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tokio::task::JoinSet;

/// An agent calling `ns/reviews` (round robin) at `upstreams`, with `extra` fields on the
/// service.
/// The directory comes first so that it outlives the agent (bindings drop in reverse).
async fn agent(upstreams: &[&Upstream], extra: Value) -> (tempfile::TempDir, Agent) {
    let dir = tempfile::tempdir().unwrap();
    let mut reviews = service("reviews", &[], vec![]);
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            reviews[key] = value;
        }
    }
    write(dir.path(), "config.json", &config(vec![reviews]));
    let list: Vec<_> = upstreams
        .iter()
        .map(|u| ("reviews", None, u.addr))
        .collect();
    write(dir.path(), "endpoints.json", &endpoints(&list));
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    let http = Http::default();
    let ready = eventually(Duration::from_secs(5), async || {
        http.get(agent.admin, "admin", "/ready").await.status == 200
    })
    .await;
    assert!(ready, "the agent never became ready");
    (dir, agent)
}

/// An upstream answering 500 while `failing` is set, 200 after.
async fn failing(name: &str, failing: &Arc<AtomicBool>) -> Upstream {
    let failing = Arc::clone(failing);
    Upstream::with(name, move |_| Reply {
        status: if failing.load(Ordering::SeqCst) {
            500
        } else {
            200
        },
        delay: Duration::ZERO,
    })
    .await
}

fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_over_max_requests_gets_503_overloaded_and_the_rest_is_served() {
    let slow = Upstream::with("slow", |_| Reply {
        status: 200,
        delay: Duration::from_millis(600),
    })
    .await;
    let limits =
        json!({"limits": {"max_connections": null, "max_pending": null, "max_requests": 2}});
    let (_dir, agent) = agent(&[&slow], limits).await;
    let mut requests = JoinSet::new();
    for _ in 0..6 {
        let outbound = agent.outbound;
        requests.spawn(async move { Http::default().get(outbound, "reviews", "/").await });
    }
    let (mut served, mut refused) = (0, 0);
    while let Some(joined) = requests.join_next().await {
        let got = joined.unwrap();
        match got.status {
            200 => served += 1,
            503 => {
                assert_eq!(got.headers["mesh-error"], "overloaded", "{got:?}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {got:?}"),
        }
    }
    assert_eq!((served, refused), (2, 4));
    assert_eq!(slow.hits(), 2, "refused requests never reach the endpoint");
    // Within the limit again, requests are served.
    let got = Http::default().get(agent.outbound, "reviews", "/").await;
    assert_eq!(got.status, 200, "{got:?}");
    let text = Http::default()
        .get(agent.admin, "admin", "/metrics")
        .await
        .body;
    let line = r#"mesh_overloaded_total{service="ns/reviews",limit="max_requests"} "#;
    assert_eq!(metric(&text, line), Some(4), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_max_connections_a_request_needing_a_new_connection_gets_503_overloaded() {
    let slow = Upstream::with("slow", |_| Reply {
        status: 200,
        delay: Duration::from_millis(600),
    })
    .await;
    // HTTP/1.1 upstream: one connection carries one request at a time.
    let limits =
        json!({"limits": {"max_connections": 1, "max_pending": null, "max_requests": null}});
    let (_dir, agent) = agent(&[&slow], limits).await;
    let first = {
        let outbound = agent.outbound;
        tokio::spawn(async move { Http::default().get(outbound, "reviews", "/").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = Http::default().get(agent.outbound, "reviews", "/").await;
    assert!(
        !first.is_finished(),
        "refused while the first was still in flight, not after waiting for it"
    );
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.headers["mesh-error"], "overloaded");
    assert!(refused.body.contains("max_connections"), "{refused:?}");
    assert_eq!(first.await.unwrap().status, 200);
    // The connection, idle again, serves the next request.
    let again = Http::default().get(agent.outbound, "reviews", "/").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(slow.hits(), 2);
    let text = Http::default()
        .get(agent.admin, "admin", "/metrics")
        .await
        .body;
    let line = r#"mesh_overloaded_total{service="ns/reviews",limit="max_connections"} "#;
    assert_eq!(metric(&text, line), Some(1), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_is_ejected_until_its_ejection_ends() {
    let bad_fails = Arc::new(AtomicBool::new(true));
    let good = Upstream::start("good").await;
    let bad = failing("bad", &bad_fails).await;
    let outlier = json!({"outlier": {"consecutive_5xx": 3, "interval_us": 10_000_000,
        "base_ejection_us": 2_000_000, "max_ejected_milli": 50_000}});
    let (_dir, agent) = agent(&[&good, &bad], outlier).await;
    let http = Http::default();

    // Round robin: every other request meets `bad` until its third 500 ejects it.
    let ejected_at = {
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(http.get(agent.outbound, "reviews", "/").await.status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 500).count(),
            3,
            "{statuses:?}"
        );
        Instant::now()
    };
    assert_eq!(bad.hits(), 3, "no traffic to the ejected endpoint");
    assert_eq!(good.hits(), 27);
    let text = http.get(agent.admin, "admin", "/metrics").await.body;
    let line = r#"mesh_outlier_ejections_total{service="ns/reviews"} "#;
    assert_eq!(metric(&text, line), Some(1), "{text}");

    // Healthy again, it gets traffic once its 2 s ejection is over (and not before).
    bad_fails.store(false, Ordering::SeqCst);
    let back = eventually(Duration::from_secs(5), async || {
        http.get(agent.outbound, "reviews", "/").await;
        bad.hits() > 3
    })
    .await;
    assert!(back, "the endpoint came back after its ejection");
    let after = ejected_at.elapsed();
    assert!(
        after >= Duration::from_millis(1_500),
        "back after {after:?}, before the ejection ended"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_go_to_the_other_endpoint_and_never_to_an_ejected_one() {
    let bad_fails = Arc::new(AtomicBool::new(true));
    let good = Upstream::start("good").await;
    let bad = failing("bad", &bad_fails).await;
    let extra = json!({
        "retry": retry(3, None, None),
        "outlier": {"consecutive_5xx": 3, "interval_us": 10_000_000,
            "base_ejection_us": 30_000_000, "max_ejected_milli": 50_000}
    });
    let (_dir, agent) = agent(&[&good, &bad], extra).await;
    let http = Http::default();
    for _ in 0..20 {
        let got = http.get(agent.outbound, "reviews", "/").await;
        assert_eq!((got.status, got.name()), (200, "good".into()), "{got:?}");
    }
    // Each 500 was retried on `good` (never twice on `bad`); after the third, `bad` is
    // ejected and no try goes to it.
    assert_eq!(bad.hits(), 3);
    assert_eq!(good.hits(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_ejected_keeps_the_last_endpoint_in_balancing() {
    let fails = Arc::new(AtomicBool::new(true));
    let a = failing("a", &fails).await;
    let b = failing("b", &fails).await;
    let outlier = json!({"outlier": {"consecutive_5xx": 2, "interval_us": 10_000_000,
        "base_ejection_us": 30_000_000, "max_ejected_milli": 50_000}});
    let (_dir, agent) = agent(&[&a, &b], outlier).await;
    let http = Http::default();
    for _ in 0..20 {
        assert_eq!(http.get(agent.outbound, "reviews", "/").await.status, 500);
    }
    // One of the two was ejected after its second 500; the other, though failing as
    // much, stays in: 50% of two endpoints is one.
    let (a, b) = (a.hits(), b.hits());
    assert_eq!(a.min(b), 2, "hits {a} and {b}");
    assert_eq!(a.max(b), 18, "hits {a} and {b}");
    let text = http.get(agent.admin, "admin", "/metrics").await.body;
    let line = r#"mesh_outlier_ejections_total{service="ns/reviews"} "#;
    assert_eq!(metric(&text, line), Some(1), "{text}");
}
