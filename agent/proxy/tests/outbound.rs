//! The outbound path end to end: a real `mesh-agent` process between a test client and
//! real upstreams on 127.0.0.1 — header routing, weighted splits, retries and their
//! budget, per-try and total timeouts, mirroring, faults, error responses, pass-through
//! and egress denial.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

struct Mesh {
    _dir: tempfile::TempDir,
    agent: Agent,
    http: Http,
}

/// Starts an agent whose config calls `services`, with `endpoints`.
fn mesh(services: Vec<Value>, endpoints: Value) -> Mesh {
    mesh_with(config(services), endpoints)
}

fn mesh_with(config: Value, endpoints: Value) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &config);
    write(dir.path(), "endpoints.json", &endpoints);
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    Mesh {
        _dir: dir,
        agent,
        http: Http::default(),
    }
}

fn header_is(name: &str, value: &str) -> Value {
    json!({"text": {"attr": {"header": name}, "op": "eq", "value": value}})
}

#[tokio::test(flavor = "multi_thread")]
async fn header_based_routing_picks_the_rule_and_authority_forms_all_resolve() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let m = mesh(
        vec![service(
            "reviews",
            &["v1", "v2"],
            vec![
                rule(
                    "jason",
                    header_is("end-user", "jason"),
                    "reviews",
                    &[(Some("v2"), 100)],
                ),
                rule("rest", Value::Null, "reviews", &[(Some("v1"), 100)]),
            ],
        )],
        endpoints(&[
            ("reviews", Some("v1"), v1.addr),
            ("reviews", Some("v2"), v2.addr),
        ]),
    );
    let out = m.agent.outbound;
    for host in [
        "reviews",
        "reviews:9080",
        "reviews.ns",
        "reviews.ns.svc",
        "Reviews.ns.svc.cluster.local:80",
    ] {
        let got = m
            .http
            .send(out, "GET", host, "/r/1", &[("end-user", "jason")])
            .await;
        assert_eq!(
            (got.status, got.name()),
            (200, "v2".into()),
            "via {host}: {}",
            got.body
        );
        let got = m.http.get(out, host, "/r/1").await;
        assert_eq!((got.status, got.name()), (200, "v1".into()), "via {host}");
    }
    // The upstream sees the original authority and path.
    let got = m.http.get(out, "reviews:9080", "/r/1?x=1").await;
    assert_eq!(got.json()["headers"]["host"], "reviews:9080");
    assert_eq!(got.json()["path"], "/r/1");
}

#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_requests_as_sent_with_http_proxy_are_routed() {
    let v1 = Upstream::start("v1").await;
    let m = mesh(
        vec![service("reviews", &[], vec![])],
        endpoints(&[("reviews", None, v1.addr)]),
    );
    let addr = m.agent.outbound;
    let text = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(b"GET http://reviews:9080/abs HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"path\":\"/abs\""), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_90_10_split_over_2000_requests_lands_within_tolerance() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let m = mesh(
        vec![service(
            "reviews",
            &["v1", "v2"],
            vec![rule(
                "canary",
                Value::Null,
                "reviews",
                &[(Some("v1"), 90), (Some("v2"), 10)],
            )],
        )],
        endpoints(&[
            ("reviews", Some("v1"), v1.addr),
            ("reviews", Some("v2"), v2.addr),
        ]),
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, out) = (m.http.clone(), m.agent.outbound);
        tasks.push(tokio::spawn(async move {
            let mut v2 = 0;
            for _ in 0..250 {
                let got = http.get(out, "reviews", "/").await;
                assert_eq!(got.status, 200);
                v2 += usize::from(got.name() == "v2");
            }
            v2
        }));
    }
    let mut to_v2 = 0;
    for task in tasks {
        to_v2 += task.await.unwrap();
    }
    // Binomial(2000, 0.1): mean 200, sd 13.4; ±5 sd.
    assert!((133..=267).contains(&to_v2), "{to_v2} of 2000 went to v2");
    assert_eq!(v1.hits() + v2.hits(), 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_heal_a_flaky_backend_and_the_budget_caps_a_dead_one() {
    // Fails every third request: 33% failures, never two in a row.
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let flaky = Upstream::with("flaky", move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Reply {
            status: if n % 3 == 2 { 503 } else { 200 },
            delay: Duration::ZERO,
        }
    })
    .await;
    let dead = Upstream::with("dead", |_| Reply {
        status: 503,
        delay: Duration::ZERO,
    })
    .await;
    let mut flaky_service = service("flaky", &[], vec![]);
    flaky_service["retry"] = retry(3, None, None);
    let mut dead_service = service("dead", &[], vec![]);
    dead_service["retry"] = retry(3, None, Some(20));
    let m = mesh(
        vec![flaky_service, dead_service],
        endpoints(&[("flaky", None, flaky.addr), ("dead", None, dead.addr)]),
    );
    for i in 0..150 {
        let got = m.http.get(m.agent.outbound, "flaky", "/").await;
        assert_eq!(got.status, 200, "request {i} was not healed: {}", got.body);
    }
    assert!(flaky.hits() > 150, "some requests were retried");

    for _ in 0..100 {
        let got = m.http.get(m.agent.outbound, "dead", "/").await;
        assert_eq!(got.status, 503, "the last upstream answer is returned");
    }
    // Without a budget: 300 tries. A 20% budget allows about 20 retries.
    let hits = dead.hits();
    assert!((100..=130).contains(&hits), "{hits} tries for 100 requests");
    let metrics = m.http.get(m.agent.admin, "admin", "/metrics").await.body;
    assert!(
        metrics.contains("mesh_retry_budget_exhausted_total{service=\"ns/dead\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_try_and_total_timeouts_answer_504_in_bounded_time() {
    let slow = Upstream::with("slow", |_| Reply {
        status: 200,
        delay: Duration::from_secs(3),
    })
    .await;
    let mut per_try = service("pertry", &[], vec![]);
    per_try["retry"] = retry(2, Some(100), None);
    per_try["timeout_us"] = json!(5_000_000);
    let mut total = service("total", &[], vec![]);
    total["timeout_us"] = json!(300_000);
    let m = mesh(
        vec![per_try, total],
        endpoints(&[("pertry", None, slow.addr), ("total", None, slow.addr)]),
    );
    let started = Instant::now();
    let got = m.http.get(m.agent.outbound, "pertry", "/").await;
    let took = started.elapsed();
    assert_eq!(got.status, 504, "{}", got.body);
    assert_eq!(got.headers["mesh-error"], "timeout");
    assert!(
        took < Duration::from_millis(1500),
        "two 100ms tries took {took:?}"
    );
    assert_eq!(slow.hits(), 2, "the per-try timeout was retried once");

    let started = Instant::now();
    let got = m.http.get(m.agent.outbound, "total", "/").await;
    let took = started.elapsed();
    assert_eq!(got.status, 504);
    assert!(got.body.contains("route timeout"), "{}", got.body);
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirrored_traffic_arrives_and_never_changes_the_response() {
    let v1 = Upstream::start("v1").await;
    let shadow = Upstream::with("shadow", |_| Reply {
        status: 500,
        delay: Duration::from_millis(50),
    })
    .await;
    let mut r = rule("all", Value::Null, "reviews", &[(Some("v1"), 100)]);
    r["mirrors"] = json!([{"service": "ns/reviews", "subset": "v2", "percent_milli": 100_000}]);
    let m = mesh(
        vec![service("reviews", &["v1", "v2"], vec![r])],
        endpoints(&[
            ("reviews", Some("v1"), v1.addr),
            ("reviews", Some("v2"), shadow.addr),
        ]),
    );
    for _ in 0..20 {
        let got = m.http.get(m.agent.outbound, "reviews", "/").await;
        assert_eq!((got.status, got.name()), (200, "v1".into()));
    }
    let arrived = eventually(Duration::from_secs(5), async || shadow.hits() == 20).await;
    assert!(arrived, "{} of 20 mirrored requests arrived", shadow.hits());
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_header_edits_and_rewrites_apply_per_rule() {
    let v1 = Upstream::start("v1").await;
    let mut abort = rule(
        "abort",
        header_is("x-abort", "1"),
        "reviews",
        &[(None, 100)],
    );
    abort["fault"] = json!({"delay": null, "abort": {"status": 418, "percent_milli": 100_000}});
    let mut edit = rule("edit", Value::Null, "reviews", &[(None, 100)]);
    edit["set_headers"] = json!([{"name": "x-added", "value": "yes"}]);
    edit["remove_headers"] = json!(["x-secret"]);
    edit["rewrite_prefix"] = json!({"from": "/old", "to": "/new"});
    let m = mesh(
        vec![service("reviews", &[], vec![abort, edit])],
        endpoints(&[("reviews", None, v1.addr)]),
    );
    let got = m
        .http
        .send(m.agent.outbound, "GET", "reviews", "/", &[("x-abort", "1")])
        .await;
    assert_eq!(got.status, 418);
    assert_eq!(got.headers["mesh-error"], "fault-injected");
    assert_eq!(v1.hits(), 0);
    let got = m
        .http
        .send(
            m.agent.outbound,
            "GET",
            "reviews",
            "/old/page",
            &[("x-secret", "s")],
        )
        .await;
    let seen = got.json();
    assert_eq!(seen["path"], "/new/page");
    assert_eq!(seen["headers"]["x-added"], "yes");
    assert!(seen["headers"].get("x-secret").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_endpoints_and_refused_connections_get_clear_errors() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let m = mesh(
        vec![service("empty", &[], vec![]), service("down", &[], vec![])],
        endpoints(&[("down", None, closed)]),
    );
    let got = m.http.get(m.agent.outbound, "empty", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.headers["mesh-error"], "no-endpoints");
    assert!(
        got.body.contains("ns/empty has no endpoints"),
        "{}",
        got.body
    );
    let got = m.http.get(m.agent.outbound, "down", "/").await;
    assert_eq!(got.status, 502);
    assert_eq!(got.headers["mesh-error"], "connect-failed");
    let metrics = m.http.get(m.agent.admin, "admin", "/metrics").await.body;
    assert!(
        metrics.contains("mesh_endpoint_ejections_total{service=\"ns/down\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_authorities_pass_through_unless_egress_is_denied() {
    let outside = Upstream::start("outside").await;
    let m = mesh(vec![], endpoints(&[]));
    let got = m
        .http
        .get(m.agent.outbound, &outside.addr.to_string(), "/x")
        .await;
    assert_eq!((got.status, got.name()), (200, "outside".into()));

    let mut denied = config(vec![]);
    denied["outbound"]["egress"] = json!("deny");
    let m = mesh_with(denied, endpoints(&[]));
    let got = m
        .http
        .get(m.agent.outbound, &outside.addr.to_string(), "/x")
        .await;
    assert_eq!(got.status, 403);
    assert_eq!(got.headers["mesh-error"], "egress-denied");
    assert_eq!(outside.hits(), 1);

    // A request for the agent's own listener would loop back into it forever.
    let m = mesh(vec![], endpoints(&[]));
    let own = m.agent.outbound.to_string();
    let got = m.http.get(m.agent.outbound, &own, "/x").await;
    assert_eq!(got.status, 508);
    assert_eq!(got.headers["mesh-error"], "loop");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_forwards_to_the_app() {
    let app = Upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &config(vec![]));
    write(dir.path(), "endpoints.json", &endpoints(&[]));
    let agent = Agent::start(dir.path(), app.addr);
    let got = Http::default().get(agent.inbound, "client", "/hello").await;
    assert_eq!((got.status, got.name()), (200, "app".into()));
    assert_eq!(got.json()["path"], "/hello");
}
