//! `meshc doctor`: what is wrong with the mesh in a cluster, as `linkerd check` and
//! `istioctl analyze` tell it. Each check compares the cluster with what `meshc
//! manifests` would produce for the mesh and says ✔ or ✘, with a hint for every ✘:
//!
//! - every object of the mesh exists and carries the content hash the mesh gives it
//!   (configs, RBAC, gateways, the injector);
//! - every identity's Secret holds a certificate for its SPIFFE id that chains to the
//!   mesh CA (with `--ca`), matches its key, and is not about to expire;
//! - the injector, when the mesh has one, has a ready endpoint and a `caBundle` that is
//!   the mesh CA's;
//! - every injected pod runs a sidecar whose config is a current workload config of the
//!   mesh, as an identity of the mesh, and is ready.
//!
//! Reads only; the first API error stops it.

use std::time::{Duration, SystemTime};

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use mesh_identity::Identity;
use serde_json::Value;

use crate::certs::TlsData;
use crate::error::KubeError;
use crate::inject::{CONFIG_VOLUME, INJECTED, SIDECAR};
use crate::input::MeshInput;
use crate::labels::{self, CONFIG_HASH};
use crate::object::Object;

/// `d` in days, or hours when under two days.
fn human(d: Duration) -> String {
    let hours = d.as_secs() / 3600;
    if hours < 48 {
        format!("{hours} hours")
    } else {
        format!("{} days", hours / 24)
    }
}

/// Certificates with less left than this (or than a quarter of their lifetime, when that
/// is shorter) are reported.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What kind of check: `object`, `identity`, `injector`, `pod`.
    pub check: &'static str,
    /// What it looked at (`configmap/reviews (namespace bookinfo)`).
    pub subject: String,
    /// Whether all is well.
    pub ok: bool,
    /// What was found.
    pub message: String,
    /// What to do about a ✘.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What the cluster should hold.
pub struct Expected<'a> {
    /// The mesh.
    pub mesh: &'a MeshInput,
    /// Its objects as `meshc manifests` makes them (identity Secrets left out: they are
    /// checked as certificates).
    pub objects: &'a [Object],
    /// The mesh CA's bundle, when given.
    pub ca_bundle: Option<&'a [u8]>,
    /// How to re-apply, for hints (`meshc apply PATH --ca DIR`).
    pub apply: &'a str,
}

/// Runs every check against the cluster `client` reaches.
pub async fn run(client: &Client, expected: &Expected<'_>) -> Result<Vec<Finding>, KubeError> {
    let mut findings = Vec::new();
    // Certificates are checked for what they certify, not by hash (a renewal changes it).
    let certificates = |o: &&Object| matches!(o, Object::Secret(s) if s.type_.as_deref() == Some("kubernetes.io/tls"));
    for object in expected.objects.iter().filter(|o| !certificates(o)) {
        findings.push(check_object(client, object, expected).await?);
    }
    for (namespace, sa, spiffe_id) in expected.mesh.identities() {
        findings.push(check_identity(client, &namespace, &sa, &spiffe_id, expected).await?);
    }
    if let Some(config) = expected
        .objects
        .iter()
        .find(|o| o.kind() == "MutatingWebhookConfiguration")
    {
        let live = get(client, config).await?;
        findings.extend(check_injector(client, live.as_ref(), expected).await?);
    }
    findings.extend(check_pods(client, expected).await?);
    Ok(findings)
}

/// The resource of an object, for a dynamic client.
fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural: format!("{}s", kind.to_ascii_lowercase()),
    }
}

fn api_error(what: &str, error: &kube::Error) -> KubeError {
    KubeError::Api {
        object: what.to_string(),
        message: error.to_string(),
    }
}

/// The live version of `object`, if it exists.
async fn get(client: &Client, object: &Object) -> Result<Option<DynamicObject>, KubeError> {
    let json = object.to_json();
    let api_version = json["apiVersion"].as_str().unwrap_or("v1");
    let resource = resource(api_version, object.kind());
    let api: Api<DynamicObject> = match object.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(object.name())
        .await
        .map_err(|e| api_error(&subject(object), &e))
}

fn subject(object: &Object) -> String {
    match object.namespace() {
        Some(ns) => format!("{} (namespace {ns})", object.display_name()),
        None => object.display_name(),
    }
}

fn finding(
    check: &'static str,
    subject: String,
    good: &str,
    problem: Option<(String, String)>,
) -> Finding {
    match problem {
        None => Finding {
            check,
            subject,
            ok: true,
            message: good.to_string(),
            hint: None,
        },
        Some((message, hint)) => Finding {
            check,
            subject,
            ok: false,
            message,
            hint: Some(hint),
        },
    }
}

async fn check_object(
    client: &Client,
    object: &Object,
    expected: &Expected<'_>,
) -> Result<Finding, KubeError> {
    let live = get(client, object).await?;
    let want = object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH))
        .cloned()
        .unwrap_or_default();
    let problem = match live {
        None => Some((
            "missing".to_string(),
            format!("create it: `{}`", expected.apply),
        )),
        Some(live) => {
            let have = live.annotations().get(CONFIG_HASH).cloned();
            (!want.is_empty() && have.as_deref() != Some(want.as_str())).then(|| {
                (
                    "differs from the mesh (its content hash is not the mesh's)".to_string(),
                    format!("update it: `{}`", expected.apply),
                )
            })
        }
    };
    Ok(finding(
        "object",
        subject(object),
        "as the mesh makes it",
        problem,
    ))
}

async fn check_identity(
    client: &Client,
    namespace: &str,
    sa: &str,
    spiffe_id: &str,
    expected: &Expected<'_>,
) -> Result<Finding, KubeError> {
    let name = labels::secret_name(sa);
    let subject = format!("secret/{name} (namespace {namespace})");
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(&name)
        .await
        .map_err(|e| api_error(&subject, &e))?;
    let renew = format!(
        "issue it: `{}` (or let cert-manager: `--issuer cert-manager`)",
        expected.apply
    );
    let Some(data) = secret
        .and_then(|s| s.data)
        .and_then(|d| TlsData::from_secret_data(&d))
    else {
        return Ok(finding(
            "identity",
            subject,
            "",
            Some((
                "missing, or without tls.crt, tls.key and ca.crt".into(),
                renew,
            )),
        ));
    };
    let now = SystemTime::now();
    let mut good = String::new();
    let problem = match Identity::from_pem_at(&data.cert, &data.key, &data.ca, now) {
        Err(err) => Some((format!("not a usable identity: {err}"), renew)),
        Ok(identity) if identity.spiffe_id().to_string() != spiffe_id => Some((
            format!(
                "a certificate for {}, not {spiffe_id}",
                identity.spiffe_id()
            ),
            renew,
        )),
        Ok(_)
            if expected
                .ca_bundle
                .is_some_and(|ca| ca != data.ca.as_slice()) =>
        {
            Some(("issued by another CA than the mesh's".to_string(), renew))
        }
        Ok(identity) => {
            // Short-lived certificates (cert-manager's day) are reported when their
            // renewal is overdue, long ones a week ahead.
            let lifetime = identity
                .not_after()
                .duration_since(identity.not_before())
                .unwrap_or_default();
            let warn = EXPIRY_WARNING.min(lifetime / 4);
            match identity.not_after().duration_since(now) {
                Ok(left) if left < warn => Some((format!("expires in {}", human(left)), renew)),
                Ok(left) => {
                    good = format!("a certificate for {spiffe_id}, {} left", human(left));
                    None
                }
                Err(_) => None,
            }
        }
    };
    Ok(finding("identity", subject, &good, problem))
}

async fn check_injector(
    client: &Client,
    live: Option<&DynamicObject>,
    expected: &Expected<'_>,
) -> Result<Vec<Finding>, KubeError> {
    let Some(live) = live else {
        // Reported as a missing object already.
        return Ok(Vec::new());
    };
    let subject = format!("mutatingwebhookconfiguration/{}", live.name_any());
    let webhook = &live.data["webhooks"][0];
    let mut findings = Vec::new();
    if let Some(ca) = expected.ca_bundle {
        let bundle: Option<k8s_openapi::ByteString> =
            serde_json::from_value(webhook["clientConfig"]["caBundle"].clone()).ok();
        let problem = (bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca)).then(|| {
            (
                "its caBundle is not the mesh CA: the API server cannot trust the injector"
                    .to_string(),
                format!("`{}` writes it again", expected.apply),
            )
        });
        findings.push(finding(
            "injector",
            subject.clone(),
            "its caBundle is the mesh CA",
            problem,
        ));
    }
    let service = &webhook["clientConfig"]["service"];
    let (Some(name), Some(namespace)) = (service["name"].as_str(), service["namespace"].as_str())
    else {
        return Ok(findings);
    };
    let slices = resource("discovery.k8s.io/v1", "EndpointSlice");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &slices);
    let list = api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
        .await
        .map_err(|e| api_error(&format!("endpointslices of service/{name}"), &e))?;
    let ready = list.items.iter().any(|slice| {
        slice.data["endpoints"].as_array().is_some_and(|endpoints| {
            endpoints
                .iter()
                .any(|e| e["conditions"]["ready"] != Value::Bool(false))
        })
    });
    let problem = (!ready).then(|| {
        (
            "no ready endpoint: pods created in labelled namespaces are refused".to_string(),
            format!("kubectl -n {namespace} get pods -l app={name}; kubectl -n {namespace} logs deploy/{name}"),
        )
    });
    findings.push(finding(
        "injector",
        format!("service/{name} (namespace {namespace})"),
        "has a ready endpoint",
        problem,
    ));
    Ok(findings)
}

async fn check_pods(client: &Client, expected: &Expected<'_>) -> Result<Vec<Finding>, KubeError> {
    let mut namespaces: Vec<&str> = expected
        .mesh
        .workloads
        .iter()
        .map(|w| w.namespace.as_str())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let mut findings = Vec::new();
    for namespace in namespaces {
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
        let pods = api
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(&format!("pods in namespace {namespace}"), &e))?;
        for pod in pods.items {
            let injected = pod.annotations().contains_key(INJECTED);
            if !injected {
                continue;
            }
            let subject = format!("pod/{} (namespace {namespace})", pod.name_any());
            findings.push(finding(
                "pod",
                subject,
                "a ready mesh-agent with a current config of the mesh",
                pod_problem(&pod, namespace, expected),
            ));
        }
    }
    Ok(findings)
}

fn pod_problem(
    pod: &k8s_openapi::api::core::v1::Pod,
    namespace: &str,
    expected: &Expected<'_>,
) -> Option<(String, String)> {
    let reinject = format!(
        "re-inject its workload: `meshc inject FILE --mesh PATH --image IMAGE | kubectl apply -f -`, then `{}`",
        expected.apply
    );
    let spec = pod.spec.as_ref()?;
    let config_map = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == CONFIG_VOLUME)
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone());
    let Some(config_map) = config_map else {
        return Some(("has no mesh config mounted".to_string(), reinject));
    };
    let current = expected.objects.iter().any(|o| {
        o.kind() == "ConfigMap" && o.namespace() == Some(namespace) && o.name() == config_map
    });
    if !current {
        return Some((
            format!("mounts configmap/{config_map}, which is no workload config of the mesh"),
            reinject,
        ));
    }
    let sa = spec.service_account_name.as_deref().unwrap_or("default");
    if !expected
        .mesh
        .identities()
        .iter()
        .any(|(ns, account, _)| ns == namespace && account == sa)
    {
        return Some((
            format!("runs as service account {sa}, which is no identity of the mesh"),
            "give the workload the service account of its service".to_string(),
        ));
    }
    let status = pod.status.as_ref();
    let sidecar_ready = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
        .any(|c| c.name == SIDECAR && c.ready);
    if !sidecar_ready {
        return Some((
            "its mesh-agent is not ready".to_string(),
            format!(
                "kubectl -n {namespace} logs {} -c {SIDECAR}",
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
        ));
    }
    None
}
