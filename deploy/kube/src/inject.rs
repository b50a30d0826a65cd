//! `meshc inject`: adds the `mesh-agent` sidecar to the workloads of a multi-document YAML
//! stream (Deployments, StatefulSets, DaemonSets, Jobs and Pods; every other document
//! passes through as it is). The agent runs as a native sidecar (an init container that
//! keeps running, so it starts before the app and does not keep a Job alive), with the
//! workload's ConfigMap and identity Secret mounted, readiness and liveness probes on its
//! admin port, requests for CPU and memory, and a `preStop` pause so endpoints are
//! withdrawn before it drains. The app containers get `HTTP_PROXY` pointing at it.
//!
//! Injection replaces what an earlier injection added, so injecting twice changes nothing.
//! A workload whose service account is not an identity of the mesh is refused.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, KeyToPath, Lifecycle,
    LifecycleHandler, Pod, PodSpec, Probe, ResourceRequirements, SecretVolumeSource,
    SecurityContext, SleepAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::certs;
use crate::error::KubeError;
use crate::input::{MeshInput, WorkloadInput};
use crate::labels;
use crate::yaml;

/// The sidecar's container name.
pub const SIDECAR: &str = "mesh-agent";
/// The volume holding the workload's config.
pub const CONFIG_VOLUME: &str = "mesh-config";
/// The volume holding the workload's identity.
pub const IDENTITY_VOLUME: &str = "mesh-identity";
/// Where the config is mounted.
pub const CONFIG_DIR: &str = "/etc/mesh/config";
/// Where the identity is mounted.
pub const IDENTITY_DIR: &str = "/etc/mesh/identity";
/// The agent's outbound (proxy) port, on loopback.
pub const OUTBOUND_PORT: u16 = 15001;
/// The agent's inbound port, where other agents call this workload.
pub const INBOUND_PORT: u16 = 15006;
/// The agent's admin port (probes, metrics).
pub const ADMIN_PORT: u16 = 15000;
/// The annotation recording the image injected.
pub const INJECTED: &str = "mesh/injected";

/// How to inject.
#[derive(Clone, Debug)]
pub struct Options {
    /// The agent's image.
    pub image: String,
    /// Seconds the agent waits in `preStop` before it is signalled to drain.
    pub pre_stop_seconds: i64,
}

/// Injects every workload of `text` (named `what` in messages); returns the new stream.
pub fn inject(
    text: &str,
    what: &str,
    mesh: &MeshInput,
    options: &Options,
) -> Result<String, KubeError> {
    let documents = yaml::from_documents(text, what)?;
    let mut out = Vec::with_capacity(documents.len());
    for (i, document) in documents.into_iter().enumerate() {
        let index = i + 1;
        let api_version = document["apiVersion"].as_str().unwrap_or_default();
        let kind = document["kind"].as_str().unwrap_or_default();
        let injected = match (api_version, kind) {
            ("apps/v1", "Deployment") => {
                typed::<Deployment>(document, index, mesh, options, |d| {
                    d.spec.as_mut().map(|s| &mut s.template)
                })?
            }
            ("apps/v1", "StatefulSet") => {
                typed::<StatefulSet>(document, index, mesh, options, |d| {
                    d.spec.as_mut().map(|s| &mut s.template)
                })?
            }
            ("apps/v1", "DaemonSet") => typed::<DaemonSet>(document, index, mesh, options, |d| {
                d.spec.as_mut().map(|s| &mut s.template)
            })?,
            ("batch/v1", "Job") => typed::<Job>(document, index, mesh, options, |d| {
                d.spec.as_mut().map(|s| &mut s.template)
            })?,
            ("v1", "Pod") => pod(document, index, mesh, options)?,
            _ => document,
        };
        out.push(injected);
    }
    yaml::to_documents(&out)
}

type Template = k8s_openapi::api::core::v1::PodTemplateSpec;

fn typed<T>(
    document: serde_json::Value,
    index: usize,
    mesh: &MeshInput,
    options: &Options,
    template: impl Fn(&mut T) -> Option<&mut Template>,
) -> Result<serde_json::Value, KubeError>
where
    T: DeserializeOwned + Serialize + kube::Resource,
{
    let (kind, name) = kind_and_name(&document);
    let shape = |message: String| KubeError::Shape {
        index,
        kind: kind.clone(),
        name: name.clone(),
        message,
    };
    let mut object: T = serde_json::from_value(document).map_err(|e| shape(e.to_string()))?;
    let namespace = object.meta().namespace.clone();
    let owner_labels = object.meta().labels.clone().unwrap_or_default();
    let template = template(&mut object).ok_or_else(|| shape("it has no spec".into()))?;
    let spec = template
        .spec
        .as_mut()
        .ok_or_else(|| shape("its pod template has no spec".into()))?;
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    let mut pod_labels = owner_labels;
    pod_labels.extend(metadata.labels.clone().unwrap_or_default());
    let workload = find_workload(mesh, &kind, &name, namespace.as_deref(), spec, &pod_labels)?;
    inject_pod(metadata, spec, workload, options);
    serde_json::to_value(&object).map_err(|e| shape(e.to_string()))
}

fn pod(
    document: serde_json::Value,
    index: usize,
    mesh: &MeshInput,
    options: &Options,
) -> Result<serde_json::Value, KubeError> {
    let (kind, name) = kind_and_name(&document);
    let shape = |message: String| KubeError::Shape {
        index,
        kind: kind.clone(),
        name: name.clone(),
        message,
    };
    let mut pod: Pod = serde_json::from_value(document).map_err(|e| shape(e.to_string()))?;
    let spec = pod
        .spec
        .as_mut()
        .ok_or_else(|| shape("it has no spec".into()))?;
    let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
    let workload = find_workload(
        mesh,
        &kind,
        &name,
        pod.metadata.namespace.as_deref(),
        spec,
        &pod_labels,
    )?;
    inject_pod(&mut pod.metadata, spec, workload, options);
    serde_json::to_value(&pod).map_err(|e| shape(e.to_string()))
}

fn kind_and_name(document: &serde_json::Value) -> (String, String) {
    (
        document["kind"].as_str().unwrap_or("object").to_string(),
        document["metadata"]["name"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
    )
}

/// The mesh workload a pod spec runs as: its service account's identity in its
/// namespace (any namespace when the manifest names none), and among several services
/// sharing that identity the one named like the workload or its `app` label.
fn find_workload<'m>(
    mesh: &'m MeshInput,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    spec: &PodSpec,
    pod_labels: &BTreeMap<String, String>,
) -> Result<&'m WorkloadInput, KubeError> {
    let sa = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let refuse = |message: String| KubeError::Inject {
        kind: kind.to_string(),
        name: match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        },
        message,
    };
    let candidates: Vec<&WorkloadInput> = mesh
        .workloads
        .iter()
        .filter(|w| w.service_account == sa && namespace.is_none_or(|ns| ns == w.namespace))
        .collect();
    let namespaces: std::collections::BTreeSet<&str> =
        candidates.iter().map(|w| w.namespace.as_str()).collect();
    if candidates.is_empty() {
        let known: Vec<String> = mesh
            .identities()
            .into_iter()
            .map(|(ns, sa, _)| format!("{ns}/{sa}"))
            .collect();
        return Err(refuse(format!(
            "service account {sa:?}{} is not an identity of mesh {:?} (its identities: {}); set spec.serviceAccountName to one of them",
            namespace
                .map(|ns| format!(" in namespace {ns:?}"))
                .unwrap_or_default(),
            mesh.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    if namespaces.len() > 1 {
        return Err(refuse(format!(
            "service account {sa:?} is an identity in several namespaces ({}); set metadata.namespace",
            namespaces.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if let [only] = candidates.as_slice() {
        return Ok(only);
    }
    let app = pod_labels.get("app").map(String::as_str);
    candidates
        .iter()
        .find(|w| w.name == name || Some(w.name.as_str()) == app)
        .copied()
        .ok_or_else(|| {
            refuse(format!(
                "service account {sa:?} is the identity of several services ({}); name the workload or its `app` label after one",
                candidates
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn inject_pod(
    metadata: &mut ObjectMeta,
    spec: &mut PodSpec,
    workload: &WorkloadInput,
    options: &Options,
) {
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(INJECTED.to_string(), options.image.clone());

    let app_port = workload
        .ports
        .first()
        .copied()
        .or_else(|| {
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find_map(|p| u16::try_from(p.container_port).ok())
        })
        .unwrap_or(8080);

    let init = spec.init_containers.get_or_insert_with(Vec::new);
    init.retain(|c| c.name != SIDECAR);
    init.insert(0, sidecar(app_port, options));

    for container in &mut spec.containers {
        let env = container.env.get_or_insert_with(Vec::new);
        let proxy = format!("http://127.0.0.1:{OUTBOUND_PORT}");
        let no_proxy = "localhost,127.0.0.1,::1".to_string();
        for (name, value) in [
            ("HTTP_PROXY", proxy.clone()),
            ("http_proxy", proxy.clone()),
            ("NO_PROXY", no_proxy.clone()),
            ("no_proxy", no_proxy.clone()),
        ] {
            env.retain(|e| e.name != name);
            env.push(EnvVar {
                name: name.to_string(),
                value: Some(value),
                ..EnvVar::default()
            });
        }
    }

    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| v.name != CONFIG_VOLUME && v.name != IDENTITY_VOLUME);
    volumes.push(Volume {
        name: CONFIG_VOLUME.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: labels::config_map_name(&workload.name),
            items: Some(vec![key_to_path(labels::CONFIG_KEY, labels::CONFIG_KEY)]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    });
    volumes.push(Volume {
        name: IDENTITY_VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(labels::secret_name(&workload.service_account)),
            items: Some(vec![
                key_to_path(certs::CA_KEY, mesh_identity::CA_CERT_FILE),
                key_to_path(certs::CERT_KEY, mesh_identity::CERT_FILE),
                key_to_path(certs::KEY_KEY, mesh_identity::KEY_FILE),
            ]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
}

fn key_to_path(key: &str, path: &str) -> KeyToPath {
    KeyToPath {
        key: key.to_string(),
        path: path.to_string(),
        ..KeyToPath::default()
    }
}

fn sidecar(app_port: u16, options: &Options) -> Container {
    let args = [
        "--config".to_string(),
        format!("{CONFIG_DIR}/{}", labels::CONFIG_KEY),
        "--discovery".to_string(),
        "kubernetes".to_string(),
        "--identity-dir".to_string(),
        IDENTITY_DIR.to_string(),
        "--outbound".to_string(),
        format!("127.0.0.1:{OUTBOUND_PORT}"),
        "--inbound".to_string(),
        format!("0.0.0.0:{INBOUND_PORT}"),
        "--admin".to_string(),
        format!("0.0.0.0:{ADMIN_PORT}"),
        "--app".to_string(),
        format!("127.0.0.1:{app_port}"),
        "--log-format".to_string(),
        "json".to_string(),
    ];
    let probe = |path: &str, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("mesh-admin".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    };
    Container {
        name: SIDECAR.to_string(),
        image: Some(options.image.clone()),
        args: Some(args.to_vec()),
        restart_policy: Some("Always".to_string()),
        ports: Some(vec![
            ContainerPort {
                name: Some("mesh-inbound".to_string()),
                container_port: i32::from(INBOUND_PORT),
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("mesh-admin".to_string()),
                container_port: i32::from(ADMIN_PORT),
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".to_string())),
                ("memory".to_string(), Quantity("32Mi".to_string())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("256Mi".to_string()),
            )])),
            ..ResourceRequirements::default()
        }),
        readiness_probe: Some(probe("/ready", 2)),
        liveness_probe: Some(probe("/live", 10)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: options.pre_stop_seconds,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: CONFIG_VOLUME.to_string(),
                mount_path: CONFIG_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: IDENTITY_VOLUME.to_string(),
                mount_path: IDENTITY_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}
