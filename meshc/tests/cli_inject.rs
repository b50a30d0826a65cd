//! `meshc inject`, through the real binary on the bookinfo Kubernetes example, in both
//! modes: the injected YAML (snapshotted), each workload deserialized into its
//! `k8s-openapi` type with the capture init container, the sidecar, volumes and proxy
//! settings checked, other kinds passed through, idempotence (injecting the output again,
//! in the same or the other mode, gives what injecting once in that mode gives), probed
//! ports left out of capture, stdin, and the refusal of a service account that is not an
//! identity of the mesh.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use mesh_test_support::workspace_root as root;
use serde_json::Value;

const IMAGE: &str = "registry.example/mesh-agent:test";

fn inject(input: &str) -> Output {
    inject_with(input, &[])
}

fn inject_with(input: &str, extra: &[&str]) -> Output {
    let mut child = Command::new(mesh_test_support::meshc())
        .args([
            "inject",
            "-",
            "--mesh",
            "examples/bookinfo",
            "--image",
            IMAGE,
        ])
        .args(extra)
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

/// The injected Deployments of bookinfo (other kinds checked to pass through), with their
/// pod template annotations and specs.
fn injected_deployments(extra: &[&str]) -> Vec<(Deployment, PodSpec)> {
    let input = example();
    let output = Command::new(mesh_test_support::meshc())
        .args([
            "inject",
            "examples/bookinfo/kubernetes/bookinfo.yaml",
            "--mesh",
            "examples/bookinfo",
            "--image",
            IMAGE,
        ])
        .args(extra)
        .current_dir(root())
        .output()
        .unwrap();
    let text = ok(&output);
    let before: Vec<Value> = serde_saphyr::from_multiple(&input).unwrap();
    let after: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(before.len(), after.len());
    let mut deployments = Vec::new();
    for (old, new) in before.iter().zip(&after) {
        if new["kind"] != "Deployment" {
            assert_eq!(old, new, "other kinds pass through");
            continue;
        }
        let deployment: Deployment = serde_json::from_value(new.clone()).unwrap();
        let spec = deployment.spec.clone().unwrap().template.spec.unwrap();
        deployments.push((deployment, spec));
    }
    assert_eq!(deployments.len(), 6);
    deployments
}

fn annotation(deployment: &Deployment, key: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

fn init_container<'s>(spec: &'s PodSpec, name: &str) -> Option<&'s Container> {
    spec.init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
}

fn env(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

/// The sidecar, its volumes and mounts: the same in both modes.
fn check_sidecar(deployment: &Deployment, spec: &PodSpec) {
    let template = deployment.spec.clone().unwrap().template;
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

    let volumes = spec.volumes.as_ref().unwrap();
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
}

#[test]
fn capture_is_the_default_an_init_container_sets_it_up() {
    for (deployment, spec) in injected_deployments(&[]) {
        check_sidecar(&deployment, &spec);
        assert_eq!(
            annotation(&deployment, "mesh/mode").as_deref(),
            Some("capture")
        );
        assert_eq!(
            annotation(&deployment, "mesh/injected").as_deref(),
            Some(IMAGE)
        );
        let names: Vec<&str> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["mesh-init", "mesh-agent"],
            "capture before the sidecar"
        );

        let init = init_container(&spec, "mesh-init").unwrap();
        assert_eq!(init.image.as_deref(), Some(IMAGE));
        assert_eq!(init.restart_policy, None, "runs once and exits");
        assert_eq!(
            init.args.clone().unwrap().join(" "),
            "capture --proxy-uid 1337 --outbound-port 15001 --inbound-port 15006"
        );
        let security = init.security_context.clone().unwrap();
        let capabilities = security.capabilities.unwrap();
        assert_eq!(
            capabilities.add.unwrap(),
            ["NET_ADMIN".to_string(), "NET_RAW".to_string()]
        );
        assert_eq!(capabilities.drop.unwrap(), ["ALL".to_string()]);
        assert_eq!(security.run_as_user, Some(0));
        assert_eq!(security.run_as_non_root, Some(false));
        assert_eq!(security.privileged, Some(false));
        assert_eq!(security.allow_privilege_escalation, Some(false));

        let sidecar = init_container(&spec, "mesh-agent").unwrap();
        let security = sidecar.security_context.clone().unwrap();
        assert_eq!(
            security.run_as_user,
            Some(1337),
            "the uid capture leaves alone"
        );
        assert_eq!(security.run_as_group, Some(1337));
        assert_eq!(security.run_as_non_root, Some(true));
        let args = sidecar.args.clone().unwrap().join(" ");
        for listener in [
            "--outbound 127.0.0.1:15001",
            "--inbound 0.0.0.0:15006",
            "--admin 0.0.0.0:15000",
        ] {
            assert!(args.contains(listener), "{args}");
        }

        for container in &spec.containers {
            for name in ["HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] {
                assert_eq!(env(container, name), None, "no {name} in capture mode");
            }
        }
    }
}

#[test]
fn proxy_env_mode_sets_http_proxy_and_captures_nothing() {
    for (deployment, spec) in injected_deployments(&["--mode", "proxy-env"]) {
        check_sidecar(&deployment, &spec);
        assert_eq!(
            annotation(&deployment, "mesh/mode").as_deref(),
            Some("proxy-env")
        );
        assert!(init_container(&spec, "mesh-init").is_none());
        for container in &spec.containers {
            assert_eq!(
                env(container, "HTTP_PROXY").as_deref(),
                Some("http://127.0.0.1:15001")
            );
            assert!(env(container, "NO_PROXY").unwrap().contains("localhost"));
        }
    }
}

#[test]
fn sidecars_export_spans_where_they_are_told() {
    let collector = "http://otel-collector.observability:4318";
    for (_, spec) in injected_deployments(&["--otlp-endpoint", collector]) {
        let sidecar = init_container(&spec, "mesh-agent").unwrap();
        let args = sidecar.args.clone().unwrap().join(" ");
        assert!(
            args.ends_with(&format!("--otlp-endpoint {collector}")),
            "{args}"
        );
    }
    for (_, spec) in injected_deployments(&[]) {
        let sidecar = init_container(&spec, "mesh-agent").unwrap();
        let args = sidecar.args.clone().unwrap().join(" ");
        assert!(
            !args.contains("--otlp-endpoint"),
            "none unless asked: {args}"
        );
    }
    for (bad, says) in [
        ("https://collector:4318", "only http://"),
        ("collector:4318", "is not a URL"),
    ] {
        // Refused before any input is read.
        let output = Command::new(mesh_test_support::meshc())
            .args([
                "inject",
                "--mesh",
                "examples/bookinfo",
                "--image",
                "agent:1",
            ])
            .args(["--otlp-endpoint", bad])
            .current_dir(root())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}

#[test]
fn injected_bookinfo_snapshot_and_idempotence() {
    let once = ok(&inject(&example()));
    insta::assert_snapshot!(once);
    let twice = ok(&inject(&once));
    assert_eq!(twice, once, "injecting twice changes nothing");
}

#[test]
fn proxy_env_snapshot_and_idempotence() {
    let proxy_env = ["--mode", "proxy-env"];
    let once = ok(&inject_with(&example(), &proxy_env));
    insta::assert_snapshot!(once);
    let twice = ok(&inject_with(&once, &proxy_env));
    assert_eq!(twice, once, "injecting twice changes nothing");
}

#[test]
fn switching_modes_replaces_what_the_other_mode_added() {
    let capture = ok(&inject(&example()));
    let proxy_env = ok(&inject_with(&example(), &["--mode", "proxy-env"]));
    assert_eq!(ok(&inject(&proxy_env)), capture);
    assert_eq!(
        ok(&inject_with(&capture, &["--mode", "proxy-env"])),
        proxy_env
    );
}

#[test]
fn probed_ports_are_left_out_of_inbound_capture() {
    let input = r#"
apiVersion: v1
kind: Pod
metadata:
  name: ratings
  namespace: bookinfo
spec:
  serviceAccountName: ratings
  containers:
  - name: ratings
    image: ratings:dev
    env:
    - name: HTTP_PROXY
      value: http://corporate-proxy:3128
    ports:
    - containerPort: 9080
    - name: health
      containerPort: 8081
    readinessProbe:
      httpGet:
        path: /ready
        port: health
    livenessProbe:
      tcpSocket:
        port: 9080
    startupProbe:
      grpc:
        port: 8082
"#;
    let once = ok(&inject(input));
    let pod: Pod = serde_saphyr::from_str(&once).unwrap();
    let spec = pod.spec.unwrap();
    let init = init_container(&spec, "mesh-init").unwrap();
    assert_eq!(
        init.args.clone().unwrap().join(" "),
        "capture --proxy-uid 1337 --outbound-port 15001 --inbound-port 15006 \
         --exclude-inbound-ports 8081,8082,9080",
        "the kubelet's probes reach the app directly"
    );
    assert_eq!(
        env(&spec.containers[0], "HTTP_PROXY").as_deref(),
        Some("http://corporate-proxy:3128"),
        "the app's own proxy setting stays"
    );
    assert_eq!(ok(&inject(&once)), once, "injecting twice changes nothing");
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
