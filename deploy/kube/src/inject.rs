//! `meshc inject`: adds the `mesh-agent` sidecar to the workloads of a multi-document YAML
//! stream (Deployments, StatefulSets, DaemonSets, Jobs and Pods; every other document
//! passes through as it is). The agent runs as a native sidecar (an init container that
//! keeps running, so it starts before the app and does not keep a Job alive), with the
//! workload's ConfigMap and identity Secret mounted, readiness and liveness probes on its
//! admin port, requests for CPU and memory, and a `preStop` pause so endpoints are
//! withdrawn before it drains.
//!
//! How the app's traffic reaches the agent is the [`Mode`]:
//!
//! - [`Mode::Capture`] (the default): transparent capture. An init container, `mesh-init`,
//!   runs `mesh-agent capture` first, with `NET_ADMIN` and `NET_RAW` and nothing else, to
//!   install the pod's iptables `nat` rules and exit: the app's outbound TCP goes to the
//!   agent's outbound listener, inbound TCP to the pod's ports to its inbound listener.
//!   The agent runs as uid and gid [`PROXY_UID`], whose own connections are never
//!   captured. The app is not told about the agent at all.
//! - [`Mode::ProxyEnv`]: no capture; the app containers get `HTTP_PROXY` pointing at the
//!   agent's outbound listener, so only the HTTP the app sends through a proxy is meshed.
//!
//! The pod template is annotated with the image ([`INJECTED`]) and the mode ([`MODE`]).
//! Injection replaces what an earlier injection added (in either mode), so injecting
//! twice changes nothing. A workload whose service account is not an identity of the mesh
//! is refused.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction,
    KeyToPath, Lifecycle, LifecycleHandler, Pod, PodSpec, Probe, ResourceRequirements,
    SecretVolumeSource, SecurityContext, SleepAction, Volume, VolumeMount,
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

/// The agent image `meshc manifests` runs gateways with unless told otherwise: what the
/// repository's `Containerfile` builds and tags.
pub const DEFAULT_IMAGE: &str = concat!("mesh-agent:", env!("CARGO_PKG_VERSION"));
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
/// The init container that installs the capture rules.
pub const CAPTURE_INIT: &str = "mesh-init";
/// The uid and gid the agent runs as in capture mode; its connections are not captured.
pub const PROXY_UID: i64 = 1337;
/// The annotation recording the image injected.
pub const INJECTED: &str = "mesh/injected";
/// The annotation recording how the pod is meshed: [`Mode::as_str`].
pub const MODE: &str = "mesh/mode";

/// How the app's traffic reaches the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// iptables rules set by the `mesh-init` init container redirect the pod's TCP.
    #[default]
    Capture,
    /// The app containers get `HTTP_PROXY`; nothing is redirected.
    ProxyEnv,
}

impl Mode {
    /// The mode's name, as `meshc inject --mode` spells it and the [`MODE`] annotation
    /// records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Capture => "capture",
            Mode::ProxyEnv => "proxy-env",
        }
    }
}

/// How to inject.
#[derive(Clone, Debug)]
pub struct Options {
    /// The agent's image.
    pub image: String,
    /// Seconds the agent waits in `preStop` before it is signalled to drain.
    pub pre_stop_seconds: i64,
    /// How the app's traffic reaches the agent.
    pub mode: Mode,
    /// Where the agent exports sampled requests' spans (OTLP/HTTP), if anywhere.
    pub otlp_endpoint: Option<String>,
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

/// Injects one Pod (a JSON object, as the API server holds it): what the admission
/// webhook does to a pod being created. Errors as [`inject`]'s, for document 1.
pub fn inject_pod_object(
    pod_object: serde_json::Value,
    mesh: &MeshInput,
    options: &Options,
) -> Result<serde_json::Value, KubeError> {
    pod(pod_object, 1, mesh, options)
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
            .or_else(|| document["metadata"]["generateName"].as_str())
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
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(INJECTED.to_string(), options.image.clone());
    annotations.insert(MODE.to_string(), options.mode.as_str().to_string());

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
    init.retain(|c| c.name != SIDECAR && c.name != CAPTURE_INIT);
    let probe_ports = probe_ports(init.iter().chain(&spec.containers));
    init.insert(0, sidecar(app_port, options));
    if options.mode == Mode::Capture {
        init.insert(0, capture_init(&probe_ports, options));
    }

    let proxy_env = proxy_env();
    for container in &mut spec.containers {
        match options.mode {
            Mode::ProxyEnv => {
                let env = container.env.get_or_insert_with(Vec::new);
                for (name, value) in &proxy_env {
                    env.retain(|e| e.name != *name);
                    env.push(EnvVar {
                        name: (*name).to_string(),
                        value: Some(value.clone()),
                        ..EnvVar::default()
                    });
                }
            }
            Mode::Capture => {
                // What a proxy-env injection set goes; the app's own proxy settings stay.
                if let Some(env) = container.env.as_mut() {
                    env.retain(|e| {
                        !proxy_env.iter().any(|(name, value)| {
                            e.name == *name && e.value.as_deref() == Some(value.as_str())
                        })
                    });
                    if env.is_empty() {
                        container.env = None;
                    }
                }
            }
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
    volumes.push(identity_volume(&workload.service_account));
}

/// The volume of the identity Secret of service account `sa`, with the file names the
/// agent's `--identity-dir` expects.
pub fn identity_volume(sa: &str) -> Volume {
    Volume {
        name: IDENTITY_VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(labels::secret_name(sa)),
            items: Some(vec![
                key_to_path(certs::CA_KEY, mesh_identity::CA_CERT_FILE),
                key_to_path(certs::CERT_KEY, mesh_identity::CERT_FILE),
                key_to_path(certs::KEY_KEY, mesh_identity::KEY_FILE),
            ]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The environment [`Mode::ProxyEnv`] gives app containers.
fn proxy_env() -> [(&'static str, String); 4] {
    let proxy = format!("http://127.0.0.1:{OUTBOUND_PORT}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    [
        ("HTTP_PROXY", proxy.clone()),
        ("http_proxy", proxy),
        ("NO_PROXY", no_proxy.clone()),
        ("no_proxy", no_proxy),
    ]
}

/// The ports the kubelet probes (HTTP, TCP and gRPC probes of every container), named
/// ports resolved through the container's own ports; the agent's ports, never captured
/// anyway, left out.
fn probe_ports<'c>(containers: impl Iterator<Item = &'c Container>) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for container in containers {
        let probes = [
            &container.liveness_probe,
            &container.readiness_probe,
            &container.startup_probe,
        ];
        for probe in probes.into_iter().flatten() {
            let port = [
                probe.http_get.as_ref().map(|h| h.port.clone()),
                probe.tcp_socket.as_ref().map(|t| t.port.clone()),
                probe.grpc.as_ref().map(|g| IntOrString::Int(g.port)),
            ];
            for port in port.into_iter().flatten() {
                let number = match port {
                    IntOrString::Int(n) => u16::try_from(n).ok(),
                    IntOrString::String(name) => container
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| p.name.as_deref() == Some(name.as_str()))
                        .and_then(|p| u16::try_from(p.container_port).ok()),
                };
                ports.extend(number.filter(|p| ![0, ADMIN_PORT, INBOUND_PORT].contains(p)));
            }
        }
    }
    ports
}

/// The init container that installs the capture rules and exits.
///
/// The kubelet's probes come from the node, not from an agent: captured, they would reach
/// the agent's inbound listener as plaintext from outside the mesh, which strict mTLS
/// refuses, and the pod would never become ready. The probed ports are therefore left out
/// of inbound capture (`--exclude-inbound-ports`), the simple way that is correct for
/// every kind of probe (HTTP, TCP, gRPC); rewriting probes to go through the agent, as
/// Istio does, works for HTTP only and needs the agent to proxy them. The price: an
/// excluded port is not protected by the mesh (no mTLS, no authorization) for any caller,
/// so serve probes on a port of their own rather than on the port the mesh protects.
/// The agent's admin port (its own probes) is never captured.
fn capture_init(probe_ports: &BTreeSet<u16>, options: &Options) -> Container {
    let mut args = vec![
        "capture".to_string(),
        "--proxy-uid".to_string(),
        PROXY_UID.to_string(),
        "--outbound-port".to_string(),
        OUTBOUND_PORT.to_string(),
        "--inbound-port".to_string(),
        INBOUND_PORT.to_string(),
    ];
    if !probe_ports.is_empty() {
        args.push("--exclude-inbound-ports".to_string());
        args.push(
            probe_ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    Container {
        name: CAPTURE_INIT.to_string(),
        image: Some(options.image.clone()),
        args: Some(args),
        resources: Some(resources("10m", "16Mi", "64Mi")),
        security_context: Some(SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()]),
                drop: Some(vec!["ALL".to_string()]),
            }),
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            // iptables takes its lock in /run/xtables.lock.
            read_only_root_filesystem: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn key_to_path(key: &str, path: &str) -> KeyToPath {
    KeyToPath {
        key: key.to_string(),
        path: path.to_string(),
        ..KeyToPath::default()
    }
}

fn sidecar(app_port: u16, options: &Options) -> Container {
    let mut args = vec![
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
    if let Some(endpoint) = &options.otlp_endpoint {
        args.extend(["--otlp-endpoint".to_string(), endpoint.clone()]);
    }
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
        args: Some(args),
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
        resources: Some(resources("50m", "32Mi", "256Mi")),
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
        security_context: Some(unprivileged(None)),
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

/// CPU and memory requests and a memory limit, as every container `meshc` writes has.
pub(crate) fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(memory_limit.to_string()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// The security context of the mesh's long-running containers (the sidecar, gateways,
/// the injector): uid and gid [`PROXY_UID`], no privilege escalation, a read-only root,
/// every capability dropped but `add`.
pub(crate) fn unprivileged(add: Option<Vec<String>>) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        // The capture rules leave this uid's connections alone; elsewhere it is simply
        // an unprivileged user.
        run_as_user: Some(PROXY_UID),
        run_as_group: Some(PROXY_UID),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add,
        }),
        ..SecurityContext::default()
    }
}
