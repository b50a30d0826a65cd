//! Kubernetes discovery end to end: a real `mesh-agent` with `--discovery kubernetes`
//! pointed (through `KUBECONFIG`) at the in-process fake API server, proxying to real
//! upstreams that stand for pods on their own loopback addresses. The agent follows
//! scale-up, scale-down and readiness changes within a second, selects subsets by pod
//! labels, and keeps serving its last known endpoints through an API outage and a
//! `410 Gone` relist, reporting the watch state as a metric. The discovery itself, through
//! the library, gives Services' cluster IPs as their virtual addresses.
#![cfg(feature = "kubernetes")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mesh_agent::discovery::Discovery;
use mesh_agent::kubernetes::KubeDiscovery;
use mesh_agent::state::Shared;
use mesh_fake_api::FakeApi;
use serde_json::{Value, json};
use support::*;

fn pod(name: &str, version: &str) -> Value {
    let mut pod = uninjected_pod(name, version);
    pod["metadata"]["annotations"] = json!({"mesh/injected": "mesh-agent:test"});
    pod
}

/// A pod `meshc inject` has not given an agent yet (no `mesh/injected` annotation).
fn uninjected_pod(name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "reviews", "version": version}},
    })
}

/// Discovery from `api`, built through the library as the agent builds it.
async fn discovery(api: &FakeApi, shared: &Arc<Shared>) -> KubeDiscovery {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&api.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    KubeDiscovery::with_client(client, 15006, Arc::clone(&shared.metrics))
}

/// Service `ns/reviews` with `cluster_ips` (`["None"]` for a headless Service).
fn k8s_service(cluster_ips: &[&str]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "reviews", "namespace": "ns"},
        "spec": {
            "clusterIP": cluster_ips[0],
            "clusterIPs": cluster_ips,
            "ports": [{"name": "http", "port": 9080, "targetPort": 9080, "protocol": "TCP"}],
            "selector": {"app": "reviews"},
        },
    })
}

/// The slice of `ns/reviews`: `(ip, ready, pod)`.
fn slice(endpoints: &[(&str, bool, &str)]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "reviews-abcde",
            "namespace": "ns",
            "labels": {"kubernetes.io/service-name": "reviews"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|(ip, ready, pod)| json!({
            "addresses": [ip],
            "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": "ns"},
        })).collect::<Vec<_>>(),
    })
}

/// Which upstreams answer 30 requests to `reviews` (with `headers`).
async fn answering(http: &Http, agent: &Agent, headers: &[(&str, &str)]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for _ in 0..30 {
        let got = http
            .send(agent.outbound, "GET", "reviews", "/", headers)
            .await;
        if got.status == 200 {
            names.insert(got.name());
        } else {
            names.insert(format!("status {}", got.status));
        }
    }
    names
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn metric(http: &Http, agent: &Agent, line: &str) -> bool {
    let got = http.get(agent.admin, "admin", "/metrics").await;
    got.body.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_endpoint_slices_and_survives_watch_failures() {
    let api = FakeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path()).unwrap();

    // Pods: the same port on three loopback addresses.
    let a = Upstream::at("a", "127.0.0.2:0".parse().unwrap(), |_| Reply::ok()).await;
    let port = a.addr.port();
    let at = |ip: &str| -> SocketAddr { format!("{ip}:{port}").parse().unwrap() };
    let b = Upstream::at("b", at("127.0.0.3"), |_| Reply::ok()).await;
    let c = Upstream::at("c", at("127.0.0.4"), |_| Reply::ok()).await;
    let _ = (&b, &c);

    api.put(pod("reviews-a", "v1"));
    api.put(pod("reviews-b", "v2"));
    api.put(pod("reviews-c", "v2"));
    api.put(slice(&[("127.0.0.2", true, "reviews-a")]));
    api.put(k8s_service(&["10.96.0.12"]));

    let header_v2 = json!({"text": {"attr": {"header": "x-v2"}, "op": "eq", "value": "1"}});
    write(
        dir.path(),
        "config.json",
        &config(vec![service(
            "reviews",
            &["v1", "v2"],
            vec![
                rule("v2", header_v2, "reviews", &[(Some("v2"), 100)]),
                rule("all", Value::Null, "reviews", &[(None, 100)]),
            ],
        )]),
    );
    let port_text = port.to_string();
    let agent = Agent::start_env(
        dir.path(),
        "127.0.0.1:9".parse().unwrap(),
        &["--discovery", "kubernetes", "--peer-port", &port_text],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let http = Http::default();
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.get(agent.admin, "admin", "/ready").await.status == 200
        })
        .await,
        "ready once the watches have listed"
    );
    assert_eq!(answering(&http, &agent, &[]).await, set(&["a"]));
    let requests = api.requests();
    for path in [
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/api/v1/pods",
        "/api/v1/services",
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.path == path && r.query.contains("watch=true")),
            "watches {path}: {requests:?}"
        );
    }
    for resource in ["endpointslices", "pods", "services"] {
        assert!(
            metric(
                &http,
                &agent,
                &format!("mesh_discovery_watch_up{{resource=\"{resource}\"}} 1")
            )
            .await,
            "{resource}"
        );
    }

    // Scale up: followed within a second.
    api.put(slice(&[
        ("127.0.0.2", true, "reviews-a"),
        ("127.0.0.3", true, "reviews-b"),
        ("127.0.0.4", false, "reviews-c"),
    ]));
    assert!(
        eventually(Duration::from_secs(1), async || {
            answering(&http, &agent, &[]).await == set(&["a", "b"])
        })
        .await,
        "scale-up within a second (the unready endpoint stays out)"
    );
    // Subsets select on the pods' labels.
    assert_eq!(
        answering(&http, &agent, &[("x-v2", "1")]).await,
        set(&["b"])
    );

    // Readiness: c becomes ready, a stops being ready.
    api.put(slice(&[
        ("127.0.0.2", false, "reviews-a"),
        ("127.0.0.3", true, "reviews-b"),
        ("127.0.0.4", true, "reviews-c"),
    ]));
    assert!(
        eventually(Duration::from_secs(1), async || {
            answering(&http, &agent, &[]).await == set(&["b", "c"])
        })
        .await,
        "readiness changes within a second"
    );

    // Scale down to c.
    api.put(slice(&[("127.0.0.4", true, "reviews-c")]));
    assert!(
        eventually(Duration::from_secs(1), async || {
            answering(&http, &agent, &[]).await == set(&["c"])
        })
        .await,
        "scale-down within a second"
    );

    // The API goes away: the watches fail, the last known endpoints keep serving.
    api.set_down(true);
    assert!(
        eventually(Duration::from_secs(10), async || {
            metric(
                &http,
                &agent,
                "mesh_discovery_watch_up{resource=\"endpointslices\"} 0",
            )
            .await
        })
        .await,
        "the metric shows the failed watch"
    );
    assert_eq!(answering(&http, &agent, &[]).await, set(&["c"]));
    assert_eq!(http.get(agent.admin, "admin", "/ready").await.status, 200);

    // It comes back with its history compacted: the watch gets 410 Gone and relists,
    // seeing what changed meanwhile.
    api.put(slice(&[
        ("127.0.0.2", true, "reviews-a"),
        ("127.0.0.4", true, "reviews-c"),
    ]));
    api.compact();
    api.set_down(false);
    assert!(
        eventually(Duration::from_secs(15), async || {
            answering(&http, &agent, &[]).await == set(&["a", "c"])
        })
        .await,
        "recovers after the outage"
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            metric(
                &http,
                &agent,
                "mesh_discovery_watch_up{resource=\"endpointslices\"} 1",
            )
            .await
        })
        .await
    );
    let errors = http.get(agent.admin, "admin", "/metrics").await.body;
    assert!(
        errors.lines().any(|l| l
            .starts_with("mesh_discovery_watch_errors_total{resource=\"endpointslices\"}")
            && !l.ends_with(" 0")),
        "{errors}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_resumes_from_its_resource_version() {
    let api = FakeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path()).unwrap();
    let a = Upstream::at("a", "127.0.0.5:0".parse().unwrap(), |_| Reply::ok()).await;
    let port = a.addr.port();
    let b = Upstream::at("b", format!("127.0.0.6:{port}").parse().unwrap(), |_| {
        Reply::ok()
    })
    .await;
    let _ = &b;
    api.put(pod("reviews-a", "v1"));
    api.put(pod("reviews-b", "v1"));
    api.put(slice(&[("127.0.0.5", true, "reviews-a")]));
    write(
        dir.path(),
        "config.json",
        &config(vec![service("reviews", &[], vec![])]),
    );
    let port_text = port.to_string();
    let agent = Agent::start_env(
        dir.path(),
        "127.0.0.1:9".parse().unwrap(),
        &["--discovery", "kubernetes", "--peer-port", &port_text],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let http = Http::default();
    assert!(
        eventually(Duration::from_secs(10), async || {
            answering(&http, &agent, &[]).await == set(&["a"])
        })
        .await
    );
    let lists = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| r.path.ends_with("/endpointslices") && !r.query.contains("watch=true"))
            .count()
    };
    let listed = lists(&api);
    api.break_watches();
    api.put(slice(&[("127.0.0.6", true, "reviews-b")]));
    assert!(
        eventually(Duration::from_secs(5), async || {
            answering(&http, &agent, &[]).await == set(&["b"])
        })
        .await
    );
    assert_eq!(
        lists(&api),
        listed,
        "resumed by watching from its resourceVersion, no relist"
    );
    let watches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/endpointslices") && r.query.contains("watch=true"))
        .collect();
    assert!(watches.len() >= 2, "{watches:?}");
    assert!(watches.iter().all(|w| w.query.contains("resourceVersion=")));
    assert!(
        watches
            .iter()
            .all(|w| w.query.contains("allowWatchBookmarks=true"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_cluster_ips_are_their_virtual_addresses() {
    let api = FakeApi::start().await.unwrap();
    api.put(pod("reviews-a", "v1"));
    api.put(slice(&[("10.0.0.7", true, "reviews-a")]));
    api.put(k8s_service(&["10.96.0.12", "fd00::12"]));
    let shared = Arc::new(Shared::new(false));
    let discovery = discovery(&api, &shared).await;
    let ips = |discovery: &KubeDiscovery| -> Option<Vec<String>> {
        let endpoints = discovery.load().ok()?;
        Some(
            endpoints
                .ips("ns/reviews")
                .map(|ip: IpAddr| ip.to_string())
                .collect(),
        )
    };
    let expect = |want: &[&str]| -> Option<Vec<String>> {
        Some(want.iter().map(|ip| ip.to_string()).collect())
    };
    assert!(
        eventually(Duration::from_secs(10), async || ips(&discovery)
            == expect(&["10.96.0.12", "fd00::12", "10.0.0.7"]))
        .await,
        "the cluster IPs, then the endpoint's: {:?}",
        ips(&discovery)
    );
    assert!(
        shared
            .metrics
            .encode()
            .lines()
            .any(|l| l == "mesh_discovery_watch_up{resource=\"services\"} 1")
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.path == "/api/v1/services" && r.query.contains("watch=true"))
    );

    // Made headless: no virtual address left, the endpoint still names the service.
    api.put(k8s_service(&["None"]));
    assert!(
        eventually(Duration::from_secs(5), async || ips(&discovery)
            == expect(&["10.0.0.7"]))
        .await,
        "{:?}",
        ips(&discovery)
    );

    // A new cluster IP, then the Service deleted.
    api.put(k8s_service(&["10.96.0.40"]));
    assert!(
        eventually(Duration::from_secs(5), async || ips(&discovery)
            == expect(&["10.96.0.40", "10.0.0.7"]))
        .await
    );
    assert!(api.delete("v1", "Service", Some("ns"), "reviews"));
    assert!(
        eventually(Duration::from_secs(5), async || ips(&discovery)
            == expect(&["10.0.0.7"]))
        .await
    );
}

/// Migration: a pod without the `mesh/injected` annotation has no agent yet; its endpoint
/// is the pod's own address at the slice's port, marked not meshed, so callers reach it in
/// plaintext while the mesh is permissive. Injected pods stay at the agents' peer port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_without_an_agent_are_endpoints_at_their_app_port() {
    let api = FakeApi::start().await.unwrap();
    api.put(pod("reviews-a", "v1"));
    api.put(uninjected_pod("reviews-b", "v2"));
    api.put(slice(&[
        ("10.0.0.7", true, "reviews-a"),
        ("10.0.0.8", true, "reviews-b"),
    ]));
    api.put(k8s_service(&["10.96.0.12"]));
    let shared = Arc::new(Shared::new(false));
    let discovery = discovery(&api, &shared).await;
    let all = std::collections::BTreeMap::new();
    let seen = |discovery: &KubeDiscovery| -> Vec<(String, bool)> {
        discovery
            .load()
            .map(|endpoints| {
                endpoints
                    .select("ns/reviews", &all)
                    .map(|e| (e.address.to_string(), e.meshed))
                    .collect()
            })
            .unwrap_or_default()
    };
    let want = vec![
        ("10.0.0.7:15006".to_string(), true),
        ("10.0.0.8:9080".to_string(), false),
    ];
    assert!(
        eventually(Duration::from_secs(10), async || {
            let mut got = seen(&discovery);
            got.sort();
            got == want
        })
        .await,
        "{:?}",
        seen(&discovery)
    );
    // Injected later: the endpoint moves to its agent.
    api.put(pod("reviews-b", "v2"));
    assert!(
        eventually(Duration::from_secs(5), async || {
            let mut got = seen(&discovery);
            got.sort();
            got == [
                ("10.0.0.7:15006".to_string(), true),
                ("10.0.0.8:15006".to_string(), true),
            ]
        })
        .await,
        "{:?}",
        seen(&discovery)
    );
}
