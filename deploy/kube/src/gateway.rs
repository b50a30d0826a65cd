//! An ingress gateway in a cluster. Sidecars are injected into the user's own workloads;
//! a gateway has no app, so `meshc manifests` makes the whole workload:
//!
//! - a ConfigMap with its config, where the certificate and key paths the compiler wrote
//!   (files next to the `.mesh` sources) are replaced by the paths they are mounted at;
//! - a Secret (`NAME-gateway-tls`) holding those certificate and key files;
//! - a Deployment running `mesh-agent --gateway NAME` as the gateway's service account,
//!   with its config, identity and certificates mounted;
//! - a Service of type `LoadBalancer` exposing the listeners' ports, as Istio's ingress
//!   gateway is exposed.
//!
//! The ServiceAccount and identity Secret come with the mesh's other identities.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction, PodSpec,
    PodTemplateSpec, Probe, Secret, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::error::KubeError;
use crate::inject::{self, ADMIN_PORT, CONFIG_DIR, IDENTITY_DIR};
use crate::input::GatewayInput;
use crate::labels::{self, sha256_hex};
use crate::object::Object;

/// Where a gateway's certificates and keys are mounted.
pub const TLS_DIR: &str = "/etc/mesh/gateway-tls";
/// The volume holding them.
pub const TLS_VOLUME: &str = "mesh-gateway-tls";
/// The pod label selecting a gateway's pods.
pub const GATEWAY_LABEL: &str = "mesh/gateway";

/// The name of the Secret holding a gateway's certificates.
pub fn tls_secret_name(gateway: &str) -> String {
    format!("{gateway}-gateway-tls")
}

/// The objects of one gateway of mesh `mesh`: ConfigMap, TLS Secret (when a listener or
/// host uses TLS, with the files its config names read now), Deployment and Service.
pub fn objects(mesh: &str, gateway: &GatewayInput, image: &str) -> Result<Vec<Object>, KubeError> {
    let (config, files) = mounted_config(gateway)?;
    let namespace = Some(gateway.namespace.as_str());
    let mut objects = vec![Object::ConfigMap(ConfigMap {
        metadata: labels::meta(
            mesh,
            namespace,
            &labels::config_map_name(&gateway.name),
            sha256_hex(config.as_bytes()),
        ),
        data: Some(BTreeMap::from([(labels::CONFIG_KEY.to_string(), config)])),
        ..ConfigMap::default()
    })];
    let tls_hash = {
        let mut all = Vec::new();
        for (key, bytes) in &files {
            all.extend_from_slice(key.as_bytes());
            all.extend_from_slice(bytes);
        }
        sha256_hex(&all)
    };
    let uses_tls = !files.is_empty();
    if uses_tls {
        objects.push(Object::Secret(Secret {
            metadata: labels::meta(
                mesh,
                namespace,
                &tls_secret_name(&gateway.name),
                tls_hash.clone(),
            ),
            type_: Some("Opaque".to_string()),
            data: Some(
                files
                    .into_iter()
                    .map(|(key, bytes)| (key, ByteString(bytes)))
                    .collect(),
            ),
            ..Secret::default()
        }));
    }
    let selector = BTreeMap::from([(GATEWAY_LABEL.to_string(), gateway.name.clone())]);
    objects.push(Object::Deployment(Box::new(deployment(
        mesh, gateway, image, &selector, &tls_hash, uses_tls,
    ))));
    objects.push(Object::Service(Box::new(Service {
        metadata: labels::meta(mesh, namespace, &gateway.name, String::new()),
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_string()),
            selector: Some(selector),
            ports: Some(
                gateway
                    .listeners
                    .iter()
                    .map(|port| ServicePort {
                        name: Some(format!("listen-{port}")),
                        port: i32::from(*port),
                        target_port: Some(IntOrString::Int(i32::from(*port))),
                        protocol: Some("TCP".to_string()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })));
    Ok(objects)
}

/// The gateway's config with every certificate and key path replaced by its mounted
/// path, and the files by Secret key (`0-NAME`, in order of first mention).
fn mounted_config(
    gateway: &GatewayInput,
) -> Result<(String, BTreeMap<String, Vec<u8>>), KubeError> {
    let mut config: Value =
        serde_json::from_str(&gateway.config).map_err(|e| KubeError::Shape {
            index: 0,
            kind: "gateway config".to_string(),
            name: gateway.name.clone(),
            message: e.to_string(),
        })?;
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut files = BTreeMap::new();
    let gateway_section = config
        .get_mut("gateway")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|section| section.iter_mut())
        .filter(|(list, _)| *list == "listeners" || *list == "hosts")
        .filter_map(|(_, entries)| entries.as_array_mut())
        .flatten();
    let tls_blocks = gateway_section
        .filter_map(|entry| entry.get_mut("tls"))
        .filter(|tls| tls.is_object());
    for tls in tls_blocks {
        for field in ["cert", "key"] {
            let Some(path) = tls[field].as_str().map(str::to_string) else {
                continue;
            };
            let key = match keys.iter().find(|(p, _)| *p == path) {
                Some((_, key)) => key.clone(),
                None => {
                    let key = secret_key(keys.len(), &path);
                    let bytes =
                        std::fs::read(Path::new(&path)).map_err(|source| KubeError::Io {
                            path: path.clone().into(),
                            source,
                        })?;
                    files.insert(key.clone(), bytes);
                    keys.push((path, key.clone()));
                    key
                }
            };
            tls[field] = Value::String(format!("{TLS_DIR}/{key}"));
        }
    }
    let text = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
    Ok((text, files))
}

/// A Secret key for the `index`th file: its index and file name, with characters a key
/// may not hold replaced.
fn secret_key(index: usize, path: &str) -> String {
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{index}-{clean}")
}

fn deployment(
    mesh: &str,
    gateway: &GatewayInput,
    image: &str,
    selector: &BTreeMap<String, String>,
    tls_hash: &str,
    // Whether there is a TLS Secret to mount.
    uses_tls: bool,
) -> Deployment {
    let mut pod_labels = selector.clone();
    pod_labels.insert(labels::MESH.to_string(), mesh.to_string());
    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("mesh-admin".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    };
    let mut ports: Vec<ContainerPort> = gateway
        .listeners
        .iter()
        .map(|port| ContainerPort {
            name: Some(format!("listen-{port}")),
            container_port: i32::from(*port),
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        })
        .collect();
    ports.push(ContainerPort {
        name: Some("mesh-admin".to_string()),
        container_port: i32::from(ADMIN_PORT),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    });
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let mut mounts = vec![
        mount(inject::CONFIG_VOLUME, CONFIG_DIR),
        mount(inject::IDENTITY_VOLUME, IDENTITY_DIR),
    ];
    let mut volumes = vec![
        Volume {
            name: inject::CONFIG_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: labels::config_map_name(&gateway.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        inject::identity_volume(&gateway.service_account),
    ];
    if uses_tls {
        mounts.push(mount(TLS_VOLUME, TLS_DIR));
        volumes.push(Volume {
            name: TLS_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls_secret_name(&gateway.name)),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let container = Container {
        name: inject::SIDECAR.to_string(),
        image: Some(image.to_string()),
        args: Some(vec![
            "--config".to_string(),
            format!("{CONFIG_DIR}/{}", labels::CONFIG_KEY),
            "--gateway".to_string(),
            gateway.name.clone(),
            "--discovery".to_string(),
            "kubernetes".to_string(),
            "--identity-dir".to_string(),
            IDENTITY_DIR.to_string(),
            "--admin".to_string(),
            format!("0.0.0.0:{ADMIN_PORT}"),
            "--log-format".to_string(),
            "json".to_string(),
        ]),
        ports: Some(ports),
        readiness_probe: Some(probe("/ready", 2)),
        liveness_probe: Some(probe("/live", 10)),
        resources: Some(inject::resources("100m", "64Mi", "512Mi")),
        // Listeners on ports below 1024 (443, 80) need NET_BIND_SERVICE; nothing else does.
        security_context: Some(inject::unprivileged(
            gateway
                .listeners
                .iter()
                .any(|p| *p < 1024)
                .then(|| vec!["NET_BIND_SERVICE".to_string()]),
        )),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    Deployment {
        metadata: labels::meta(mesh, Some(&gateway.namespace), &gateway.name, String::new()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    // Pods roll when the certificates change: the agent reloads them
                    // itself, but a new Secret key (a host added) needs a new mount.
                    annotations: Some(BTreeMap::from([(
                        labels::CONFIG_HASH.to_string(),
                        tls_hash.to_string(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(gateway.service_account.clone()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code: a panic is a failure report"
    )]

    use super::*;
    use serde_json::json;

    fn input(dir: &Path, tls: bool) -> GatewayInput {
        let cert = dir.join("public cert.pem");
        let key = dir.join("public-key.pem");
        std::fs::write(&cert, "CERT").unwrap();
        std::fs::write(&key, "KEY").unwrap();
        let files = json!({ "cert": cert, "key": key });
        let config = json!({
            "version": 1,
            "gateway": {
                "name": "public",
                "listeners": [
                    { "port": 443, "tls": if tls { files.clone() } else { Value::Null } },
                    { "port": 8080, "tls": null }
                ],
                "hosts": [
                    { "host": "shop.example.com", "tls": if tls { files } else { Value::Null }, "rules": [] },
                    { "host": "*", "rules": [] }
                ]
            }
        });
        GatewayInput {
            namespace: "shop".into(),
            name: "public".into(),
            service_account: "ingress".into(),
            spiffe_id: "spiffe://cluster.local/ns/shop/sa/ingress".into(),
            listeners: vec![443, 8080],
            config: config.to_string(),
        }
    }

    fn by_kind<'o>(objects: &'o [Object], kind: &str) -> &'o Object {
        objects.iter().find(|o| o.kind() == kind).unwrap()
    }

    #[test]
    fn a_gateway_is_a_config_its_certificates_a_deployment_and_a_load_balancer() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects("shop", &input(dir.path(), true), "mesh-agent:test").unwrap();
        let kinds: Vec<&str> = objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["ConfigMap", "Secret", "Deployment", "Service"]);

        let Object::ConfigMap(cm) = by_kind(&objects, "ConfigMap") else {
            panic!()
        };
        let config: Value =
            serde_json::from_str(&cm.data.as_ref().unwrap()[labels::CONFIG_KEY]).unwrap();
        let tls = &config["gateway"]["listeners"][0]["tls"];
        // One file mentioned twice is one Secret key, mounted once.
        assert_eq!(tls["cert"], format!("{TLS_DIR}/0-public_cert.pem"));
        assert_eq!(tls["key"], format!("{TLS_DIR}/1-public-key.pem"));
        assert_eq!(config["gateway"]["hosts"][0]["tls"], *tls);
        assert!(config["gateway"]["listeners"][1]["tls"].is_null());

        let Object::Secret(secret) = by_kind(&objects, "Secret") else {
            panic!()
        };
        assert_eq!(secret.metadata.name.as_deref(), Some("public-gateway-tls"));
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data["0-public_cert.pem"].0, b"CERT");
        assert_eq!(data["1-public-key.pem"].0, b"KEY");

        let Object::Deployment(deployment) = by_kind(&objects, "Deployment") else {
            panic!()
        };
        let pod = deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("ingress"));
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("mesh-agent:test"));
        let args = container.args.as_ref().unwrap().join(" ");
        assert!(args.contains("--gateway public"), "{args}");
        let caps = container
            .security_context
            .as_ref()
            .unwrap()
            .capabilities
            .as_ref()
            .unwrap();
        assert_eq!(
            caps.add.as_deref(),
            Some(&["NET_BIND_SERVICE".to_string()][..])
        );
        let volumes: Vec<&str> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["mesh-config", "mesh-identity", TLS_VOLUME]);

        let Object::Service(service) = by_kind(&objects, "Service") else {
            panic!()
        };
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        let ports: Vec<i32> = spec
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [443, 8080]);
        assert_eq!(
            spec.selector.as_ref().unwrap()[GATEWAY_LABEL],
            "public",
            "the Service selects the Deployment's pods"
        );
        let template_labels = deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(template_labels[GATEWAY_LABEL], "public");
    }

    #[test]
    fn a_plain_gateway_has_no_certificate_secret() {
        let dir = tempfile::tempdir().unwrap();
        let objects = objects("shop", &input(dir.path(), false), "img").unwrap();
        let kinds: Vec<&str> = objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"]);
    }

    #[test]
    fn a_missing_certificate_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = input(dir.path(), true);
        std::fs::remove_file(dir.path().join("public-key.pem")).unwrap();
        let error = objects("shop", &gateway, "img").unwrap_err().to_string();
        assert!(error.contains("public-key.pem"), "{error}");
    }
}
