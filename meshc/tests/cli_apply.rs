//! `meshc apply`, through the real binary against the in-process fake API server (found
//! through a kubeconfig in `KUBECONFIG`, as kubectl finds it): create, unchanged on
//! re-apply, configured after a change, conflicts with another field manager reported
//! and taken over on request, pruning exactly the stale objects, dry runs that change
//! nothing, and refusals (a mesh with errors, an unreachable API).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_fake_api::FakeApi;
use mesh_test_support::workspace_root as root;
use serde_json::json;

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
    mesh_identity::Ca::generate("test mesh CA")
        .unwrap()
        .write(&ca)
        .unwrap();
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
    /// Runs `meshc apply MESH --ca CA ARGS...` (off the runtime's threads, so the fake
    /// server keeps answering).
    async fn apply(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "apply".to_string(),
            self.mesh.to_str().unwrap().to_string(),
            "--ca".to_string(),
            self.ca.to_str().unwrap().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.meshc(args).await
    }

    async fn meshc(&self, args: Vec<String>) -> Output {
        let kubeconfig = self.kubeconfig.clone();
        let cwd = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            Command::new(mesh_test_support::meshc())
                .args(&args)
                .current_dir(cwd)
                .env("KUBECONFIG", kubeconfig)
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }
}

/// Changes the header value the reviews policy denies on: only reviews' config changes.
fn edit_reviews_policy(mesh: &Path) {
    let text = std::fs::read_to_string(mesh).unwrap();
    let old = "header(\"x-debug\") == \"1\"";
    assert!(text.contains(old));
    std::fs::write(
        mesh,
        text.replace(old, "header(\"x-debug\") == \"x-debug-changed\""),
    )
    .unwrap();
}

fn lines(output: &Output) -> Vec<String> {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

const OBJECTS: [&str; 14] = [
    "serviceaccount/bookinfo-productpage",
    "serviceaccount/details",
    "serviceaccount/ratings",
    "serviceaccount/reviews",
    "clusterrole/meshc-bookinfo-discovery",
    "clusterrolebinding/meshc-bookinfo-discovery",
    "secret/bookinfo-productpage-mesh-identity",
    "secret/details-mesh-identity",
    "secret/ratings-mesh-identity",
    "secret/reviews-mesh-identity",
    "configmap/details",
    "configmap/productpage",
    "configmap/ratings",
    "configmap/reviews",
];

fn expect_all(lines: &[String], outcome: &str) {
    let expected: Vec<String> = OBJECTS.iter().map(|o| format!("{o} {outcome}")).collect();
    assert_eq!(lines, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_then_unchanged_then_configured() {
    let s = setup().await;
    expect_all(&lines(&s.apply(&[]).await), "created");

    let requests = s.api.requests();
    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), OBJECTS.len());
    for patch in &patches {
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert!(
            patch.query.contains("fieldManager=meshc"),
            "{}",
            patch.query
        );
        assert!(!patch.query.contains("force=true"));
    }
    let reviews = s
        .api
        .get("v1", "ConfigMap", Some("bookinfo"), "reviews")
        .unwrap();
    assert_eq!(reviews["metadata"]["labels"]["mesh"], "bookinfo");
    assert_eq!(
        reviews["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "meshc"
    );
    assert!(
        reviews["data"]["config.json"]
            .as_str()
            .unwrap()
            .contains("\"bookinfo/reviews\"")
    );

    // Again: nothing changes, certificates included.
    let secret_before = s
        .api
        .get("v1", "Secret", Some("bookinfo"), "reviews-mesh-identity")
        .unwrap();
    expect_all(&lines(&s.apply(&[]).await), "unchanged");
    assert_eq!(
        s.api
            .get("v1", "Secret", Some("bookinfo"), "reviews-mesh-identity")
            .unwrap(),
        secret_before
    );

    // A change to the reviews policy reconfigures the reviews workload only.
    edit_reviews_policy(&s.mesh);
    let out = lines(&s.apply(&[]).await);
    let configured: Vec<&String> = out.iter().filter(|l| l.ends_with(" configured")).collect();
    assert_eq!(configured, ["configmap/reviews configured"], "{out:?}");
    assert_eq!(
        out.iter().filter(|l| l.ends_with(" unchanged")).count(),
        OBJECTS.len() - 1
    );
    let reviews = s
        .api
        .get("v1", "ConfigMap", Some("bookinfo"), "reviews")
        .unwrap();
    assert!(
        reviews["data"]["config.json"]
            .as_str()
            .unwrap()
            .contains("x-debug-changed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_change_nothing() {
    let s = setup().await;
    let out = lines(&s.apply(&["--dry-run", "client"]).await);
    assert!(
        out.iter().all(|l| l.ends_with(" created (dry run)")),
        "{out:?}"
    );
    assert!(
        s.api.requests().iter().all(|r| r.method == "GET"),
        "client dry run only reads"
    );
    assert!(s.api.objects("ConfigMap").is_empty());

    let out = lines(&s.apply(&["--dry-run", "server"]).await);
    assert!(
        out.iter().all(|l| l.ends_with(" created (server dry run)")),
        "{out:?}"
    );
    assert!(
        s.api
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .all(|r| r.query.contains("dryRun=All"))
    );
    assert!(s.api.objects("ConfigMap").is_empty());

    lines(&s.apply(&[]).await);
    edit_reviews_policy(&s.mesh);
    let out = lines(&s.apply(&["--dry-run", "server"]).await);
    assert!(
        out.contains(&"configmap/reviews configured (server dry run)".to_string()),
        "{out:?}"
    );
    assert!(
        out.contains(&"configmap/ratings unchanged (server dry run)".to_string()),
        "{out:?}"
    );
    let reviews = s
        .api
        .get("v1", "ConfigMap", Some("bookinfo"), "reviews")
        .unwrap();
    assert!(
        !reviews["data"]["config.json"]
            .as_str()
            .unwrap()
            .contains("x-debug-changed"),
        "not persisted"
    );
}

fn config_map(name: &str, mesh: Option<&str>) -> serde_json::Value {
    let labels = match mesh {
        Some(mesh) => json!({"app.kubernetes.io/managed-by": "meshc", "mesh": mesh}),
        None => json!({"app": name}),
    };
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "bookinfo", "labels": labels},
        "data": {"config.json": "{}"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_exactly_the_stale_objects() {
    let s = setup().await;
    lines(&s.apply(&[]).await);
    s.api.put(config_map("old-service", Some("bookinfo")));
    s.api.put(config_map("other-mesh", Some("another")));
    s.api.put(config_map("not-ours", None));

    // Without --prune nothing is deleted.
    expect_all(&lines(&s.apply(&[]).await), "unchanged");
    assert_eq!(s.api.objects("ConfigMap").len(), 7);

    // A service leaves the mesh: its ConfigMap is stale too.
    let text = std::fs::read_to_string(&s.mesh).unwrap();
    let text = text.replace("  service details {\n    port http 9080\n  }\n", "");
    std::fs::write(&s.mesh, text).unwrap();
    let out = lines(&s.apply(&["--prune"]).await);
    let pruned: Vec<&String> = out.iter().filter(|l| l.ends_with(" pruned")).collect();
    assert_eq!(
        pruned,
        [
            "configmap/details pruned",
            "configmap/old-service pruned",
            "secret/details-mesh-identity pruned",
            "serviceaccount/details pruned",
        ]
    );
    let deletes: Vec<String> = s
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    let mut names: Vec<String> = s
        .api
        .objects("ConfigMap")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "not-ours",
            "other-mesh",
            "productpage",
            "ratings",
            "reviews"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_name_the_other_manager_and_force_takes_over() {
    let s = setup().await;
    lines(&s.apply(&[]).await);
    let mut edited = config_map("reviews", Some("bookinfo"));
    edited["data"] = json!({"config.json": "edited by hand"});
    s.api.apply_as("kubectl-edit", edited).unwrap();

    // The conflict is reported: non-zero, the manager named, the object untouched.
    edit_reviews_policy(&s.mesh);
    let output = s.apply(&[]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("configmap/reviews"), "{stderr}");
    assert!(stderr.contains("\"kubectl-edit\""), "{stderr}");
    assert!(stderr.contains(".data.config.json"), "{stderr}");
    assert!(stderr.contains("--force-conflicts"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("configmap/reviews"),
        "stops at the error: {stdout}"
    );
    let reviews = s
        .api
        .get("v1", "ConfigMap", Some("bookinfo"), "reviews")
        .unwrap();
    assert_eq!(reviews["data"]["config.json"], "edited by hand");

    let out = lines(&s.apply(&["--force-conflicts"]).await);
    assert!(
        out.contains(&"configmap/reviews configured".to_string()),
        "{out:?}"
    );
    let reviews = s
        .api
        .get("v1", "ConfigMap", Some("bookinfo"), "reviews")
        .unwrap();
    assert!(
        reviews["data"]["config.json"]
            .as_str()
            .unwrap()
            .contains("x-debug-changed")
    );
    assert!(
        s.api
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.query.contains("force=true"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_mesh_with_errors_and_reports_an_unreachable_api() {
    let s = setup().await;
    std::fs::write(
        &s.mesh,
        "mesh m { trust_domain \"x\" }\nnamespace n { service s { port http 99999 } }\n",
    )
    .unwrap();
    let output = s.apply(&[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not applied"));
    assert!(s.api.requests().is_empty(), "nothing sent");

    std::fs::copy(
        root().join("compiler/tests/fixtures/frozen-bookinfo/bookinfo.mesh"),
        &s.mesh,
    )
    .unwrap();
    // An unknown kubeconfig context.
    let output = s.apply(&["--context", "nowhere"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"nowhere\""));
    assert!(s.api.requests().is_empty());
    // The named context works like the current one.
    let out = lines(&s.apply(&["--context", "fake", "--dry-run", "client"]).await);
    assert_eq!(out.len(), OBJECTS.len());
    s.api.clear_requests();

    s.api.set_down(true);
    let output = s.apply(&[]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("503"), "{stderr}");
    assert!(stderr.contains("the fake API server is down"), "{stderr}");
    assert_eq!(
        s.api.requests().len(),
        1,
        "no retries: the first error stops it"
    );
    assert!(output.stdout.is_empty());
}

/// The injector's objects go through the same apply: created in order (the namespace
/// first, the webhook registration last), unchanged on re-apply (its serving certificate
/// read back from the cluster and kept), and pruned when no longer asked for — all but
/// the namespace, which is never pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injector_is_applied_kept_and_pruned() {
    let s = setup().await;
    let out = lines(&s.apply(&["--injector"]).await);
    let injector = [
        "namespace/mesh-system",
        "serviceaccount/meshc-injector",
        "secret/meshc-injector-mesh-identity",
        "configmap/meshc-bookinfo-sources",
        "deployment/meshc-injector",
        "service/meshc-injector",
        "mutatingwebhookconfiguration/meshc-bookinfo-injector",
    ];
    for object in injector {
        assert!(
            out.contains(&format!("{object} created")),
            "{object}: {out:?}"
        );
    }
    assert_eq!(out.first().unwrap(), "namespace/mesh-system created");
    assert_eq!(
        out.last().unwrap(),
        "mutatingwebhookconfiguration/meshc-bookinfo-injector created"
    );
    let webhook = s
        .api
        .get(
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            None,
            "meshc-bookinfo-injector",
        )
        .unwrap();
    assert_eq!(
        webhook["webhooks"][0]["clientConfig"]["service"]["namespace"],
        "mesh-system"
    );

    let again = lines(&s.apply(&["--injector"]).await);
    assert!(again.iter().all(|l| l.ends_with(" unchanged")), "{again:?}");

    let pruned = lines(&s.apply(&["--prune"]).await);
    for object in &injector[1..] {
        assert!(
            pruned.contains(&format!("{object} pruned")),
            "{object}: {pruned:?}"
        );
    }
    assert!(
        !pruned.iter().any(|l| l.starts_with("namespace/")),
        "{pruned:?}"
    );
    assert!(s.api.get("v1", "Namespace", None, "mesh-system").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injector_needs_the_ca() {
    let s = setup().await;
    let output = s
        .meshc(vec![
            "apply".into(),
            s.mesh.to_str().unwrap().into(),
            "--injector".into(),
        ])
        .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--injector needs --ca"));
}

/// With `--issuer cert-manager`, cert-manager's resources go through the same apply (as
/// dynamic objects of `cert-manager.io/v1`): created, unchanged on re-apply, and pruned
/// when meshc issues again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_manager_resources_are_applied_and_pruned() {
    let s = setup().await;
    let out = lines(&s.apply(&["--issuer", "cert-manager"]).await);
    for object in [
        "secret/meshc-bookinfo-ca",
        "clusterissuer/meshc-bookinfo-ca",
        "certificate/reviews-mesh-identity",
        "certificate/bookinfo-productpage-mesh-identity",
    ] {
        assert!(
            out.contains(&format!("{object} created")),
            "{object}: {out:?}"
        );
    }
    assert!(
        !out.iter()
            .any(|l| l.starts_with("secret/reviews-mesh-identity")),
        "{out:?}"
    );
    let certificate = s
        .api
        .get(
            "cert-manager.io/v1",
            "Certificate",
            Some("bookinfo"),
            "reviews-mesh-identity",
        )
        .unwrap();
    assert_eq!(
        certificate["spec"]["uris"],
        json!(["spiffe://cluster.local/ns/bookinfo/sa/reviews"])
    );
    let again = lines(&s.apply(&["--issuer", "cert-manager"]).await);
    assert!(again.iter().all(|l| l.ends_with(" unchanged")), "{again:?}");

    let back = lines(&s.apply(&["--prune"]).await);
    for object in [
        "clusterissuer/meshc-bookinfo-ca",
        "certificate/reviews-mesh-identity",
    ] {
        assert!(
            back.contains(&format!("{object} pruned")),
            "{object}: {back:?}"
        );
    }
    assert!(back.contains(&"secret/reviews-mesh-identity created".to_string()));
}
