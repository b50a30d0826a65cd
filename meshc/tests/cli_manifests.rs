//! `meshc manifests`, through the real binary: the objects of the bookinfo example
//! (snapshotted with the key material redacted), each deserialized into its `k8s-openapi`
//! type and checked for meaning (labels, hashes, configs that load, certificates that
//! verify for the right SPIFFE id), byte-identical output when run again over its own
//! directory, and refusals (no CA, a mesh with errors).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use mesh_test_support::{run_meshc, tree, workspace_root as root};
use serde_json::Value;

fn ca_dir(dir: &Path) -> PathBuf {
    let ca = dir.join("ca");
    mesh_identity::Ca::generate("test mesh CA")
        .unwrap()
        .write(&ca)
        .unwrap();
    ca
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifests_stdout(ca: &Path) -> String {
    let output = run_meshc(
        &[
            "manifests",
            "compiler/tests/fixtures/frozen-bookinfo",
            "--ca",
            ca.to_str().unwrap(),
            "-o",
            "-",
        ],
        &root(),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn every_object_is_typed_labelled_and_meaningful() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_dir(dir.path());
    let text = manifests_stdout(&ca);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let mut kinds = BTreeMap::<String, usize>::new();
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap().to_string();
        *kinds.entry(kind.clone()).or_default() += 1;
        let labels = &doc["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "meshc", "{doc}");
        assert_eq!(labels["mesh"], "bookinfo", "{doc}");
        let hash = doc["metadata"]["annotations"]["mesh/config-hash"]
            .as_str()
            .unwrap();
        assert_eq!(hash.len(), 64);
        match kind.as_str() {
            "ConfigMap" => {
                let cm: ConfigMap = serde_json::from_value(doc.clone()).unwrap();
                let data = cm.data.unwrap();
                let config = &data["config.json"];
                assert_eq!(sha256(config.as_bytes()), hash, "the hash is the config's");
                let loaded = mesh_config::Config::from_json(config.as_bytes()).unwrap();
                let service = &loaded.source().workload.service;
                assert_eq!(
                    service,
                    &format!(
                        "{}/{}",
                        cm.metadata.namespace.unwrap(),
                        cm.metadata.name.unwrap()
                    )
                );
                assert!(data["mesh.cedarschema"].contains("namespace"));
            }
            "Secret" => {
                let secret: Secret = serde_json::from_value(doc.clone()).unwrap();
                assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
                let data = secret.data.unwrap();
                let identity = mesh_identity::Identity::from_pem(
                    &data["tls.crt"].0,
                    &data["tls.key"].0,
                    &data["ca.crt"].0,
                )
                .unwrap();
                let sa = secret
                    .metadata
                    .name
                    .unwrap()
                    .strip_suffix("-mesh-identity")
                    .unwrap()
                    .to_string();
                assert_eq!(
                    identity.spiffe_id().to_string(),
                    format!("spiffe://cluster.local/ns/bookinfo/sa/{sa}")
                );
                assert_eq!(sha256(&data["tls.crt"].0), hash);
                assert_eq!(
                    data["ca.crt"].0,
                    std::fs::read(ca.join("ca.pem")).unwrap(),
                    "the CA given, never a throwaway one"
                );
            }
            "ServiceAccount" => {
                let _: ServiceAccount = serde_json::from_value(doc.clone()).unwrap();
            }
            "ClusterRole" => {
                let role: ClusterRole = serde_json::from_value(doc.clone()).unwrap();
                let rules = role.rules.unwrap();
                let verbs: Vec<_> = rules.iter().flat_map(|r| r.verbs.clone()).collect();
                assert!(
                    verbs.iter().all(|v| v == "list" || v == "watch"),
                    "{verbs:?}"
                );
                let resources: Vec<_> = rules
                    .iter()
                    .flat_map(|r| r.resources.clone().unwrap())
                    .collect();
                assert_eq!(resources, ["endpointslices", "pods", "services"]);
            }
            "ClusterRoleBinding" => {
                let binding: ClusterRoleBinding = serde_json::from_value(doc.clone()).unwrap();
                assert_eq!(binding.subjects.unwrap().len(), 4);
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    let expected = BTreeMap::from([
        ("ClusterRole".to_string(), 1),
        ("ClusterRoleBinding".to_string(), 1),
        ("ConfigMap".to_string(), 4),
        ("Secret".to_string(), 4),
        ("ServiceAccount".to_string(), 4),
    ]);
    assert_eq!(kinds, expected);
}

/// The stream with the key material (different on every run) replaced.
fn redacted(text: &str) -> String {
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
    for doc in &mut docs {
        if doc["kind"] == "Secret" {
            for key in ["tls.crt", "tls.key", "ca.crt"] {
                doc["data"][key] = Value::from("<redacted>");
            }
            doc["metadata"]["annotations"]["mesh/config-hash"] = Value::from("<sha256 of tls.crt>");
        }
    }
    docs.iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap()))
        .collect()
}

#[test]
fn bookinfo_manifests_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_dir(dir.path());
    insta::assert_snapshot!(redacted(&manifests_stdout(&ca)));
}

#[test]
fn a_directory_is_rewritten_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_dir(dir.path());
    let out = dir.path().join("out");
    let args = [
        "manifests",
        "compiler/tests/fixtures/frozen-bookinfo",
        "--ca",
        ca.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let first = run_meshc(&args, &root());
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = tree(&out);
    assert!(
        before.contains_key("bookinfo/configmap-reviews.yaml"),
        "{:?}",
        before.keys()
    );
    assert!(before.contains_key("bookinfo/secret-reviews-mesh-identity.yaml"));
    assert!(before.contains_key("_cluster/clusterrole-meshc-bookinfo-discovery.yaml"));
    assert_eq!(before.len(), 14);

    let second = run_meshc(&args, &root());
    assert_eq!(second.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("(0 files changed)"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(tree(&out), before, "certificates still good are kept");

    // Another CA: every certificate is reissued, the configs stay.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_ca = ca_dir(&other);
    let third = run_meshc(
        &[
            "manifests",
            "compiler/tests/fixtures/frozen-bookinfo",
            "--ca",
            other_ca.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(third.status.code(), Some(0));
    let after = tree(&out);
    for (path, bytes) in &after {
        assert_eq!(path.contains("/secret-"), before[path] != *bytes, "{path}");
    }

    // A service leaves the mesh: its files go, files of other meshes and others stay.
    let other_mesh =
        "metadata:\n  labels:\n    app.kubernetes.io/managed-by: meshc\n    mesh: another\n";
    std::fs::write(out.join("bookinfo/configmap-elsewhere.yaml"), other_mesh).unwrap();
    std::fs::write(out.join("bookinfo/notes.yaml"), "hand: written\n").unwrap();
    let mesh = dir.path().join("bookinfo.mesh");
    let text = std::fs::read_to_string(
        root().join("compiler/tests/fixtures/frozen-bookinfo/bookinfo.mesh"),
    )
    .unwrap();
    std::fs::write(
        &mesh,
        text.replace("  service details {\n    port http 9080\n  }\n", ""),
    )
    .unwrap();
    let fourth = run_meshc(
        &[
            "manifests",
            mesh.to_str().unwrap(),
            "--ca",
            other_ca.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(
        fourth.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fourth.stderr)
    );
    let last = tree(&out);
    let gone: Vec<&String> = after.keys().filter(|k| !last.contains_key(*k)).collect();
    assert_eq!(
        gone,
        [
            "bookinfo/configmap-details.yaml",
            "bookinfo/secret-details-mesh-identity.yaml",
            "bookinfo/serviceaccount-details.yaml",
        ]
    );
    assert!(last.contains_key("bookinfo/configmap-elsewhere.yaml"));
    assert!(last.contains_key("bookinfo/notes.yaml"));
}

#[test]
fn refuses_without_a_ca_or_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-ca");
    let output = run_meshc(
        &[
            "manifests",
            "compiler/tests/fixtures/frozen-bookinfo",
            "--ca",
            missing.to_str().unwrap(),
            "-o",
            "-",
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot load the mesh CA"));

    let output = run_meshc(
        &[
            "manifests",
            "compiler/tests/fixtures/frozen-bookinfo",
            "-o",
            "-",
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(2), "--ca is required");

    let ca = ca_dir(dir.path());
    let broken = dir.path().join("broken.mesh");
    std::fs::write(
        &broken,
        "mesh m { trust_domain \"x\" }\nnamespace n { service s { port http 99999 } }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = run_meshc(
        &[
            "manifests",
            broken.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!out.exists(), "nothing written");
}

/// `spec` of a cert-manager `Certificate` (`cert-manager.io/v1`), with the fields its API
/// reference documents and nothing else: an unknown field fails the test.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateSpec {
    secret_name: String,
    issuer_ref: IssuerRef,
    uris: Vec<String>,
    duration: String,
    renew_before: String,
    private_key: PrivateKey,
    usages: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerRef {
    name: String,
    kind: String,
    group: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrivateKey {
    algorithm: String,
    size: u32,
    encoding: String,
    rotation_policy: String,
}

/// Go durations as cert-manager writes them (`24h`, `8h`, `90m`): seconds.
fn go_duration(text: &str) -> u64 {
    let (number, unit) = text.split_at(text.len() - 1);
    let number: u64 = number.parse().unwrap();
    number
        * match unit {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => panic!("unit of {text}"),
        }
}

#[test]
fn cert_manager_issues_every_identity_into_the_secret_the_agent_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_dir(dir.path());
    let output = run_meshc(
        &[
            "manifests",
            "compiler/tests/fixtures/frozen-bookinfo",
            "--ca",
            ca.to_str().unwrap(),
            "--issuer",
            "cert-manager",
            "-o",
            "-",
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let of_kind =
        |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };

    // The issuer: a CA issuer over a Secret holding the mesh CA, where cert-manager
    // reads a ClusterIssuer's Secrets.
    let issuers = of_kind("ClusterIssuer");
    assert_eq!(issuers.len(), 1);
    let issuer = issuers[0];
    assert_eq!(issuer["apiVersion"], "cert-manager.io/v1");
    let issuer_name = issuer["metadata"]["name"].as_str().unwrap();
    let ca_secret_name = issuer["spec"]["ca"]["secretName"].as_str().unwrap();
    let ca_secret: Secret = serde_json::from_value(
        of_kind("Secret")
            .into_iter()
            .find(|s| s["metadata"]["name"] == ca_secret_name)
            .unwrap()
            .clone(),
    )
    .unwrap();
    assert_eq!(
        ca_secret.metadata.namespace.as_deref(),
        Some("cert-manager")
    );
    let data = ca_secret.data.unwrap();
    assert_eq!(
        data["tls.crt"].0,
        std::fs::read(ca.join("ca.pem")).unwrap(),
        "the issuer signs with the mesh CA"
    );
    assert_eq!(
        data["tls.key"].0,
        std::fs::read(ca.join("ca-key.pem")).unwrap()
    );

    // No identity Secret of meshc's: a Certificate per identity instead.
    assert!(
        of_kind("Secret").iter().all(|s| !s["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-mesh-identity")),
        "cert-manager writes the identity Secrets"
    );
    let identities: BTreeMap<String, String> = of_kind("ServiceAccount")
        .iter()
        .map(|sa| {
            let ns = sa["metadata"]["namespace"].as_str().unwrap();
            let name = sa["metadata"]["name"].as_str().unwrap();
            (
                format!("{ns}/{name}"),
                format!("spiffe://cluster.local/ns/{ns}/sa/{name}"),
            )
        })
        .collect();
    let certificates = of_kind("Certificate");
    assert_eq!(certificates.len(), identities.len());
    for certificate in certificates {
        assert_eq!(certificate["apiVersion"], "cert-manager.io/v1");
        let ns = certificate["metadata"]["namespace"].as_str().unwrap();
        let spec: CertificateSpec = serde_json::from_value(certificate["spec"].clone()).unwrap();
        // The Secret `meshc inject` mounts as the agent's identity.
        let sa = spec.secret_name.strip_suffix("-mesh-identity").unwrap();
        assert_eq!(spec.uris, [identities[&format!("{ns}/{sa}")].clone()]);
        assert_eq!(spec.issuer_ref.name, issuer_name);
        assert_eq!(spec.issuer_ref.kind, "ClusterIssuer");
        assert_eq!(spec.issuer_ref.group, "cert-manager.io");
        assert_eq!(go_duration(&spec.duration), 24 * 3600);
        assert!(go_duration(&spec.renew_before) < go_duration(&spec.duration));
        assert_eq!(
            (spec.private_key.algorithm.as_str(), spec.private_key.size),
            ("ECDSA", 256)
        );
        assert_eq!(spec.private_key.encoding, "PKCS8");
        assert_eq!(spec.private_key.rotation_policy, "Always");
        for usage in ["server auth", "client auth"] {
            assert!(spec.usages.iter().any(|u| u == usage), "mTLS needs {usage}");
        }
    }
}

/// bookinfo's ingress gateway as a whole workload: its config (certificate paths moved
/// to where the Secret is mounted) loads in the agent's own loader, every path it names
/// is a key of the TLS Secret the Deployment mounts there, the Deployment runs the
/// gateway as its service account, and a LoadBalancer Service exposes its listeners.
#[test]
fn the_gateway_is_deployed_with_its_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_dir(dir.path());
    let output = run_meshc(
        &[
            "manifests",
            "examples/bookinfo",
            "--ca",
            ca.to_str().unwrap(),
            "-o",
            "-",
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let config_map: ConfigMap =
        serde_json::from_value(find("ConfigMap", "bookinfo-gateway")).unwrap();
    let text = &config_map.data.unwrap()["config.json"];
    let config = mesh_config::Config::from_json(text.as_bytes()).unwrap();
    let gateway = config.gateway().unwrap();
    assert_eq!(gateway.name, "bookinfo-gateway");
    let secret: Secret =
        serde_json::from_value(find("Secret", "bookinfo-gateway-gateway-tls")).unwrap();
    let data = secret.data.unwrap();
    let deployment: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(find("Deployment", "bookinfo-gateway")).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("bookinfo-gateway")
    );
    let container = &pod.containers[0];
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "mesh-gateway-tls")
        .unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "mesh-gateway-tls")
        .unwrap();
    assert_eq!(
        volume.secret.unwrap().secret_name.as_deref(),
        Some("bookinfo-gateway-gateway-tls")
    );
    let tls = gateway.listeners[1].tls.as_ref().unwrap();
    for path in [&tls.cert, &tls.key] {
        let key = path
            .strip_prefix(&format!("{}/", mount.mount_path))
            .unwrap_or_else(|| panic!("{path} is not under {}", mount.mount_path));
        assert!(data.contains_key(key), "the Secret has no {key}");
    }
    assert_eq!(
        data[tls.cert.rsplit('/').next().unwrap()].0,
        std::fs::read(root().join("examples/bookinfo/certs/bookinfo.pem")).unwrap()
    );
    let args = container.args.as_ref().unwrap().join(" ");
    assert!(args.contains("--gateway bookinfo-gateway"), "{args}");
    let service: k8s_openapi::api::core::v1::Service =
        serde_json::from_value(find("Service", "bookinfo-gateway")).unwrap();
    let spec = service.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [8080, 8443]);
    // Its identity is issued like every other.
    find("Secret", "bookinfo-gateway-mesh-identity");
    find("ServiceAccount", "bookinfo-gateway");
}
