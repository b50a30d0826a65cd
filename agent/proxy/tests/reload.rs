//! Hot reload and lifecycle end to end: a config change under continuous load is applied
//! with no failed request; an invalid config is rejected while traffic keeps flowing; a
//! Kubernetes-style `..data` symlink swap is picked up; the admin listener reports
//! readiness, metrics and the active config; SIGTERM drains in-flight requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn split_config(v1: u32, v2: u32) -> Value {
    config(vec![service(
        "reviews",
        &["v1", "v2"],
        vec![rule(
            "split",
            Value::Null,
            "reviews",
            &[(Some("v1"), v1), (Some("v2"), v2)],
        )],
    )])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_change_under_load_applies_with_zero_failures_and_bad_configs_are_rejected() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &split_config(100, 0));
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[
            ("reviews", Some("v1"), v1.addr),
            ("reviews", Some("v2"), v2.addr),
        ]),
    );
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    let http = Http::default();

    // Continuous load from four clients until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, out) = (http.clone(), agent.outbound);
        let (stop, failures, sent) = (Arc::clone(&stop), Arc::clone(&failures), Arc::clone(&sent));
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let got = http.get(out, "reviews", "/").await;
                sent.fetch_add(1, Ordering::SeqCst);
                if got.status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(v2.hits(), 0);

    let hash_before = http.get(agent.admin, "admin", "/config").await.json()["hash"].clone();
    write(dir.path(), "config.json", &split_config(0, 100));
    let switched = eventually(Duration::from_secs(5), async || {
        http.get(agent.outbound, "reviews", "/").await.name() == "v2"
    })
    .await;
    assert!(switched, "the new split took effect");
    let hash_after = http.get(agent.admin, "admin", "/config").await.json()["hash"].clone();
    assert_ne!(hash_before, hash_after);

    // An invalid config (weights add up to 50%) is rejected; the last good one stays.
    write(dir.path(), "config.json", &split_config(25, 25));
    let rejected = eventually(Duration::from_secs(5), async || {
        http.get(agent.admin, "admin", "/metrics")
            .await
            .body
            .contains("mesh_reloads_total{kind=\"config\",result=\"failed\"} 1")
    })
    .await;
    assert!(rejected, "the invalid config was counted as rejected");
    std::fs::write(dir.path().join("config.json"), b"{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..20 {
        let got = http.get(agent.outbound, "reviews", "/").await;
        assert_eq!(
            (got.status, got.name()),
            (200, "v2".into()),
            "the last good config is in force"
        );
    }
    assert_eq!(
        http.get(agent.admin, "admin", "/config").await.json()["hash"],
        hash_after
    );

    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert!(sent.load(Ordering::SeqCst) > 50, "the load ran");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during reloads"
    );
}

/// Lays out `dir` like a Kubernetes volume: `config.json -> ..data/config.json`,
/// `..data -> VERSION/`.
fn kube_swap(dir: &Path, version: &str, config: &Value, endpoints: &Value) {
    let data = dir.join(version);
    std::fs::create_dir_all(&data).unwrap();
    write(&data, "config.json", config);
    write(&data, "endpoints.json", endpoints);
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["config.json", "endpoints.json"] {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubernetes_style_symlink_swap_is_picked_up() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let dir = tempfile::tempdir().unwrap();
    let eps = endpoints(&[
        ("reviews", Some("v1"), v1.addr),
        ("reviews", Some("v2"), v2.addr),
    ]);
    kube_swap(dir.path(), "..2026_11_25_1", &split_config(100, 0), &eps);
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    let http = Http::default();
    assert_eq!(http.get(agent.outbound, "reviews", "/").await.name(), "v1");
    kube_swap(dir.path(), "..2026_11_25_2", &split_config(0, 100), &eps);
    let swapped = eventually(Duration::from_secs(5), async || {
        http.get(agent.outbound, "reviews", "/").await.name() == "v2"
    })
    .await;
    assert!(swapped, "the swapped config took effect");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_reports_readiness_metrics_and_config() {
    let v1 = Upstream::start("v1").await;
    let dir = tempfile::tempdir().unwrap();
    // No endpoints file yet: not ready, and the outbound side says so.
    write(dir.path(), "config.json", &split_config(100, 0));
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    let http = Http::default();
    assert_eq!(http.get(agent.admin, "admin", "/live").await.status, 200);
    assert_eq!(http.get(agent.admin, "admin", "/ready").await.status, 503);
    let got = http.get(agent.outbound, "reviews", "/").await;
    assert_eq!(
        (got.status, got.headers["mesh-error"].to_str().unwrap()),
        (503, "not-ready")
    );

    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[("reviews", Some("v1"), v1.addr)]),
    );
    let ready = eventually(Duration::from_secs(5), async || {
        http.get(agent.admin, "admin", "/ready").await.status == 200
    })
    .await;
    assert!(ready);
    assert_eq!(http.get(agent.outbound, "reviews", "/").await.status, 200);
    let metrics = http.get(agent.admin, "admin", "/metrics").await.body;
    assert!(
        metrics.contains("mesh_requests_total{direction=\"outbound\",service=\"ns/reviews\",subset=\"v1\",rule=\"split\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mesh_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let config = http.get(agent.admin, "admin", "/config").await.json();
    assert_eq!(config["config"]["workload"]["service"], "ns/client");
    assert_eq!(config["hash"].as_str().map(str::len), Some(64));
    assert_eq!(http.get(agent.admin, "admin", "/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let (slow, _dir, mut agent) = slow_upstream_behind_agent(Duration::from_millis(700)).await;
    let http = Http::default();
    let out = agent.outbound;
    let in_flight = tokio::spawn(async move { http.get(out, "slow", "/").await });
    let arrived = eventually(Duration::from_secs(5), async || slow.hits() == 1).await;
    assert!(arrived);
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let got = in_flight.await.unwrap();
    assert_eq!(
        (got.status, got.name()),
        (200, "slow".into()),
        "the in-flight request finished"
    );
    let status = agent
        .wait_exit(Duration::from_secs(5))
        .expect("the agent exited");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        std::net::TcpStream::connect(out).is_err(),
        "no longer accepting"
    );
}

/// SIGTERM under load: 64 requests in flight on 64 connections, each held 600 ms by the
/// upstream, when the agent is told to stop. Every one is answered 200 (none lost), the
/// agent stops accepting at once and exits cleanly as soon as the last one is answered.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_no_in_flight_request() {
    const IN_FLIGHT: usize = 64;
    let (slow, _dir, mut agent) = slow_upstream_behind_agent(Duration::from_millis(600)).await;
    let out = agent.outbound;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        // A client each: one connection each, all in flight together.
        let http = Http::default();
        requests.spawn(async move { http.get(out, "slow", "/").await });
    }
    let arrived = eventually(Duration::from_secs(10), async || slow.hits() == IN_FLIGHT).await;
    assert!(
        arrived,
        "{} of {IN_FLIGHT} reached the upstream",
        slow.hits()
    );
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let refused = eventually(Duration::from_secs(2), async || {
        std::net::TcpStream::connect(out).is_err()
    })
    .await;
    assert!(refused, "still accepting after SIGTERM");
    let mut answered = 0;
    while let Some(got) = requests.join_next().await {
        let got = got.unwrap();
        assert_eq!((got.status, got.name()), (200, "slow".into()));
        answered += 1;
    }
    assert_eq!(answered, IN_FLIGHT, "every in-flight request was answered");
    let status = agent
        .wait_exit(Duration::from_secs(5))
        .expect("the agent exited within its drain timeout");
    assert!(status.success(), "{status:?}");
    let drained = started.elapsed();
    assert!(
        drained < Duration::from_secs(3),
        "drained in {drained:?}: it should end with the last answer (~0.6 s), not the 5 s timeout"
    );
    eprintln!("drained {IN_FLIGHT} in-flight requests in {drained:?}");
}

/// An upstream `slow` that answers after `delay`, and an agent routing to it.
async fn slow_upstream_behind_agent(delay: Duration) -> (Upstream, tempfile::TempDir, Agent) {
    let slow = Upstream::with("slow", move |_| Reply { status: 200, delay }).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.json",
        &config(vec![service("slow", &[], vec![])]),
    );
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[("slow", None, slow.addr)]),
    );
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    (slow, dir, agent)
}
