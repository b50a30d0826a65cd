//! Server-side apply of the mesh's objects, as `kubectl apply --server-side` does it:
//! field manager `meshc`, conflicts reported with the manager that owns the fields (and
//! taken over only when asked), one outcome per object (`created`, `configured`,
//! `unchanged`), dry runs on the client or the server, and pruning of the objects labelled
//! with the mesh that it no longer produces. The first API error stops everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::KubeConfigOptions;
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::certs::TlsData;
use crate::error::KubeError;
use crate::labels;
use crate::object::{self, Object};

/// Where a dry run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    /// Not a dry run: change the cluster.
    No,
    /// Compare with the live objects; send no change.
    Client,
    /// Send every change with `dryRun=All`: the server checks it and persists nothing.
    Server,
}

/// How to apply.
#[derive(Clone, Debug)]
pub struct Options {
    /// The mesh's name (what `--prune` selects).
    pub mesh: String,
    /// Dry run, if any.
    pub dry_run: DryRun,
    /// Take over fields other managers own.
    pub force_conflicts: bool,
    /// Delete the mesh's objects it no longer produces.
    pub prune: bool,
    /// The kinds to prune (those this run produces).
    pub prune_kinds: Vec<&'static str>,
}

/// What happened to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed as it should be.
    Unchanged,
    /// It was the mesh's, no longer produced, and deleted.
    Pruned,
}

impl Outcome {
    /// The word kubectl prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Pruned => "pruned",
        }
    }
}

/// A client for the cluster of the kubeconfig's `context` (its current context by
/// default), found as kubectl finds it: `KUBECONFIG`, `~/.kube/config`, or the in-cluster
/// service account. Like kubectl it does not retry failed requests (kube's default retries
/// a 503 for minutes): the first error stops the command.
pub async fn client(context: Option<&str>) -> Result<Client, KubeError> {
    let mut config = match context {
        Some(context) => Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(context.to_string()),
            ..KubeConfigOptions::default()
        })
        .await
        .map_err(|e| KubeError::Client(format!("kubeconfig context {context:?}: {e}")))?,
        None => Config::infer()
            .await
            .map_err(|e| KubeError::Client(format!("no cluster configured: {e}")))?,
    };
    config.default_retry = false;
    Client::try_from(config).map_err(|e| KubeError::Client(format!("cannot build a client: {e}")))
}

/// The certificate data of the identity Secrets `(namespace, name)` that exist now.
pub async fn existing_tls(
    client: &Client,
    secrets: &[(String, String)],
) -> Result<BTreeMap<(String, String), TlsData>, KubeError> {
    let mut found = BTreeMap::new();
    for (namespace, name) in secrets {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await
            .map_err(|e| api_error(&describe("Secret", Some(namespace), name), e))?;
        if let Some(data) = secret
            .and_then(|s| s.data)
            .and_then(|d| TlsData::from_secret_data(&d))
        {
            found.insert((namespace.clone(), name.clone()), data);
        }
    }
    Ok(found)
}

/// Applies `objects` in order, then prunes if asked; calls `report` with one line per
/// object as it goes. Stops at the first error.
pub async fn apply(
    client: &Client,
    objects: &[Object],
    options: &Options,
    report: &mut dyn FnMut(&str),
) -> Result<(), KubeError> {
    let suffix = match options.dry_run {
        DryRun::No => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    for object in objects {
        let c = client.clone();
        let namespace = object.namespace().unwrap_or_default();
        let outcome = match object {
            Object::ConfigMap(o) => apply_one(Api::namespaced(c, namespace), o, options).await,
            Object::Secret(o) => apply_one(Api::namespaced(c, namespace), o, options).await,
            Object::ServiceAccount(o) => apply_one(Api::namespaced(c, namespace), o, options).await,
            Object::ClusterRole(o) => apply_one(Api::all(c), o, options).await,
            Object::ClusterRoleBinding(o) => apply_one(Api::all(c), o, options).await,
            Object::Deployment(o) => apply_one(Api::namespaced(c, namespace), &**o, options).await,
            Object::Service(o) => apply_one(Api::namespaced(c, namespace), &**o, options).await,
            Object::Namespace(o) => apply_one(Api::all(c), o, options).await,
            Object::MutatingWebhookConfiguration(o) => apply_one(Api::all(c), &**o, options).await,
            Object::ClusterIssuer(_) | Object::Certificate(_) => {
                let resource = cert_manager_resource(object.kind());
                let dynamic: DynamicObject =
                    serde_json::from_value(object.to_json()).map_err(|e| KubeError::Api {
                        object: object.display_name(),
                        message: e.to_string(),
                    })?;
                let api = if object.namespace().is_some() {
                    Api::namespaced_with(c, namespace, &resource)
                } else {
                    Api::all_with(c, &resource)
                };
                apply_dynamic(api, &dynamic, &resource, options).await
            }
        }?;
        report(&format!(
            "{} {}{suffix}",
            object.display_name(),
            outcome.as_str()
        ));
    }
    if options.prune {
        let keep: BTreeSet<(String, Option<String>, String)> = objects
            .iter()
            .map(|o| {
                (
                    o.kind().to_string(),
                    o.namespace().map(str::to_string),
                    o.name().to_string(),
                )
            })
            .collect();
        for kind in object::KINDS.iter().rev() {
            if !options.prune_kinds.contains(kind) {
                continue;
            }
            let c = client.clone();
            let pruned = match *kind {
                "ConfigMap" => prune::<ConfigMap>(c, kind, &keep, options, Api::namespaced).await,
                "Secret" => prune::<Secret>(c, kind, &keep, options, Api::namespaced).await,
                "ServiceAccount" => {
                    prune::<ServiceAccount>(c, kind, &keep, options, Api::namespaced).await
                }
                "ClusterRole" => {
                    prune::<ClusterRole>(c, kind, &keep, options, |c, _| Api::all(c)).await
                }
                "ClusterRoleBinding" => {
                    prune::<ClusterRoleBinding>(c, kind, &keep, options, |c, _| Api::all(c)).await
                }
                "Deployment" => prune::<Deployment>(c, kind, &keep, options, Api::namespaced).await,
                "Service" => prune::<Service>(c, kind, &keep, options, Api::namespaced).await,
                "MutatingWebhookConfiguration" => {
                    prune::<MutatingWebhookConfiguration>(c, kind, &keep, options, |c, _| {
                        Api::all(c)
                    })
                    .await
                }
                "ClusterIssuer" | "Certificate" => {
                    let resource = cert_manager_resource(kind);
                    prune_with(c, kind, &keep, options, &resource).await
                }
                // Namespaces are never pruned (see `object::KINDS`).
                _ => Ok(Vec::new()),
            }?;
            for name in pruned {
                report(&format!(
                    "{} {}{suffix}",
                    object::display_name(kind, &name),
                    Outcome::Pruned.as_str()
                ));
            }
        }
    }
    Ok(())
}

async fn apply_one<K>(api: Api<K>, object: &K, options: &Options) -> Result<Outcome, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    apply_dynamic(api, object, &(), options).await
}

/// [`apply_one`] for any resource, described by `resource` (a `DynamicObject`'s
/// `ApiResource`, `()` for the typed ones).
async fn apply_dynamic<K>(
    api: Api<K>,
    object: &K,
    resource: &K::DynamicType,
    options: &Options,
) -> Result<Outcome, KubeError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = object.name_any();
    let what = describe(
        &K::kind(resource),
        object.meta().namespace.as_deref(),
        &name,
    );
    let before = api.get_opt(&name).await.map_err(|e| api_error(&what, e))?;
    let desired = serde_json::to_value(object).unwrap_or_default();
    let changes = |live: &K| !is_subset(&desired, &serde_json::to_value(live).unwrap_or_default());
    if options.dry_run == DryRun::Client {
        return Ok(match &before {
            None => Outcome::Created,
            Some(live) if changes(live) => Outcome::Configured,
            Some(_) => Outcome::Unchanged,
        });
    }
    let mut params = PatchParams::apply(labels::FIELD_MANAGER);
    params.force = options.force_conflicts;
    params.dry_run = options.dry_run == DryRun::Server;
    let after = api
        .patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| api_error(&what, e))?;
    Ok(match &before {
        None => Outcome::Created,
        Some(live) if options.dry_run == DryRun::Server => {
            if changes(live) {
                Outcome::Configured
            } else {
                Outcome::Unchanged
            }
        }
        Some(live) if live.resource_version() == after.resource_version() => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    })
}

/// Deletes the objects of `kind` labelled with the mesh that are not in `keep`; returns
/// their names (`namespace/name` for namespaced ones, sorted).
async fn prune<K>(
    client: Client,
    kind: &str,
    keep: &BTreeSet<(String, Option<String>, String)>,
    options: &Options,
    scoped: impl Fn(Client, &str) -> Api<K>,
) -> Result<Vec<String>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let stale = stale::<K>(client.clone(), kind, keep, options, &()).await?;
    delete(kind, stale, options, |namespace| {
        scoped(client.clone(), namespace.unwrap_or_default())
    })
    .await
}

/// [`prune`] for a resource without a Rust type (cert-manager's), described by `resource`.
async fn prune_with(
    client: Client,
    kind: &str,
    keep: &BTreeSet<(String, Option<String>, String)>,
    options: &Options,
    resource: &ApiResource,
) -> Result<Vec<String>, KubeError> {
    let stale = stale::<DynamicObject>(client.clone(), kind, keep, options, resource).await?;
    delete(kind, stale, options, |namespace| match namespace {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, resource),
        None => Api::<DynamicObject>::all_with(client.clone(), resource),
    })
    .await
}

/// The objects of `kind` labelled with the mesh that are not in `keep`, sorted.
async fn stale<K>(
    client: Client,
    kind: &str,
    keep: &BTreeSet<(String, Option<String>, String)>,
    options: &Options,
    resource: &K::DynamicType,
) -> Result<Vec<(Option<String>, String)>, KubeError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let all: Api<K> = Api::all_with(client, resource);
    let selector = labels::selector(&options.mesh);
    let list = all
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(&format!("listing {kind}s labelled {selector}"), e))?;
    let mut stale: Vec<(Option<String>, String)> = list
        .items
        .iter()
        .map(|o| (o.namespace(), o.name_any()))
        .filter(|(ns, name)| !keep.contains(&(kind.to_string(), ns.clone(), name.clone())))
        .collect();
    stale.sort();
    Ok(stale)
}

/// Deletes `stale` objects of `kind` (unless a client dry run); returns their names.
async fn delete<K>(
    kind: &str,
    stale: Vec<(Option<String>, String)>,
    options: &Options,
    api: impl Fn(Option<&str>) -> Api<K>,
) -> Result<Vec<String>, KubeError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams {
        dry_run: options.dry_run != DryRun::No,
        ..DeleteParams::default()
    };
    let mut pruned = Vec::new();
    for (namespace, name) in stale {
        if options.dry_run != DryRun::Client {
            api(namespace.as_deref())
                .delete(&name, &params)
                .await
                .map_err(|e| api_error(&describe(kind, namespace.as_deref(), &name), e))?;
        }
        pruned.push(name);
    }
    Ok(pruned)
}

/// The `ApiResource` of a cert-manager kind.
fn cert_manager_resource(kind: &str) -> ApiResource {
    ApiResource {
        group: crate::cert_manager::GROUP.to_string(),
        version: "v1".to_string(),
        api_version: crate::cert_manager::API_VERSION.to_string(),
        kind: kind.to_string(),
        plural: format!("{}s", kind.to_ascii_lowercase()),
    }
}

/// Whether every field of `desired` is in `live` with the same value (lists compared
/// element by element, so a live object with more fields still matches).
pub fn is_subset(desired: &serde_json::Value, live: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        _ => desired == live,
    }
}

fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    let base = object::display_name(kind, name);
    match namespace {
        Some(ns) => format!("{base} (namespace {ns})"),
        None => base,
    }
}

/// Turns a client error into ours, naming conflicting managers.
fn api_error(what: &str, error: kube::Error) -> KubeError {
    match error {
        kube::Error::Api(status) if status.code == 409 && status.message.contains("conflict") => {
            KubeError::Conflict {
                object: what.to_string(),
                managers: conflicting_managers(&status.message).join(", "),
                message: status.message.clone(),
            }
        }
        kube::Error::Api(status) => KubeError::Api {
            object: what.to_string(),
            message: format!(
                "the API server answered {} {}: {}",
                status.code, status.reason, status.message
            ),
        },
        other => KubeError::Api {
            object: what.to_string(),
            message: other.to_string(),
        },
    }
}

/// The managers named in a conflict message (`conflict with "kubectl" using v1: ...`).
fn conflicting_managers(message: &str) -> Vec<String> {
    let mut managers: Vec<String> = message
        .split("conflict with \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|m| format!("\"{m}\""))
        .collect();
    managers.sort();
    managers.dedup();
    managers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_and_managers() {
        let desired = json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        let live = json!({"metadata": {"name": "a", "uid": "1"}, "data": {"k": "v"}});
        assert!(is_subset(&desired, &live));
        assert!(!is_subset(&live, &desired));
        assert!(!is_subset(
            &desired,
            &json!({"metadata": {"name": "a"}, "data": {"k": "w"}})
        ));
        assert_eq!(
            conflicting_managers(
                "Apply failed with 2 conflicts: conflict with \"kubectl\" using v1: .data.a, conflict with \"helm\" using v1: .data.b"
            ),
            ["\"helm\"", "\"kubectl\""]
        );
    }
}
