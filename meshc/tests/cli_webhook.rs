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
    let mut args: Vec<String> = ["webhook", "--mesh", "examples/bookinfo", "--image", IMAGE]
        .map(str::to_string)
        .to_vec();
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    args.extend([
        "--tls-cert".into(),
        dir.join("tls.crt").display().to_string(),
    ]);
    args.extend([
        "--tls-key".into(),
        dir.join("tls.key").display().to_string(),
    ]);
    start_with(&args)
}

/// Runs `meshc ARGS` (a webhook) in the workspace and waits for its serving line.
fn start_with(args: &[String]) -> Webhook {
    let mut child = Command::new(mesh_test_support::meshc())
        .args(args)
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
    send_to(port, "localhost", ca_pem, method, path, body)
}

/// [`send`] to a server that must prove the name `server_name`.
fn send_to(
    port: u16,
    server_name: &str,
    ca_pem: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let server_name = ServerName::try_from(server_name.to_string()).unwrap();
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
            let tls =
                tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
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

/// Every YAML object `meshc manifests -o DIR` wrote, by `KIND/NAME`.
fn written_objects(out: &Path) -> std::collections::BTreeMap<String, Value> {
    let mut objects = std::collections::BTreeMap::new();
    for dir in std::fs::read_dir(out).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let object: Value = serde_saphyr::from_str(&text).unwrap();
            let key = format!(
                "{}/{}",
                object["kind"].as_str().unwrap(),
                object["metadata"]["name"].as_str().unwrap()
            );
            objects.insert(key, object);
        }
    }
    objects
}

fn manifests_with_injector(ca: &Path, out: &Path) {
    let output = Command::new(mesh_test_support::meshc())
        .args(["manifests", "examples", "--injector", "--image", IMAGE])
        .arg("--ca")
        .arg(ca)
        .arg("-o")
        .arg(out)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

/// The injector `meshc manifests --injector` deploys, run as its objects say: the sources
/// ConfigMap (of every example, in directories) and the serving Secret are laid out as
/// the kubelet mounts them, the
/// container's own arguments start `meshc webhook`, and the API server's side of it (the
/// `MutatingWebhookConfiguration`: CA bundle, service name, path) reaches it and gets a
/// pod injected.
#[test]
fn the_injector_runs_as_its_manifests_deploy_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    Ca::generate("injector test CA")
        .unwrap()
        .write(&ca_dir)
        .unwrap();
    let out = dir.path().join("out");
    manifests_with_injector(&ca_dir, &out);
    let objects = written_objects(&out);

    let config = objects
        .iter()
        .find(|(key, _)| key.starts_with("MutatingWebhookConfiguration/"))
        .map(|(_, object)| object)
        .unwrap();
    let webhook = &config["webhooks"][0];
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(
        webhook["namespaceSelector"]["matchLabels"]["mesh/inject"],
        "enabled"
    );
    assert_eq!(webhook["rules"][0]["resources"], json!(["pods"]));
    assert_eq!(webhook["rules"][0]["operations"], json!(["CREATE"]));
    let service = &webhook["clientConfig"]["service"];
    let bundle: k8s_openapi::ByteString =
        serde_json::from_value(webhook["clientConfig"]["caBundle"].clone()).unwrap();
    let ca_pem = String::from_utf8(bundle.0).unwrap();
    assert_eq!(
        ca_pem,
        std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap()
    );
    assert!(objects.contains_key("Namespace/mesh-system"));
    let svc = &objects["Service/meshc-injector"];
    assert_eq!(svc["metadata"]["namespace"], service["namespace"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], service["port"]);

    // Lay the volumes out as the kubelet would.
    let deployment = &objects["Deployment/meshc-injector"];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["command"], json!(["meshc"]));
    let mut args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let name = mount["name"].as_str().unwrap();
        let mount_path = mount["mountPath"].as_str().unwrap();
        let local = dir.path().join(name);
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        if let Some(map) = volume.get("configMap") {
            let data = &objects[&format!("ConfigMap/{}", map["name"].as_str().unwrap())]["data"];
            // As the kubelet does: files under `..data/`, each top-level entry a link.
            let mut top = std::collections::BTreeSet::new();
            for item in map["items"].as_array().unwrap() {
                let relative = item["path"].as_str().unwrap();
                let path = local.join("..data").join(relative);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, data[item["key"].as_str().unwrap()].as_str().unwrap())
                    .unwrap();
                top.insert(relative.split('/').next().unwrap().to_string());
            }
            for entry in top {
                std::os::unix::fs::symlink(Path::new("..data").join(&entry), local.join(&entry))
                    .unwrap();
            }
            // The mounted sources are the whole mesh again.
            let check = mesh_test_support::run_meshc(&["check", "."], &local);
            let said = String::from_utf8_lossy(&check.stdout).to_string()
                + &String::from_utf8_lossy(&check.stderr);
            let files = map["items"].as_array().unwrap().len();
            assert!(files > 1, "the examples are several files in directories");
            assert!(
                check.status.success() && said.contains(&format!("checked {files} files")),
                "{said}"
            );
        } else {
            let secret = &objects[&format!(
                "Secret/{}",
                volume["secret"]["secretName"].as_str().unwrap()
            )];
            std::fs::create_dir_all(&local).unwrap();
            for (key, value) in secret["data"].as_object().unwrap() {
                let bytes: k8s_openapi::ByteString = serde_json::from_value(value.clone()).unwrap();
                std::fs::write(local.join(key), bytes.0).unwrap();
            }
        }
        for arg in &mut args {
            *arg = arg.replace(mount_path, &local.display().to_string());
        }
    }
    for arg in &mut args {
        if arg.starts_with("0.0.0.0:") {
            *arg = "127.0.0.1:0".to_string();
        }
    }
    let running = start_with(&args);

    let server_name = format!(
        "{}.{}.svc",
        service["name"].as_str().unwrap(),
        service["namespace"].as_str().unwrap()
    );
    let path = service["path"].as_str().unwrap();
    let pod = reviews_pod("reviews");
    let (status, body) = send_to(
        running.port,
        &server_name,
        &ca_pem,
        "POST",
        path,
        admission_review("Pod", "CREATE", pod.clone()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut patched = pod;
    json_patch::patch(&mut patched, &patch_of(&response(&body))).unwrap();
    let agent = patched["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mesh-agent")
        .cloned()
        .unwrap();
    assert_eq!(agent["image"], IMAGE);

    // Run again: the serving certificate is kept while good.
    let secret_file = out.join("mesh-system/secret-meshc-injector-mesh-identity.yaml");
    let before = std::fs::read(&secret_file).unwrap();
    manifests_with_injector(&ca_dir, &out);
    assert_eq!(std::fs::read(&secret_file).unwrap(), before);
}
