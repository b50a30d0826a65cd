//! The sidecar injector in a cluster (`meshc manifests --injector`): what it takes for the
//! API server to call `meshc webhook` for every pod created in a namespace labelled
//! `mesh/inject=enabled`.
//!
//! - the Namespace the injector runs in (`mesh-system` by default) and its ServiceAccount;
//! - a ConfigMap holding the mesh's `.mesh` sources, mounted back into their directory
//!   layout (the webhook compiles them as `meshc` does, so what it injects is exactly
//!   what `meshc inject` would);
//! - a `kubernetes.io/tls` Secret with the webhook's serving certificate, issued by the
//!   mesh CA for the Service's DNS names and reused while good;
//! - a Deployment running `meshc webhook` and a Service in front of it;
//! - the `MutatingWebhookConfiguration` pointing the API server at that Service, with the
//!   mesh CA as its `caBundle`.
//!
//! Failure policy: `Fail`, as Istio's injector. A pod created while the injector is down
//! is refused rather than started outside the mesh, where strict mTLS would cut it off
//! anyway; system namespaces are never sent to the webhook, so the cluster (and the
//! injector itself) can always start.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction, KeyToPath,
    Namespace, PodSpec, PodTemplateSpec, Probe, Secret, SecretVolumeSource, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mesh_identity::Ca;

use crate::certs::{self, TlsData};
use crate::error::KubeError;
use crate::inject::Mode;
use crate::labels::{self, sha256_hex};
use crate::object::Object;
use crate::webhook::NAMESPACE_LABEL;

/// The name of the injector's Deployment, Service, ServiceAccount and Secret.
pub const NAME: &str = "meshc-injector";
/// The namespace it runs in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "mesh-system";
/// The port `meshc webhook` listens on in its pod.
pub const LISTEN_PORT: u16 = 8443;
/// Where the sources are mounted.
pub const SOURCES_DIR: &str = "/etc/mesh/sources";
/// Where the serving certificate is mounted.
pub const TLS_DIR: &str = "/etc/mesh/injector-tls";
/// How long a serving certificate is valid; reissued when a third is left.
pub const SERVING_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How long the API server waits for an answer before the failure policy applies.
pub const TIMEOUT_SECONDS: i32 = 10;

/// How the injector is deployed.
#[derive(Clone, Debug)]
pub struct Injector {
    /// Its namespace.
    pub namespace: String,
    /// The image running `meshc` (and injected as the agent).
    pub image: String,
    /// How injected pods are meshed.
    pub mode: Mode,
}

/// The injector's objects for mesh `mesh`: `sources` are its `.mesh` files by path
/// relative to a common directory; `existing` is the serving Secret's data now, reused
/// while it is from `ca`, for the same names and not near expiry.
pub fn objects(
    mesh: &str,
    injector: &Injector,
    sources: &BTreeMap<String, String>,
    ca: &Ca,
    existing: Option<&TlsData>,
) -> Result<Vec<Object>, KubeError> {
    let namespace = injector.namespace.as_str();
    let meta = |name: &str, hash: String| labels::meta(mesh, Some(namespace), name, hash);
    let names = dns_names(namespace);
    let tls = match existing.filter(|e| serving_reusable(e, ca, &names, SystemTime::now())) {
        Some(existing) => existing.clone(),
        None => {
            let issued =
                ca.issue_serving(&names, SERVING_TTL)
                    .map_err(|source| KubeError::Issue {
                        id: names.first().cloned().unwrap_or_default(),
                        source,
                    })?;
            TlsData {
                cert: issued.cert_pem.into_bytes(),
                key: issued.key_pem.into_bytes(),
                ca: ca.bundle_pem().as_bytes().to_vec(),
            }
        }
    };
    let (data, items) = source_entries(sources);
    let sources_hash = sha256_hex(&serde_json::to_vec(&data).unwrap_or_default());
    let sources_map = sources_config_map_name(mesh);
    let mut objects = vec![
        Object::Namespace(Namespace {
            metadata: labels::meta(mesh, None, namespace, String::new()),
            ..Namespace::default()
        }),
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(NAME, String::new()),
            ..ServiceAccount::default()
        }),
        Object::ConfigMap(ConfigMap {
            metadata: meta(&sources_map, sources_hash.clone()),
            data: Some(data),
            ..ConfigMap::default()
        }),
        Object::Secret(Secret {
            metadata: meta(&labels::secret_name(NAME), sha256_hex(&tls.cert)),
            type_: Some("kubernetes.io/tls".to_string()),
            data: Some(tls.to_secret_data()),
            ..Secret::default()
        }),
    ];
    let selector = BTreeMap::from([("app".to_string(), NAME.to_string())]);
    objects.push(Object::Deployment(Box::new(deployment(
        mesh,
        injector,
        &selector,
        &sources_map,
        items,
        &sources_hash,
    ))));
    objects.push(Object::Service(Box::new(Service {
        metadata: meta(NAME, String::new()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("https".to_string()),
                port: 443,
                target_port: Some(IntOrString::Int(i32::from(LISTEN_PORT))),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })));
    objects.push(Object::MutatingWebhookConfiguration(Box::new(
        webhook_configuration(mesh, namespace, ca),
    )));
    Ok(objects)
}

/// The ConfigMap holding mesh `mesh`'s sources.
pub fn sources_config_map_name(mesh: &str) -> String {
    format!("meshc-{mesh}-sources")
}

/// The name of the `MutatingWebhookConfiguration` of mesh `mesh`.
pub fn webhook_configuration_name(mesh: &str) -> String {
    format!("meshc-{mesh}-injector")
}

/// The DNS names the API server calls the Service by.
pub fn dns_names(namespace: &str) -> Vec<String> {
    vec![
        format!("{NAME}.{namespace}.svc"),
        format!("{NAME}.{namespace}.svc.cluster.local"),
    ]
}

/// ConfigMap keys may not hold `/`: each source gets a flat key (`0-reviews.mesh`) and a
/// volume item putting it back at its relative path.
fn source_entries(
    sources: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<KeyToPath>) {
    let mut data = BTreeMap::new();
    let mut items = Vec::new();
    for (index, (path, text)) in sources.iter().enumerate() {
        let file = path.rsplit('/').next().unwrap_or(path);
        let clean: String = file
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let key = format!("{index}-{clean}");
        items.push(KeyToPath {
            key: key.clone(),
            path: path.clone(),
            ..KeyToPath::default()
        });
        data.insert(key, text.clone());
    }
    (data, items)
}

/// Whether `existing` is a serving certificate from `ca` for exactly `names` with more than
/// a third of [`SERVING_TTL`] left at `now`.
pub fn serving_reusable(existing: &TlsData, ca: &Ca, names: &[String], now: SystemTime) -> bool {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    if existing.ca != ca.bundle_pem().as_bytes() {
        return false;
    }
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&existing.cert) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&pem.contents) else {
        return false;
    };
    let mut found: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some((*name).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut wanted = names.to_vec();
    found.sort();
    wanted.sort();
    let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    let left = (SystemTime::UNIX_EPOCH + Duration::from_secs(not_after)).duration_since(now);
    found == wanted
        && left.is_ok_and(|left| left > SERVING_TTL / 3)
        && pem_key_matches(&existing.key)
}

/// The key is at least a PEM private key (a Secret edited by hand may hold anything).
fn pem_key_matches(key: &[u8]) -> bool {
    std::str::from_utf8(key).is_ok_and(|k| k.contains("PRIVATE KEY-----"))
}

fn deployment(
    mesh: &str,
    injector: &Injector,
    selector: &BTreeMap<String, String>,
    sources_map: &str,
    items: Vec<KeyToPath>,
    sources_hash: &str,
) -> Deployment {
    let mut pod_labels = selector.clone();
    pod_labels.insert(labels::MESH.to_string(), mesh.to_string());
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/ready".to_string()),
            port: IntOrString::String("https".to_string()),
            scheme: Some("HTTPS".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let container = Container {
        name: "webhook".to_string(),
        image: Some(injector.image.clone()),
        command: Some(vec!["meshc".to_string()]),
        args: Some(vec![
            "webhook".to_string(),
            "--mesh".to_string(),
            SOURCES_DIR.to_string(),
            "--image".to_string(),
            injector.image.clone(),
            "--mode".to_string(),
            injector.mode.as_str().to_string(),
            "--listen".to_string(),
            format!("0.0.0.0:{LISTEN_PORT}"),
            "--tls-cert".to_string(),
            format!("{TLS_DIR}/{}", certs::CERT_KEY),
            "--tls-key".to_string(),
            format!("{TLS_DIR}/{}", certs::KEY_KEY),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("https".to_string()),
            container_port: i32::from(LISTEN_PORT),
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe.clone()),
        liveness_probe: Some(Probe {
            period_seconds: Some(10),
            ..probe
        }),
        resources: Some(crate::inject::resources("50m", "64Mi", "512Mi")),
        security_context: Some(crate::inject::unprivileged(None)),
        volume_mounts: Some(vec![mount("sources", SOURCES_DIR), mount("tls", TLS_DIR)]),
        ..Container::default()
    };
    Deployment {
        metadata: labels::meta(mesh, Some(&injector.namespace), NAME, String::new()),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    // New sources roll the pods: the webhook compiles them at start.
                    annotations: Some(BTreeMap::from([(
                        labels::CONFIG_HASH.to_string(),
                        sources_hash.to_string(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.to_string()),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "sources".to_string(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: sources_map.to_string(),
                                items: Some(items),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "tls".to_string(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(labels::secret_name(NAME)),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn webhook_configuration(mesh: &str, namespace: &str, ca: &Ca) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: labels::meta(mesh, None, &webhook_configuration_name(mesh), String::new()),
        webhooks: Some(vec![MutatingWebhook {
            name: format!("inject.{mesh}.meshc.dev"),
            admission_review_versions: vec!["v1".to_string()],
            client_config: WebhookClientConfig {
                ca_bundle: Some(ByteString(ca.bundle_pem().as_bytes().to_vec())),
                service: Some(ServiceReference {
                    name: NAME.to_string(),
                    namespace: namespace.to_string(),
                    path: Some("/inject".to_string()),
                    port: Some(443),
                }),
                ..WebhookClientConfig::default()
            },
            failure_policy: Some("Fail".to_string()),
            side_effects: "None".to_string(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            reinvocation_policy: Some("Never".to_string()),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_LABEL.to_string(),
                    "enabled".to_string(),
                )])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "kubernetes.io/metadata.name".to_string(),
                    operator: "NotIn".to_string(),
                    values: Some(vec![
                        "kube-system".to_string(),
                        "kube-public".to_string(),
                        namespace.to_string(),
                    ]),
                }]),
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![String::new()]),
                api_versions: Some(vec!["v1".to_string()]),
                operations: Some(vec!["CREATE".to_string()]),
                resources: Some(vec!["pods".to_string()]),
                scope: Some("Namespaced".to_string()),
            }]),
            ..MutatingWebhook::default()
        }]),
    }
}
