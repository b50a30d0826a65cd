//! Rate limits end to end, enforced by the callee's agent: a `reviews` agent (identity
//! from a CA made in the test, permissive mTLS) in front of an app, called by a `client`
//! agent over mTLS (caller `ns/client`) and by plaintext clients (anonymous). A request
//! over a limit gets `429` with `retry-after` and `mesh-error: rate-limited` and never
//! reaches the app; with `per_caller` one caller's exhausted bucket leaves another's
//! alone; a reload keeps a limit's bucket unless its parameters change; and driven at three times the limit for ten seconds the agent admits the
//! limit's rate times the time, plus the burst, within 5%. The same two-agent mesh
//! also shows the caller's circuit breaker over mTLS (HTTP/2 between the agents).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mesh_identity::{Ca, SpiffeId};
use serde_json::{Value, json};
use support::*;
use tokio::task::JoinSet;

const CLIENT: &str = "spiffe://cluster.local/ns/ns/sa/client";
const REVIEWS: &str = "spiffe://cluster.local/ns/ns/sa/reviews";
const DAY: Duration = Duration::from_secs(24 * 3600);

fn limit(name: &str, requests: u32, period_s: u64, burst: u32, per_caller: bool) -> Value {
    json!({"name": name, "requests": requests, "period_us": period_s * 1_000_000,
           "burst": burst, "per_caller": per_caller, "when": null})
}

/// The `reviews` agent with `rate_limits` (and, with `client`, a `client` agent calling
/// it over mTLS), each with an identity from one CA.
struct Mesh {
    reviews: Agent,
    client: Option<Agent>,
    app: Upstream,
    _dirs: Vec<tempfile::TempDir>,
}

async fn mesh(rate_limits: Value, client: bool) -> Mesh {
    mesh_with(rate_limits, client, json!(null), Duration::ZERO).await
}

/// As [`mesh`], the client's `limits` toward `reviews` set to `limits`, and the app
/// answering after `delay`.
async fn mesh_with(rate_limits: Value, client: bool, limits: Value, delay: Duration) -> Mesh {
    let ca = Ca::generate("test mesh CA").unwrap();
    let app = Upstream::with("reviews-app", move |_| Reply { status: 200, delay }).await;
    let reviews_dir = tempfile::tempdir().unwrap();
    let reviews_id = reviews_dir.path().join("identity");
    ca.issue(&SpiffeId::parse(REVIEWS).unwrap(), DAY)
        .unwrap()
        .write(&reviews_id)
        .unwrap();
    let mut config = config(vec![]);
    config["workload"] = json!({
        "service": "ns/reviews", "identity": REVIEWS,
        "ports": [{"protocol": "http", "number": 9080}]
    });
    config["inbound"]["rate_limits"] = rate_limits;
    write(reviews_dir.path(), "config.json", &config);
    write(reviews_dir.path(), "endpoints.json", &endpoints(&[]));
    let reviews = Agent::start_with(
        reviews_dir.path(),
        app.addr,
        &["--identity-dir", reviews_id.to_str().unwrap()],
    );
    let mut dirs = vec![reviews_dir];
    let client = if client {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("identity");
        ca.issue(&SpiffeId::parse(CLIENT).unwrap(), DAY)
            .unwrap()
            .write(&id)
            .unwrap();
        let mut config = support::config(vec![service("reviews", &[], vec![])]);
        config["outbound"]["services"][0]["identity"] = json!(REVIEWS);
        if !limits.is_null() {
            config["outbound"]["services"][0]["limits"] = limits;
        }
        write(dir.path(), "config.json", &config);
        write(
            dir.path(),
            "endpoints.json",
            &endpoints(&[("reviews", None, reviews.inbound)]),
        );
        let agent = Agent::start_with(
            dir.path(),
            "127.0.0.1:9".parse().unwrap(),
            &["--identity-dir", id.to_str().unwrap()],
        );
        dirs.push(dir);
        Some(agent)
    } else {
        None
    };
    let mesh = Mesh {
        reviews,
        client,
        app,
        _dirs: dirs,
    };
    let http = Http::default();
    for agent in std::iter::once(&mesh.reviews).chain(mesh.client.as_ref()) {
        let ready = eventually(Duration::from_secs(5), async || {
            http.get(agent.admin, "admin", "/ready").await.status == 200
        })
        .await;
        assert!(ready, "agent at {} never became ready", agent.admin);
    }
    mesh
}

fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_a_per_caller_limit_a_caller_gets_429_and_other_callers_are_served() {
    // Two requests per minute per caller: no token comes back during the test.
    let mesh = mesh(json!([limit("per-caller", 2, 60, 2, true)]), true).await;
    let client = mesh.client.as_ref().unwrap();
    let http = Http::default();

    // Anonymous callers (plaintext, straight to the inbound listener) share a bucket.
    for _ in 0..2 {
        let got = http.get(mesh.reviews.inbound, "reviews", "/r").await;
        assert_eq!(
            (got.status, got.name()),
            (200, "reviews-app".into()),
            "{got:?}"
        );
    }
    let refused = http.get(mesh.reviews.inbound, "reviews", "/r").await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.headers["mesh-error"], "rate-limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");
    assert!(refused.body.contains("per-caller"), "{refused:?}");
    assert_eq!(
        mesh.app.hits(),
        2,
        "a refused request never reaches the app"
    );

    // `ns/client`, through its agent over mTLS, has its own bucket.
    for _ in 0..2 {
        let got = http.get(client.outbound, "reviews", "/r").await;
        assert_eq!(
            (got.status, got.name()),
            (200, "reviews-app".into()),
            "{got:?}"
        );
    }
    let refused = http.get(client.outbound, "reviews", "/r").await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.headers["mesh-error"], "rate-limited");
    assert_eq!(mesh.app.hits(), 4);

    let text = http.get(mesh.reviews.admin, "admin", "/metrics").await.body;
    let count = |result| {
        metric(
            &text,
            &format!(r#"mesh_rate_limit_total{{limit="per-caller",result="{result}"}} "#),
        )
    };
    assert_eq!(
        (count("allowed"), count("limited")),
        (Some(4), Some(2)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_survives_a_reload_until_its_limit_changes() {
    let mesh = mesh(json!([limit("all", 2, 60, 2, false)]), false).await;
    let http = Http::default();
    for _ in 0..2 {
        assert_eq!(
            http.get(mesh.reviews.inbound, "reviews", "/").await.status,
            200
        );
    }
    assert_eq!(
        http.get(mesh.reviews.inbound, "reviews", "/").await.status,
        429
    );

    // A reload that adds another limit keeps the exhausted bucket.
    let reload = async |limits: Value| {
        let path = mesh.reviews.dir.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        config["inbound"]["rate_limits"] = limits.clone();
        write(&mesh.reviews.dir, "config.json", &config);
        let loaded = eventually(Duration::from_secs(10), async || {
            let body = http.get(mesh.reviews.admin, "admin", "/config").await.body;
            let active: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            active["config"]["inbound"]["rate_limits"] == limits
        })
        .await;
        assert!(loaded, "the agent never loaded rate limits {limits}");
    };
    let other = json!({"name": "other", "requests": 1, "period_us": 1_000_000, "burst": 1,
        "per_caller": false,
        "when": {"text": {"attr": "path", "op": "starts_with", "value": "/elsewhere"}}});
    reload(json!([limit("all", 2, 60, 2, false), other])).await;
    let got = http.get(mesh.reviews.inbound, "reviews", "/").await;
    assert_eq!(got.status, 429, "same limit, same bucket: {got:?}");

    // Changing the limit's parameters starts it afresh.
    reload(json!([limit("all", 3, 60, 3, false)])).await;
    let got = http.get(mesh.reviews.inbound, "reviews", "/").await;
    assert_eq!(got.status, 200, "new parameters, a new bucket: {got:?}");
    assert_eq!(mesh.app.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_three_times_the_limit_the_admitted_rate_is_the_limit() {
    const RATE: u64 = 100;
    const BURST: u64 = 20;
    const TASKS: u64 = 6;
    let mesh = mesh(json!([limit("all", 100, 1, 20, false)]), false).await;
    let inbound = mesh.reviews.inbound;
    let (admitted, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let run = Duration::from_secs(10);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (admitted, refused, http) =
            (Arc::clone(&admitted), Arc::clone(&refused), Http::default());
        tasks.spawn(async move {
            // Each task sends its share of 3 × RATE a second, for `run` and no longer.
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 * TASKS / (3 * RATE)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut other = Vec::new();
            while started.elapsed() < run {
                tick.tick().await;
                let got = http.get(inbound, "reviews", "/").await;
                match got.status {
                    200 => admitted.fetch_add(1, Ordering::SeqCst),
                    429 => refused.fetch_add(1, Ordering::SeqCst),
                    _ => {
                        other.push(got.status);
                        0
                    }
                };
            }
            other
        });
    }
    while let Some(other) = tasks.join_next().await {
        assert_eq!(
            other.unwrap(),
            Vec::<u16>::new(),
            "only 200 and 429 answers"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (admitted, refused) = (
        admitted.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    let expected = RATE as f64 * elapsed + BURST as f64;
    let sent = admitted + refused;
    assert!(
        sent as f64 > 2.0 * expected,
        "the load reached {sent} requests, well over the {expected:.0} admitted"
    );
    let error = (admitted as f64 - expected).abs() / expected;
    eprintln!(
        "sent {sent} in {elapsed:.2}s, admitted {admitted}, expected {expected:.0}: off by {:.2}%",
        error * 100.0
    );
    assert!(
        error <= 0.05,
        "admitted {admitted} of {sent} in {elapsed:.2}s, expected {expected:.0} (±5%), off by {:.1}%",
        error * 100.0
    );
    assert_eq!(
        mesh.app.hits(),
        admitted,
        "only admitted requests reach the app"
    );
}

/// Circuit breaking over mTLS (it lives in the caller's agent; tested here for the mesh
/// of two agents): the caller's gated mTLS client multiplexes its tries on one HTTP/2
/// connection, so `max_connections 1` refuses nothing while `max_requests` refuses the
/// tries beyond it.
#[tokio::test(flavor = "multi_thread")]
async fn over_mtls_max_requests_refuses_and_one_http2_connection_carries_the_rest() {
    let limits = json!({"max_connections": 1, "max_pending": null, "max_requests": 3});
    let mesh = mesh_with(json!([]), true, limits, Duration::from_millis(600)).await;
    let client = mesh.client.as_ref().unwrap();
    // The first request opens the connection (HTTP/2, negotiated by ALPN).
    assert_eq!(
        Http::default()
            .get(client.outbound, "reviews", "/")
            .await
            .status,
        200
    );
    let mut requests = JoinSet::new();
    for _ in 0..5 {
        let outbound = client.outbound;
        requests.spawn(async move { Http::default().get(outbound, "reviews", "/").await });
    }
    let mut statuses = Vec::new();
    while let Some(got) = requests.join_next().await {
        let got = got.unwrap();
        if got.status == 503 {
            assert_eq!(got.headers["mesh-error"], "overloaded", "{got:?}");
            assert!(got.body.contains("max_requests"), "{got:?}");
        }
        statuses.push(got.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 503, 503]);
    assert_eq!(mesh.app.hits(), 4);
    let text = Http::default()
        .get(client.admin, "admin", "/metrics")
        .await
        .body;
    let count = |limit| {
        metric(
            &text,
            &format!(r#"mesh_overloaded_total{{service="ns/reviews",limit="{limit}"}} "#),
        )
    };
    assert_eq!(count("max_requests"), Some(2), "{text}");
    assert_eq!(count("max_connections"), Some(0), "{text}");
}
