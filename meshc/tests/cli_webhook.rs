//! `meshc webhook`, the sidecar injector as a mutating admission webhook, through the real
//! binary over real TLS (a serving certificate issued by a mesh CA made in the test): a
//! pod of bookinfo created from a template is patched, and the patched pod equals what
//! `meshc inject` makes of it; an injected pod, an opted-out pod and other kinds pass
//! unchanged; a pod whose service account is not a mesh identity is refused with the
//! reason; bad bodies get 400; a renewed certificate is served without a restart; a
//! certificate that cannot be read stops it with a clear error.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mesh_identity::rustls::pki_types::pem::PemObject;
use mesh_identity::rustls::pki_types::{CertificateDer, ServerName};
use mesh_identity::rustls::{ClientConfig, RootCertStore};
use mesh_identity::{Ca, ServingCert};
use mesh_test_support::workspace_root as root;
use serde_json::{Value, json};

const IMAGE: &str = "registry.example/mesh-agent:test";

/// A running `meshc webhook`, killed on drop.
struct Webhook {
    child: Child,
    port: u16,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serving(ca: &Ca) -> ServingCert {
    ca.issue_serving(&["localhost".to_string()], Duration::from_secs(3600))
        .unwrap()
}

fn write_pair(dir: &Path, cert: &ServingCert) {
    // Replace both as a Secret volume update does: new files, then renames.
    std::fs::write(dir.join("tls.crt.new"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key.new"), &cert.key_pem).unwrap();
    std::fs::rename(dir.join("tls.key.new"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), dir.join("tls.crt")).unwrap();
}

fn start(dir: &Path) -> Webhook {
    let mut child = Command::new(mesh_test_support::meshc())
        .args(["webhook", "--mesh", "examples/bookinfo", "--image", IMAGE])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .current_dir(root())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("meshc webhook: serving https://") {
                let port = rest.split(['/', ':']).nth(1).and_then(|p| p.parse().ok());
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("meshc webhook did not say where it listens within 60 s")
        .expect("a port in the serving line");
    Webhook { child, port }
}

/// Sends `body` to `path` over TLS, trusting only `ca_pem`: (status, body).
fn send(port: u16, ca_pem: &str, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let config = ClientConfig::builder_with_provider(mesh_identity::crypto_provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let tls = tokio::time::timeout(
                Duration::from_secs(10),
                connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
            )
            .await
            .expect("handshake within 10 s")
            .map_err(|e| e.to_string())?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(connection);
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response =
                tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
                    .await
                    .expect("an answer within 10 s")
                    .unwrap();
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, String>((status, bytes.to_vec()))
        })
        .unwrap_or_else(|e| panic!("TLS to the webhook failed: {e}"))
}

/// A pod as a ReplicaSet creates it: no name or namespace of its own yet.
fn reviews_pod(service_account: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "reviews-v1-6f9d7c-",
            "labels": { "app": "reviews", "version": "v1" }
        },
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{
                "name": "reviews",
                "image": "docker.io/istio/examples-bookinfo-reviews-v1:1.20.2",
                "ports": [{ "containerPort": 9080 }]
            }]
        }
    })
}

fn admission_review(kind: &str, operation: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "", "version": "v1", "kind": kind },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": kind },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "bookinfo",
            "operation": operation,
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" }
        }
    }))
    .unwrap()
}

/// The response of a review answer, checked for the shape the API server requires.
fn response(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    let response = review["response"].clone();
    assert_eq!(
        response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
        "the uid is copied back"
    );
    response
}

fn patch_of(response: &Value) -> json_patch::Patch {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes: Vec<u8> = serde_json::from_value(response["patch"].clone()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// What `meshc inject` makes of `pod` (in namespace bookinfo).
fn injected_by_cli(pod: &Value) -> Value {
    let mut pod = pod.clone();
    pod["metadata"]["namespace"] = json!("bookinfo");
    let mut child = Command::new(mesh_test_support::meshc())
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
        .write_all(pod.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_saphyr::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap()
}

#[test]
fn the_webhook_injects_pods_as_meshc_inject_does_and_refuses_what_it_cannot_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("webhook test CA").unwrap();
    write_pair(dir.path(), &serving(&ca));
    let webhook = start(dir.path());
    let ca_pem = ca.bundle_pem().to_string();
    let post = |body: Vec<u8>| send(webhook.port, &ca_pem, "POST", "/inject", body);

    // A bookinfo pod gets the sidecar; the patched pod is what `meshc inject` writes.
    let pod = reviews_pod("reviews");
    let (status, body) = post(admission_review("Pod", "CREATE", pod.clone()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let patch = patch_of(&response(&body));
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    let mut expected = injected_by_cli(&pod);
    expected["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    assert_eq!(patched, expected, "webhook and `meshc inject` differ");
    let init: Vec<&str> = patched["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init, ["mesh-init", "mesh-agent"]);

    // The injected pod (a re-invocation) passes unchanged.
    let (status, body) = post(admission_review("Pod", "CREATE", patched.clone()));
    assert_eq!(status, 200);
    let answer = response(&body);
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("patch").is_none(), "{answer}");

    // Opted out by annotation: unchanged.
    let mut opted_out = pod.clone();
    opted_out["metadata"]["annotations"] = json!({ "mesh/inject": "disabled" });
    let answer = response(&post(admission_review("Pod", "CREATE", opted_out)).1);
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("patch").is_none(), "{answer}");

    // Not a pod creation: unchanged.
    let answer = response(&post(admission_review("Pod", "UPDATE", pod.clone())).1);
    assert_eq!(answer["allowed"], true);
    assert!(answer.get("patch").is_none(), "{answer}");
    let answer = response(&post(admission_review("ConfigMap", "CREATE", json!({}))).1);
    assert_eq!(answer["allowed"], true);

    // A service account that is no identity of the mesh: refused, saying why.
    let answer = response(&post(admission_review("Pod", "CREATE", reviews_pod("intruder"))).1);
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("mesh sidecar injection")
            && message.contains("\"intruder\"")
            && message.contains("not an identity of mesh"),
        "{message}"
    );

    // Bad bodies: 400 with the reason; unknown paths 404; the readiness probe.
    let (status, body) = post(b"{not json".to_vec());
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));
    let (status, body) = post(
        serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        )
        .unwrap(),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("no request"));
    let (status, _) = post(vec![b' '; 4 << 20]);
    assert_eq!(status, 400, "an oversized body is refused");
    assert_eq!(
        send(webhook.port, &ca_pem, "GET", "/inject", Vec::new()).0,
        404
    );
    assert_eq!(
        send(webhook.port, &ca_pem, "GET", "/ready", Vec::new()).0,
        200
    );
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::generate("old CA").unwrap();
    write_pair(dir.path(), &serving(&old_ca));
    let webhook = start(dir.path());
    let ready = |ca: &Ca| send(webhook.port, ca.bundle_pem(), "GET", "/ready", Vec::new()).0;
    assert_eq!(ready(&old_ca), 200);

    // cert-manager renews from another CA: the next handshake presents the new one.
    let new_ca = Ca::generate("new CA").unwrap();
    write_pair(dir.path(), &serving(&new_ca));
    assert_eq!(ready(&new_ca), 200);

    // A broken pair (a key that is not PEM) leaves the last good certificate in use.
    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert_eq!(ready(&new_ca), 200);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_certificate_that_cannot_be_read_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    let output = Command::new(mesh_test_support::meshc())
        .args(["webhook", "--mesh", "examples/bookinfo", "--image", IMAGE])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls.crt: no certificate in it"), "{stderr}");
}
