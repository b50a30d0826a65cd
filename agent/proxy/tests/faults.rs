//! Faults under load, with the real binary: an endpoint killed (its connections reset)
//! and restarted while ~2,000 requests a second flow loses no idempotent request (retries
//! and ejection route around it); 1,000 config reloads under load fail no request; a
//! callee that never answers is bounded by the timeouts and leaves no growth behind.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::{Agent, Http, Upstream, config, endpoints, retry, service, write};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// An upstream that can be killed like a crashed process: its listener and every
/// connection it holds close at once.
struct Killable {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
}

impl Killable {
    async fn start(addr: SocketAddr) -> Killable {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let counted = Arc::clone(&hits);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                connections.spawn(async move {
                    let service = service_fn(move |_| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok")))) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Killable { addr, hits, tasks }
    }

    /// Kills it: the listener and every open connection close now.
    fn kill(mut self) -> usize {
        self.tasks.abort_all();
        self.hits.load(Ordering::SeqCst)
    }
}

/// Sends GETs to `service` through `agent` from `clients` tasks, each pacing itself to
/// `per_client` requests a second, until `stop`; counts answers by success.
fn load(
    agent: SocketAddr,
    service: &'static str,
    clients: usize,
    per_client: u64,
    stop: &Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, Arc<AtomicUsize>, JoinSet<Vec<String>>) {
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = JoinSet::new();
    let http = Http::default();
    for _ in 0..clients {
        let (http, stop, ok, failed) = (
            http.clone(),
            Arc::clone(stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        tasks.spawn(async move {
            let mut errors = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_client));
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let got = http.get(agent, service, "/").await;
                if got.status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    if errors.len() < 3 {
                        errors.push(format!("{} {}", got.status, got.body));
                    }
                }
            }
            errors
        });
    }
    (ok, failed, tasks)
}

async fn errors(mut tasks: JoinSet<Vec<String>>) -> Vec<String> {
    let mut all = Vec::new();
    while let Some(errors) = tasks.join_next().await {
        all.extend(errors.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_killed_and_restarted_under_load_loses_no_idempotent_request() {
    let first = Killable::start("127.0.0.1:0".parse().unwrap()).await;
    let second = Killable::start("127.0.0.1:0".parse().unwrap()).await;
    let second_addr = second.addr;
    let mut reviews = service("reviews", &[], vec![]);
    reviews["retry"] = retry(3, None, None);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &config(vec![reviews]));
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[
            ("reviews", None, first.addr),
            ("reviews", None, second.addr),
        ]),
    );
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());

    // 20 clients at 100 requests a second each: ~2,000 a second.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, tasks) = load(agent.outbound, "reviews", 20, 100, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = second.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Killable::start(second_addr).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let errors = errors(tasks).await;

    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{failed} of {} failed: {errors:?}", ok + failed);
    assert!(
        ok > 2_000,
        "only {ok} requests in 3 s: the load did not run"
    );
    assert!(before_kill > 0, "the killed endpoint served before it died");
    assert!(first.hits.load(Ordering::SeqCst) > 0);
    let metrics = Http::default()
        .get(agent.admin, "admin", "/metrics")
        .await
        .body;
    assert!(
        metrics.contains("mesh_retries_total{service=\"ns/reviews\"}"),
        "the kill was healed by retries: {metrics}"
    );
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_config_reloads_under_load_fail_no_request() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let split = |v1: u32| -> Value {
        let rule = json!({
            "name": "split", "when": null,
            "backends": [
                {"service": "ns/reviews", "subset": "v1", "weight_milli": v1 * 1000},
                {"service": "ns/reviews", "subset": "v2", "weight_milli": (100 - v1) * 1000}
            ],
            "timeout_us": null, "retry": null, "mirrors": [], "fault": null,
            "set_headers": [], "remove_headers": [], "rewrite_prefix": null
        });
        config(vec![service("reviews", &["v1", "v2"], vec![rule])])
    };
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &split(100));
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
    let reloads = async || {
        let metrics = http.get(agent.admin, "admin", "/metrics").await.body;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("mesh_reloads_total{kind=\"config\",result=\"ok\"} "))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, tasks) = load(agent.outbound, "reviews", 4, 200, &stop);
    let started = Instant::now();
    let mut done = reloads().await;
    let first = done;
    for i in 0..1_000u32 {
        write(dir.path(), "config.json", &split(i % 101));
        // Each write is loaded before the next (bounded wait), so none coalesce.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = reloads().await;
            if now > done {
                done = now;
                break;
            }
            assert!(Instant::now() < deadline, "reload {i} was not applied");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let errors = errors(tasks).await;
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(done - first >= 1_000, "{} reloads", done - first);
    assert_eq!(failed, 0, "{failed} failed during reloads: {errors:?}");
    assert!(ok > 100, "only {ok} requests over {:?}", started.elapsed());
    assert!(v1.hits() > 0 && v2.hits() > 0, "both splits took effect");
}

/// The agent's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_that_never_answers_is_bounded_by_timeouts_without_growth() {
    // Accepts connections and reads requests, never answers.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&held);
    let acceptor = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    let mut hanging = service("hanging", &[], vec![]);
    hanging["timeout_us"] = json!(200_000);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &config(vec![hanging]));
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[("hanging", None, hung_addr)]),
    );
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());
    let http = Http::default();

    let round = async || {
        let mut calls = JoinSet::new();
        for _ in 0..200 {
            let http = http.clone();
            let out = agent.outbound;
            calls.spawn(async move {
                let started = Instant::now();
                let got = http.get(out, "hanging", "/").await;
                (got.status, started.elapsed())
            });
        }
        while let Some(call) = calls.join_next().await {
            let (status, took) = call.unwrap();
            assert_eq!(status, 504);
            assert!(took < Duration::from_secs(3), "a call took {took:?}");
        }
    };
    round().await;
    let warm = rss_kib(agent.pid());
    for _ in 0..5 {
        round().await;
    }
    let after = rss_kib(agent.pid());
    // 1,000 more timed-out calls: what they held was released (allocator slack aside).
    assert!(
        after < warm + 16 * 1024,
        "RSS grew from {warm} KiB to {after} KiB over 1,000 timed-out calls"
    );
    assert!(held.load(Ordering::SeqCst) > 0);
    acceptor.abort();
}
