//! `meshc up examples/bookinfo`, driven as a user would over real HTTP through the
//! workloads' outbound addresses: Istio's traffic-management tasks (request routing,
//! traffic shifting, request timeouts, fault injection) and authorization, with call
//! chains carrying the callers' real identities.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::Path;
use std::time::Duration;

use mesh_e2e::{Http, Mesh, OtlpSink, alive};

const PRODUCTPAGE: &str = "bookinfo/productpage";
const REVIEWS: &str = "bookinfo/reviews";
const SPIFFE: &str = "spiffe://cluster.local/ns/bookinfo/sa";

/// One mesh for every scenario (starting one takes seconds); each scenario is a function.
#[tokio::test(flavor = "multi_thread")]
async fn bookinfo_does_what_its_policies_say() {
    let collector = OtlpSink::start().await;
    let mesh = Mesh::up(
        Path::new("examples/bookinfo"),
        &["--otlp-endpoint", &collector.url],
    );
    assert_eq!(mesh.state["mesh"], "bookinfo");
    assert_eq!(mesh.state["workloads"].as_array().unwrap().len(), 7);
    let http = Http::default();
    let productpage = mesh.addr(PRODUCTPAGE, None, "outbound");

    jason_always_gets_v2(&http, &productpage).await;
    everyone_else_is_shifted_50_50(&http, &productpage).await;
    the_reviews_timeout_answers_504_in_time(&http, &productpage).await;
    the_delay_fault_applies_to_jason_only(&http, &mesh.addr(REVIEWS, Some("v1"), "outbound")).await;
    denied_requests_get_403_naming_the_decision(&http, &productpage).await;
    callers_no_policy_allows_are_refused_by_their_own_agent(
        &http,
        &mesh.addr("bookinfo/ratings", None, "outbound"),
    )
    .await;
    call_chains_carry_each_callers_identity(&http, &mesh.addr(PRODUCTPAGE, None, "app")).await;
    a_sampled_call_is_traced_by_both_agents(&http, &productpage, &collector).await;
    live_views_show_the_traffic(&http, &productpage, &mesh.state_path).await;
    stat_reads_pods_through_the_api_server(&http, &productpage, &mesh.state).await;
    the_gateway_takes_users_to_productpage_only(&http, &mesh.state).await;
    the_dashboard_queries_metrics_the_agents_export(&http, &mesh.state).await;

    let pids: Vec<u64> = mesh.state["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            [
                w["agent_pid"].as_u64().unwrap(),
                w["app_pid"].as_u64().unwrap(),
            ]
        })
        .collect();
    let stderr = mesh.stop();
    assert!(stderr.contains("mesh bookinfo stopped"), "{stderr}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived meshc up");
    }
}

/// `meshc up --otlp-endpoint`: a call that arrives sampled (`traceparent … -01`) has its
/// spans exported by the caller's agent (outbound) and the callee's (inbound), each to
/// the collector the mesh was pointed at.
async fn a_sampled_call_is_traced_by_both_agents(
    http: &Http,
    productpage: &str,
    collector: &OtlpSink,
) {
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let got = http
        .get(
            productpage,
            "reviews",
            "/reviews/1",
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    // Agents export in batches every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while collector.exports_containing(&raw) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        collector.exports_containing(&raw),
        2,
        "productpage's and reviews' agents each export the trace's span once"
    );
}

/// `meshc graph --state` and `meshc stat`: while productpage's agent carries calls to
/// reviews, the graph's edge has a request rate and a success rate (an edge nothing uses
/// is idle), and the reviews workloads have a request rate, full success and latencies.
async fn live_views_show_the_traffic(http: &Http, productpage: &str, state: &Path) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (http, productpage, stop) = (http.clone(), productpage.to_string(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 50_000 {
                let got = http.get(&productpage, "reviews", "/reviews/1", &[]).await;
                assert_eq!(got.status, 200, "{}", got.body);
                sent += 1;
            }
            sent
        })
    };
    let meshc = |args: &'static [&'static str]| {
        let state = state.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(mesh_e2e::meshc())
                .args(args)
                .arg("--state")
                .arg(state)
                .current_dir(mesh_e2e::root())
                .output()
                .unwrap();
            assert!(output.status.success(), "{args:?}: {output:?}");
            String::from_utf8(output.stdout).unwrap()
        })
    };
    // Taps first: they see requests as they pass, while the load runs.
    let tapped_inbound = meshc(&["tap", "bookinfo/reviews", "--max", "3", "--format", "json"]);
    let tapped_outbound = meshc(&[
        "tap",
        "productpage",
        "--to",
        "reviews",
        "--direction",
        "outbound",
        "--path",
        "/reviews",
        "-n",
        "2",
    ]);
    let within = std::time::Duration::from_secs(60);
    let tapped_inbound = tokio::time::timeout(within, tapped_inbound)
        .await
        .expect("meshc tap saw 3 requests")
        .unwrap();
    let tapped_outbound = tokio::time::timeout(within, tapped_outbound)
        .await
        .expect("meshc tap saw 2 requests")
        .unwrap();
    let dot = meshc(&["graph", "examples/bookinfo", "--window", "1.5"])
        .await
        .unwrap();
    let stat = meshc(&[
        "stat", "--window", "1.5", "--format", "json", "--by", "rule",
    ])
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = load.await.unwrap();

    // Each tapped request: reviews' agents saw productpage's calls arrive over mTLS,
    // allowed; productpage's agent routed them to a reviews subset.
    let lines: Vec<serde_json::Value> = tapped_inbound
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{tapped_inbound}");
    for line in &lines {
        assert!(
            line["workload"]
                .as_str()
                .unwrap()
                .starts_with("bookinfo/reviews."),
            "{line}"
        );
        assert_eq!(line["direction"], "inbound", "{line}");
        assert_eq!(
            (&line["method"], &line["path"]),
            (&"GET".into(), &"/reviews/1".into()),
            "{line}"
        );
        assert_eq!(line["response_code"], 200, "{line}");
        assert!(
            line["decision"].as_str().unwrap().starts_with("allow"),
            "{line}"
        );
        assert!(
            line["peer"].as_str().unwrap().ends_with("productpage"),
            "{line}"
        );
    }
    let lines: Vec<&str> = tapped_outbound.lines().collect();
    assert_eq!(lines.len(), 2, "{tapped_outbound}");
    for line in lines {
        assert!(line.starts_with("bookinfo/productpage -> GET "), "{line}");
        assert!(line.contains("/reviews/1 200 "), "{line}");
        assert!(line.contains("backend=bookinfo/reviews."), "{line}");
    }
    taps_refuse_what_they_cannot_show(state);

    let edge = |to: &str| {
        dot.lines()
            .find(|l| l.contains(&format!("\"bookinfo/productpage\" -> \"bookinfo/{to}\"")))
            .unwrap_or_else(|| panic!("no productpage -> {to} in\n{dot}"))
            .to_string()
    };
    let reviews = edge("reviews");
    let rate: f64 = reviews
        .split("label=\"")
        .nth(1)
        .and_then(|l| l.split(" rps").next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate on {reviews} ({sent} requests sent)"));
    assert!(rate > 1.0, "{reviews}");
    assert!(reviews.contains("100.0% ok"), "{reviews}");
    assert!(edge("details").contains("idle"), "{dot}");

    let stat: serde_json::Value = serde_json::from_str(&stat).unwrap();
    let workloads = stat["workloads"].as_array().unwrap();
    let served: Vec<&serde_json::Value> = workloads
        .iter()
        .filter(|w| w["workload"].as_str().unwrap().starts_with(REVIEWS))
        .collect();
    assert_eq!(served.len(), 3, "{stat}");
    let total: f64 = served
        .iter()
        .map(|w| w["requests_per_second"].as_f64().unwrap())
        .sum();
    assert!(total > 1.0, "{stat}");
    for w in served
        .iter()
        .filter(|w| w["requests_per_second"].as_f64() > Some(0.0))
    {
        assert_eq!(w["success_rate"], 1.0, "{w}");
        let (p50, p99) = (w["p50_ms"].as_f64().unwrap(), w["p99_ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{w}");
        assert_eq!(w["mtls_share"], 1.0, "every call came from an agent: {w}");
    }
    let details = workloads
        .iter()
        .find(|w| w["workload"] == "bookinfo/details")
        .unwrap();
    assert_eq!(details["requests_per_second"], 0.0, "{details}");
    assert!(details["success_rate"].is_null(), "{details}");
    // By rule: productpage's calls to reviews, under the rule that routed them.
    let rules = stat["rules"].as_array().unwrap();
    assert!(
        rules.iter().any(|r| r["caller"] == PRODUCTPAGE
            && r["service"] == REVIEWS
            && r["requests_per_second"].as_f64() > Some(1.0)),
        "{stat}"
    );
}

/// `meshc stat --kubernetes`: the agents of a cluster's running meshed pods, reached
/// through the API server's pod proxy (the fake API server's pods point at `meshc up`'s
/// agents), named by their `app` and `version` labels.
async fn stat_reads_pods_through_the_api_server(
    http: &Http,
    productpage: &str,
    state: &serde_json::Value,
) {
    let api = mesh_fake_api::FakeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path()).unwrap();
    let stat = |args: &[&str]| {
        let (kubeconfig, args) = (
            kubeconfig.clone(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(mesh_e2e::meshc())
                .arg("stat")
                .args(args)
                .env("KUBECONFIG", kubeconfig)
                .output()
                .unwrap()
        })
    };
    let none = stat(&["--kubernetes", "--window", "0.1"]).await.unwrap();
    assert_eq!(none.status.code(), Some(2), "{none:?}");
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no meshed pods"),
        "{none:?}"
    );
    for workload in state["workloads"].as_array().unwrap() {
        let (namespace, app) = workload["service"]
            .as_str()
            .unwrap()
            .split_once('/')
            .unwrap();
        let version = workload["subset"].as_str();
        let admin: std::net::SocketAddr = workload["admin"].as_str().unwrap().parse().unwrap();
        let mut labels = serde_json::json!({"app": app});
        if let Some(version) = version {
            labels["version"] = version.into();
        }
        api.put(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": format!("{app}-{}-0", version.unwrap_or("0")),
                "namespace": namespace,
                "labels": labels,
            },
            "spec": {
                "containers": [{"name": app}],
                "initContainers": [{"name": "mesh-agent", "restartPolicy": "Always",
                    "ports": [{"name": "mesh-admin", "containerPort": admin.port()}]}],
            },
            "status": {"phase": "Running", "podIP": admin.ip().to_string()},
        }));
    }
    // A pod without the sidecar is not scraped.
    api.put(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "unmeshed", "namespace": "bookinfo", "labels": {"app": "legacy"}},
        "spec": {"containers": [{"name": "legacy"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (http, productpage, stop) = (http.clone(), productpage.to_string(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let got = http.get(&productpage, "reviews", "/reviews/1", &[]).await;
                assert_eq!(got.status, 200, "{}", got.body);
            }
        })
    };
    let output = stat(&[
        "--kubernetes",
        "-n",
        "bookinfo",
        "--window",
        "1.5",
        "--format",
        "json",
    ])
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    load.await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let stat: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workloads = stat["workloads"].as_array().unwrap();
    let names: Vec<&str> = workloads
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        7,
        "every meshed pod, not the unmeshed one: {names:?}"
    );
    assert!(names.contains(&"bookinfo/reviews v2"), "{names:?}");
    let reviews: f64 = workloads
        .iter()
        .filter(|w| w["workload"].as_str().unwrap().starts_with(REVIEWS))
        .map(|w| w["requests_per_second"].as_f64().unwrap())
        .sum();
    assert!(reviews > 1.0, "{stat}");
    let proxied = api
        .requests()
        .iter()
        .filter(|r| r.path.contains("/proxy/metrics"))
        .count();
    assert_eq!(proxied, 14, "each pod scraped twice through the API server");
}

/// `meshc tap` names what it cannot tap: an unknown workload (listing the known ones),
/// a filter the agent refuses.
fn taps_refuse_what_they_cannot_show(state: &Path) {
    let tap = |args: &[&str]| {
        let output = std::process::Command::new(mesh_e2e::meshc())
            .arg("tap")
            .args(args)
            .arg("--state")
            .arg(state)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    let unknown = tap(&["nosuch"]);
    assert!(unknown.contains("no workload \"nosuch\""), "{unknown}");
    assert!(unknown.contains("bookinfo/reviews.v2"), "{unknown}");
    assert!(
        unknown.contains("gateway/bookinfo/bookinfo-gateway"),
        "{unknown}"
    );
    let refused = tap(&["details", "--path", "details"]);
    assert!(
        refused.contains("refused the tap (400 Bad Request)"),
        "{refused}"
    );
    assert!(refused.contains("must start with `/`"), "{refused}");
}

/// `deploy/grafana/mesh-dashboard.json` asks only for metrics the agent registers
/// (`agent/proxy/src/metrics.rs`; a family without samples yet is not in `/metrics`), by
/// labels the running agents' samples carry (`le` of histograms and Prometheus's own
/// `instance` and `job` aside).
async fn the_dashboard_queries_metrics_the_agents_export(http: &Http, state: &serde_json::Value) {
    use std::collections::{BTreeMap, BTreeSet};
    let source =
        std::fs::read_to_string(mesh_e2e::root().join("agent/proxy/src/metrics.rs")).unwrap();
    let families: BTreeSet<String> = source
        .split("register(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
        .map(|name| format!("mesh_{name}"))
        .collect();
    assert!(families.len() > 10, "{families:?}");
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for workload in state["workloads"].as_array().unwrap() {
        let admin = workload["admin"].as_str().unwrap();
        let got = http.get(admin, "admin", "/metrics", &[]).await;
        assert_eq!(got.status, 200);
        for line in got.body.lines() {
            if !line.starts_with('#') && !line.is_empty() {
                let name: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let names = labels.entry(name).or_default();
                if let Some(set) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) {
                    for pair in set.0.split("\",") {
                        if let Some((label, _)) = pair.split_once('=') {
                            names.insert(label.trim_start_matches(',').to_string());
                        }
                    }
                }
            }
        }
    }
    let text = std::fs::read_to_string(mesh_e2e::root().join("deploy/grafana/mesh-dashboard.json"))
        .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let grouping: Vec<String> = expr
                .split("by (")
                .skip(1)
                .flat_map(|rest| rest.split(')').next().unwrap().split(','))
                .map(|l| l.trim().to_string())
                .collect();
            for (at, _) in expr.match_indices("mesh_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_total", "_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    families.contains(family) || families.contains(&name),
                    "the dashboard queries {name}, which the agent does not register: {expr}"
                );
                checked += 1;
                let Some(known) = labels.get(&name) else {
                    continue;
                };
                let mut used: Vec<String> = grouping.clone();
                if let Some(set) = expr[at + name.len()..].strip_prefix('{') {
                    for matcher in set.split('}').next().unwrap().split(',') {
                        let label: String = matcher
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        used.push(label);
                    }
                }
                for label in used {
                    assert!(
                        known.contains(&label)
                            || ["le", "instance", "job"].contains(&label.as_str()),
                        "{name} has no label {label} (it has {known:?}): {expr}"
                    );
                }
            }
        }
    }
    assert!(checked >= 15, "only {checked} metric references checked");
}

/// Istio's ingress gateway task: through `bookinfo-gateway`, plain and over TLS (the
/// example's certificate for bookinfo.example.com), users reach productpage's pages as
/// the gateway's identity; other paths and other hosts get `404 no-route`.
async fn the_gateway_takes_users_to_productpage_only(http: &Http, state: &serde_json::Value) {
    let gateway = &state["gateways"][0];
    assert_eq!(gateway["gateway"], "bookinfo/bookinfo-gateway", "{state}");
    let plain = gateway["listeners"]["8080"].as_str().unwrap();
    let tls = gateway["listeners"]["8443"].as_str().unwrap();
    const HOST: &str = "bookinfo.example.com";
    let identity = format!("URI={SPIFFE}/bookinfo-gateway");

    let page = http.send(plain, "GET", HOST, "/productpage", &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&identity), "{}", page.body);
    assert!(
        page.body.contains("\"x-forwarded-proto\":\"http\""),
        "{}",
        page.body
    );

    let certificate = mesh_e2e::root().join("examples/bookinfo/certs/bookinfo.pem");
    let page = mesh_e2e::https_get(tls, HOST, "/productpage", &certificate).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&identity), "{}", page.body);
    assert!(
        page.body.contains("\"x-forwarded-proto\":\"https\""),
        "{}",
        page.body
    );

    for (host, path) in [(HOST, "/reviews/1"), ("evil.example.com", "/productpage")] {
        let refused = http.send(plain, "GET", host, path, &[]).await;
        assert_eq!(refused.status, 404, "{host}{path}: {}", refused.body);
        assert_eq!(refused.mesh_error.as_deref(), Some("no-route"));
    }
}

async fn jason_always_gets_v2(http: &Http, productpage: &str) {
    for _ in 0..50 {
        let got = http
            .get(
                productpage,
                "reviews",
                "/reviews/1",
                &[("end-user", "jason")],
            )
            .await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.subset().as_deref(), Some("v2"), "{}", got.body);
    }
}

async fn everyone_else_is_shifted_50_50(http: &Http, productpage: &str) {
    let (mut v1, mut v3) = (0, 0);
    for i in 0..1_000 {
        let user = format!("user-{i}");
        let got = http
            .get(productpage, "reviews", "/reviews/1", &[("end-user", &user)])
            .await;
        assert_eq!(got.status, 200, "{}", got.body);
        match got.subset().as_deref() {
            Some("v1") => v1 += 1,
            Some("v3") => v3 += 1,
            other => panic!("rule shift sent a request to {other:?}"),
        }
    }
    // 50/50 over 1,000 draws: ±75 is more than 4.7 standard deviations.
    assert!((425..=575).contains(&v1), "v1 {v1}, v3 {v3}");
    assert_eq!(v1 + v3, 1_000);
}

async fn the_reviews_timeout_answers_504_in_time(http: &Http, productpage: &str) {
    // reviews answers after 2s; the route gives it 500ms in all (two 200ms tries).
    let got = http
        .get(productpage, "reviews", "/reviews/1?delay=2s", &[])
        .await;
    assert_eq!(got.status, 504, "{}", got.body);
    assert_eq!(got.mesh_error.as_deref(), Some("timeout"));
    assert!(
        got.elapsed >= Duration::from_millis(350) && got.elapsed < Duration::from_millis(1_500),
        "answered after {:?}",
        got.elapsed
    );
}

async fn the_delay_fault_applies_to_jason_only(http: &Http, reviews: &str) {
    let jason = http
        .get(reviews, "ratings", "/ratings/1", &[("end-user", "jason")])
        .await;
    assert_eq!(jason.status, 200, "{}", jason.body);
    assert!(
        jason.elapsed >= Duration::from_secs(2),
        "{:?}",
        jason.elapsed
    );
    assert_eq!(jason.json()["service"], "bookinfo/ratings");

    let other = http
        .get(reviews, "ratings", "/ratings/1", &[("end-user", "alice")])
        .await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert!(
        other.elapsed < Duration::from_secs(1),
        "{:?}",
        other.elapsed
    );
}

async fn denied_requests_get_403_naming_the_decision(http: &Http, productpage: &str) {
    let debug = http
        .get(productpage, "reviews", "/reviews/1", &[("x-debug", "1")])
        .await;
    assert_eq!(debug.status, 403, "{}", debug.body);
    assert_eq!(debug.mesh_error.as_deref(), Some("denied"));
    assert_eq!(
        debug.body.trim(),
        "denied by policy examples/bookinfo/bookinfo.mesh:83 deny from any"
    );

    let post = http
        .send(productpage, "POST", "reviews", "/reviews/1", &[])
        .await;
    assert_eq!(post.status, 403, "{}", post.body);
    assert_eq!(post.body.trim(), "no policy allows this request");
}

async fn callers_no_policy_allows_are_refused_by_their_own_agent(http: &Http, ratings: &str) {
    // Only productpage may call reviews: ratings' agent knows reviews is a mesh service
    // it may not call, and refuses instead of sending the request out of the mesh.
    for host in [
        "reviews",
        "reviews.bookinfo",
        "reviews.bookinfo.svc.cluster.local",
    ] {
        let got = http.get(ratings, host, "/reviews/1", &[]).await;
        assert_eq!(got.status, 403, "{host}: {}", got.body);
        assert_eq!(got.mesh_error.as_deref(), Some("denied"));
        assert!(
            got.body
                .contains("bookinfo/ratings may not call: no policy allows it"),
            "{}",
            got.body
        );
    }
}

async fn call_chains_carry_each_callers_identity(http: &Http, productpage_app: &str) {
    // Istio's request-timeouts task: for jason, ratings is delayed 2s (fault), so reviews
    // (v2 for jason) cannot answer within its 500ms: productpage's app sees the 504.
    let jason = http
        .get(
            productpage_app,
            "productpage",
            "/call/reviews/call/ratings/ratings/1",
            &[("end-user", "jason")],
        )
        .await;
    assert_eq!(jason.status, 504, "{}", jason.body);
    assert_eq!(jason.json()["call"]["mesh_error"], "timeout");
    assert!(
        jason.elapsed < Duration::from_millis(1_500),
        "{:?}",
        jason.elapsed
    );

    // productpage's app calls reviews through its agent; reviews' app calls ratings
    // through its own. Each hop's app is told who called it by its agent.
    let got = http
        .get(
            productpage_app,
            "productpage",
            "/call/reviews/call/ratings/ratings/1",
            &[("end-user", "alice")],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let outer = got.json();
    let reviews = &outer["call"]["body"];
    let ratings = &reviews["call"]["body"];
    assert_eq!(reviews["service"], REVIEWS);
    assert_eq!(
        reviews["headers"]["end-user"], "alice",
        "headers are propagated"
    );
    assert_eq!(
        reviews["headers"]["x-forwarded-client-cert"],
        format!("By={SPIFFE}/reviews;URI={SPIFFE}/bookinfo-productpage")
    );
    assert_eq!(ratings["service"], "bookinfo/ratings");
    assert_eq!(ratings["headers"]["end-user"], "alice");
    assert_eq!(
        ratings["headers"]["x-forwarded-client-cert"],
        format!("By={SPIFFE}/ratings;URI={SPIFFE}/reviews")
    );
}
