//! `meshc doctor`, through the real binary against the in-process fake API server: a
//! healthy installation (applied by `meshc apply`, an injected pod, the injector with a
//! ready endpoint) passes with ✔ only, exit 0, and JSON that says so; a broken one (a
//! config edited by hand, a missing object, a certificate for the wrong identity or from
//! another CA, a pod outside the mesh's identities, an injector with no endpoint) gets a
//! ✘ with a hint for each problem and exit 1; an unreachable cluster is exit 2.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use mesh_fake_api::FakeApi;
use mesh_identity::{Ca, SpiffeId};
use mesh_test_support::workspace_root as root;
use serde_json::{Value, json};

struct Setup {
    dir: tempfile::TempDir,
    api: FakeApi,
    kubeconfig: PathBuf,
    ca: PathBuf,
    mesh: PathBuf,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await.unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path()).unwrap();
    let ca = dir.path().join("ca");
    Ca::generate("doctor test CA").unwrap().write(&ca).unwrap();
    let mesh = dir.path().join("bookinfo.mesh");
    std::fs::copy(
        root().join("compiler/tests/fixtures/frozen-bookinfo/bookinfo.mesh"),
        &mesh,
    )
    .unwrap();
    Setup {
        dir,
        api,
        kubeconfig,
        ca,
        mesh,
    }
}

impl Setup {
    async fn meshc(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0].to_string(), self.mesh.display().to_string()];
        all.extend(["--ca".to_string(), self.ca.display().to_string()]);
        all.extend(["--injector".to_string()]);
        all.extend(args[1..].iter().map(|s| s.to_string()));
        let kubeconfig = self.kubeconfig.clone();
        let cwd = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            Command::new(mesh_test_support::meshc())
                .args(&all)
                .current_dir(cwd)
                .env("KUBECONFIG", kubeconfig)
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// A running, ready pod of reviews as `meshc inject` makes it.
    fn injected_pod(&self, name: &str, service_account: &str) {
        self.api.put(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "bookinfo",
                "annotations": { "mesh/injected": "mesh-agent:test", "mesh/mode": "capture" }
            },
            "spec": {
                "serviceAccountName": service_account,
                "initContainers": [{ "name": "mesh-agent", "image": "mesh-agent:test" }],
                "containers": [{ "name": "reviews", "image": "reviews:1" }],
                "volumes": [{ "name": "mesh-config", "configMap": { "name": "reviews" } }]
            },
            "status": {
                "phase": "Running",
                "initContainerStatuses": [{
                    "name": "mesh-agent", "ready": true, "restartCount": 0,
                    "image": "mesh-agent:test", "imageID": ""
                }]
            }
        }));
    }

    fn injector_endpoint(&self, ready: bool) {
        self.api.put(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "meshc-injector-abc",
                "namespace": "mesh-system",
                "labels": { "kubernetes.io/service-name": "meshc-injector" }
            },
            "addressType": "IPv4",
            "endpoints": [{ "addresses": ["10.0.0.9"], "conditions": { "ready": ready } }]
        }));
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_mesh_passes_and_each_problem_gets_a_cross_and_a_hint() {
    let s = setup().await;
    let applied = s.meshc(&["apply"]).await;
    assert!(applied.status.success(), "{applied:?}");
    s.injected_pod("reviews-v1-abc", "reviews");
    s.injector_endpoint(true);

    let healthy = s.meshc(&["doctor"]).await;
    let text = stdout(&healthy);
    assert_eq!(healthy.status.code(), Some(0), "{text}{healthy:?}");
    assert!(!text.contains('✘'), "{text}");
    for line in [
        "✔ configmap/reviews (namespace bookinfo): as the mesh makes it",
        "✔ clusterrolebinding/meshc-bookinfo-discovery: as the mesh makes it",
        "✔ secret/reviews-mesh-identity (namespace bookinfo): a certificate for spiffe://cluster.local/ns/bookinfo/sa/reviews, 89 days left",
        "✔ mutatingwebhookconfiguration/meshc-bookinfo-injector: its caBundle is the mesh CA",
        "✔ service/meshc-injector (namespace mesh-system): has a ready endpoint",
        "✔ pod/reviews-v1-abc (namespace bookinfo): a ready mesh-agent with a current config of the mesh",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    let json_output = s.meshc(&["doctor", "--format", "json"]).await;
    let document: Value = serde_json::from_slice(&json_output.stdout).unwrap();
    assert_eq!(document["ok"], true);
    assert!(document["findings"].as_array().unwrap().len() > 20);

    // Break it, one way per check.
    let mut edited = s
        .api
        .get("v1", "ConfigMap", Some("bookinfo"), "reviews")
        .unwrap();
    edited["metadata"]["annotations"]["mesh/config-hash"] = json!("edited-by-hand");
    s.api.put(edited);
    assert!(s.api.delete("v1", "ConfigMap", Some("bookinfo"), "ratings"));
    let stranger = Ca::generate("another CA").unwrap();
    let wrong = stranger
        .issue(
            &SpiffeId::parse("spiffe://cluster.local/ns/bookinfo/sa/details").unwrap(),
            Duration::from_secs(3600),
        )
        .unwrap();
    let mut secret = s
        .api
        .get("v1", "Secret", Some("bookinfo"), "details-mesh-identity")
        .unwrap();
    let encode = |pem: &str| serde_json::to_value(k8s_openapi::ByteString(pem.into())).unwrap();
    secret["data"]["tls.crt"] = encode(wrong.cert_pem());
    secret["data"]["tls.key"] = encode(wrong.key_pem());
    secret["data"]["ca.crt"] = encode(wrong.ca_pem());
    s.api.put(secret);
    s.injected_pod("intruder-1", "intruder");
    s.injector_endpoint(false);

    let broken = s.meshc(&["doctor"]).await;
    let text = stdout(&broken);
    if std::env::var_os("SHOW_DOCTOR").is_some() {
        eprintln!("{text}");
    }
    assert_eq!(broken.status.code(), Some(1), "{text}");
    for (line, hint) in [
        (
            "✘ configmap/reviews (namespace bookinfo): differs from the mesh",
            "hint: update it: `meshc apply",
        ),
        (
            "✘ configmap/ratings (namespace bookinfo): missing",
            "hint: create it: `meshc apply",
        ),
        (
            "✘ secret/details-mesh-identity (namespace bookinfo): issued by another CA than the mesh's",
            "hint: issue it",
        ),
        (
            "✘ pod/intruder-1 (namespace bookinfo): runs as service account intruder, which is no identity of the mesh",
            "hint: give the workload the service account of its service",
        ),
        (
            "✘ service/meshc-injector (namespace mesh-system): no ready endpoint",
            "hint: kubectl -n mesh-system get pods",
        ),
    ] {
        let at = text
            .find(line)
            .unwrap_or_else(|| panic!("no `{line}` in\n{text}"));
        let next = text[at..].lines().nth(1).unwrap().trim();
        assert!(next.starts_with(hint), "`{line}` hint is `{next}`");
    }
    assert!(text.contains("✔ pod/reviews-v1-abc"), "{text}");
    assert!(text.ends_with(" 5 failed\n"), "{text}");
    let document: Value =
        serde_json::from_slice(&s.meshc(&["doctor", "--format", "json"]).await.stdout).unwrap();
    assert_eq!(document["ok"], false);
    let failed: Vec<&Value> = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(|f| f["hint"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_trouble() {
    let s = setup().await;
    s.api.set_down(true);
    let output = s.meshc(&["doctor"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

/// A day-long certificate (what cert-manager issues) is fine with most of its day left
/// and reported once its renewal is overdue; a 90-day one a week ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_certificates_are_reported_when_their_renewal_is_overdue() {
    let s = setup().await;
    assert!(s.meshc(&["apply"]).await.status.success());
    s.injector_endpoint(true);
    let ca = Ca::load(&s.ca).unwrap();
    let put_cert = |sa: &str, not_before: std::time::SystemTime, not_after| {
        let id = SpiffeId::parse(&format!("spiffe://cluster.local/ns/bookinfo/sa/{sa}")).unwrap();
        let issued = ca.issue_with_validity(&id, not_before, not_after).unwrap();
        let encode = |pem: &str| serde_json::to_value(k8s_openapi::ByteString(pem.into())).unwrap();
        let name = format!("{sa}-mesh-identity");
        let mut secret = s.api.get("v1", "Secret", Some("bookinfo"), &name).unwrap();
        secret["data"]["tls.crt"] = encode(issued.cert_pem());
        secret["data"]["tls.key"] = encode(issued.key_pem());
        s.api.put(secret);
    };
    let now = std::time::SystemTime::now();
    let hour = Duration::from_secs(3600);
    // Fresh from cert-manager: 24 hours, 23 and a half left.
    put_cert("reviews", now - hour / 2, now + 23 * hour + hour / 2);
    // Its renewal (8 hours before expiry) should have happened: 3 hours left.
    put_cert("ratings", now - 21 * hour, now + 3 * hour + hour / 2);
    // A 90-day certificate with 10 days left is fine; with 5, it is not.
    put_cert("details", now - 80 * 24 * hour, now + 10 * 24 * hour + hour);
    put_cert(
        "bookinfo-productpage",
        now - 85 * 24 * hour,
        now + 5 * 24 * hour + hour,
    );
    let text = stdout(&s.meshc(&["doctor"]).await);
    for line in [
        "✔ secret/reviews-mesh-identity (namespace bookinfo): a certificate for spiffe://cluster.local/ns/bookinfo/sa/reviews, 23 hours left",
        "✘ secret/ratings-mesh-identity (namespace bookinfo): expires in 3 hours",
        "✔ secret/details-mesh-identity (namespace bookinfo): a certificate for spiffe://cluster.local/ns/bookinfo/sa/details, 10 days left",
        "✘ secret/bookinfo-productpage-mesh-identity (namespace bookinfo): expires in 5 days",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
}
