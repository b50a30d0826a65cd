//! `meshc inject`, through the real binary on the bookinfo Kubernetes example: the
//! injected YAML (snapshotted), each workload deserialized into its `k8s-openapi` type
//! with the sidecar, volumes and proxy settings checked, other kinds passed through,
//! idempotence (injecting the output again changes nothing), stdin, and the refusal of a
//! service account that is not an identity of the mesh.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const IMAGE: &str = "registry.example/mesh-agent:test";

fn inject(input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args([
            "inject",
            "-",
            "--mesh",
            "examples/bookinfo",
            "--image",
            IMAGE,
        ])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn example() -> String {
    std::fs::read_to_string(root().join("examples/bookinfo/kubernetes/bookinfo.yaml")).unwrap()
}

#[test]
fn injects_every_deployment_and_passes_the_rest_through() {
    let input = example();
    let output = Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args([
            "inject",
            "examples/bookinfo/kubernetes/bookinfo.yaml",
            "--mesh",
            "examples/bookinfo",
            "--image",
            IMAGE,
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let text = ok(&output);
    let before: Vec<Value> = serde_saphyr::from_multiple(&input).unwrap();
    let after: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(before.len(), after.len());
    let mut deployments = 0;
    for (old, new) in before.iter().zip(&after) {
        if new["kind"] != "Deployment" {
            assert_eq!(old, new, "other kinds pass through");
            continue;
        }
        deployments += 1;
        let deployment: Deployment = serde_json::from_value(new.clone()).unwrap();
        let template = deployment.spec.unwrap().template;
        let spec = template.spec.unwrap();
        let sa = spec.service_account_name.clone().unwrap();
        let app = template.metadata.unwrap().labels.unwrap()["app"].clone();

        let sidecars: Vec<_> = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.name == "mesh-agent")
            .collect();
        assert_eq!(sidecars.len(), 1);
        let sidecar = sidecars[0];
        assert_eq!(sidecar.image.as_deref(), Some(IMAGE));
        assert_eq!(
            sidecar.restart_policy.as_deref(),
            Some("Always"),
            "native sidecar"
        );
        let args = sidecar.args.clone().unwrap().join(" ");
        assert!(args.contains("--discovery kubernetes"), "{args}");
        assert!(args.contains("--app 127.0.0.1:9080"), "{args}");
        assert!(
            args.contains("--config /etc/mesh/config/config.json"),
            "{args}"
        );
        assert!(args.contains("--identity-dir /etc/mesh/identity"), "{args}");
        assert_eq!(
            sidecar
                .readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/ready")
        );
        assert_eq!(
            sidecar
                .liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/live")
        );
        let requests = sidecar
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap();
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
        let pre_stop = sidecar
            .lifecycle
            .as_ref()
            .unwrap()
            .pre_stop
            .as_ref()
            .unwrap();
        assert_eq!(pre_stop.sleep.as_ref().unwrap().seconds, 5);

        let volumes = spec.volumes.unwrap();
        let config = volumes.iter().find(|v| v.name == "mesh-config").unwrap();
        assert_eq!(
            config.config_map.as_ref().unwrap().name,
            app,
            "the workload's ConfigMap"
        );
        let identity = volumes.iter().find(|v| v.name == "mesh-identity").unwrap();
        assert_eq!(
            identity.secret.as_ref().unwrap().secret_name.as_deref(),
            Some(format!("{sa}-mesh-identity").as_str())
        );

        for container in &spec.containers {
            let env = container.env.clone().unwrap();
            let get = |name: &str| {
                env.iter()
                    .find(|e| e.name == name)
                    .and_then(|e| e.value.clone())
            };
            assert_eq!(get("HTTP_PROXY").as_deref(), Some("http://127.0.0.1:15001"));
            assert!(get("NO_PROXY").unwrap().contains("localhost"));
        }
    }
    assert_eq!(deployments, 6);
}

#[test]
fn injected_bookinfo_snapshot_and_idempotence() {
    let once = ok(&inject(&example()));
    insta::assert_snapshot!(once);
    let twice = ok(&inject(&once));
    assert_eq!(twice, once, "injecting twice changes nothing");
}

#[test]
fn refuses_a_service_account_without_an_identity() {
    let input = example().replace(
        "serviceAccountName: ratings",
        "serviceAccountName: intruder",
    );
    let output = inject(&input);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "nothing written");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Deployment bookinfo/ratings-v1"),
        "{stderr}"
    );
    assert!(stderr.contains("\"intruder\""), "{stderr}");
    assert!(
        stderr.contains("bookinfo/ratings"),
        "lists the identities: {stderr}"
    );

    // No service account at all means `default`, which is not an identity either.
    let input = example().replace("      serviceAccountName: details\n", "");
    let output = inject(&input);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"default\""));

    let output = inject("kind: [");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid YAML"));
}
