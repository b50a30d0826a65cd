//! The objects a mesh needs in a cluster, built from its compiled configs:
//!
//! - per workload, a ConfigMap named after the service in its namespace, holding its
//!   config (`config.json`) and the mesh's Cedar schema (`mesh.cedarschema`);
//! - per identity, its ServiceAccount and a `kubernetes.io/tls` Secret with its
//!   certificate, key and CA bundle (`tls.crt`, `tls.key`, `ca.crt`);
//!   (with `--issuer cert-manager`: a `ClusterIssuer` backed by the mesh CA and a
//!   `Certificate` per identity instead, see [`crate::cert_manager`]);
//! - per ingress gateway, its whole workload ([`crate::gateway`]);
//! - a ClusterRole that may list and watch EndpointSlices, Pods and Services (all the agent's
//!   Kubernetes discovery needs), bound to every identity of the mesh.
//!
//! Every object carries the `app.kubernetes.io/managed-by: meshc` and `mesh` labels and a
//! `mesh/config-hash` annotation. Objects come sorted (kind, namespace, name) and certificates
//! are reused while good ([`crate::certs`]), so the output is deterministic.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};

use crate::cert_manager::{self, CaFiles};
use crate::certs::{Issuer, TlsData};
use crate::error::KubeError;
use crate::input::MeshInput;
use crate::labels::{self, sha256_hex};
use crate::object::Object;
use crate::yaml;

/// Who makes the identities' certificates.
#[derive(Clone, Copy)]
pub enum Identities<'a> {
    /// No one: identity Secrets are left alone.
    None,
    /// `meshc`, into identity Secrets, from the mesh CA.
    Meshc(&'a Issuer<'a>),
    /// cert-manager, renewing them, from a `ClusterIssuer` backed by the mesh CA (its
    /// Secret in `namespace`).
    CertManager {
        /// The mesh CA's files.
        ca: &'a CaFiles,
        /// cert-manager's cluster resource namespace.
        namespace: &'a str,
    },
}

/// Every object of `mesh`, sorted. `identities` says who issues certificates; `existing`
/// gives the certificate data a Secret (namespace, name) holds now, reused while good.
/// Gateways run `image`.
pub fn objects(
    mesh: &MeshInput,
    identities: Identities<'_>,
    existing: &dyn Fn(&str, &str) -> Option<TlsData>,
    image: &str,
) -> Result<Vec<Object>, KubeError> {
    let mut objects = Vec::new();
    let issuer = match identities {
        Identities::Meshc(issuer) => Some(issuer),
        Identities::None => None,
        Identities::CertManager { ca, namespace } => {
            objects.extend(cert_manager::objects(mesh, ca, namespace));
            None
        }
    };
    for gateway in &mesh.gateways {
        objects.extend(crate::gateway::objects(&mesh.name, gateway, image)?);
    }
    for workload in &mesh.workloads {
        let data = BTreeMap::from([
            (labels::CONFIG_KEY.to_string(), workload.config.clone()),
            (labels::SCHEMA_KEY.to_string(), mesh.cedar_schema.clone()),
        ]);
        objects.push(Object::ConfigMap(ConfigMap {
            metadata: labels::meta(
                &mesh.name,
                Some(&workload.namespace),
                &labels::config_map_name(&workload.name),
                sha256_hex(workload.config.as_bytes()),
            ),
            data: Some(data),
            ..ConfigMap::default()
        }));
    }
    let identities = mesh.identities();
    for (namespace, sa, spiffe_id) in &identities {
        let account = ServiceAccount {
            metadata: labels::meta(&mesh.name, Some(namespace), sa, String::new()),
            ..ServiceAccount::default()
        };
        objects.push(Object::ServiceAccount(with_content_hash(account, |a| {
            &mut a.metadata
        })));
        if let Some(issuer) = issuer {
            let name = labels::secret_name(sa);
            let tls = issuer.certificate(spiffe_id, existing(namespace, &name).as_ref())?;
            objects.push(Object::Secret(Secret {
                metadata: labels::meta(&mesh.name, Some(namespace), &name, sha256_hex(&tls.cert)),
                type_: Some("kubernetes.io/tls".to_string()),
                data: Some(tls.to_secret_data()),
                ..Secret::default()
            }));
        }
    }
    if !identities.is_empty() {
        let name = labels::discovery_role_name(&mesh.name);
        let role = ClusterRole {
            metadata: labels::meta(&mesh.name, None, &name, String::new()),
            rules: Some(vec![
                rule("discovery.k8s.io", "endpointslices"),
                rule("", "pods"),
                rule("", "services"),
            ]),
            ..ClusterRole::default()
        };
        objects.push(Object::ClusterRole(with_content_hash(role, |r| {
            &mut r.metadata
        })));
        let binding = ClusterRoleBinding {
            metadata: labels::meta(&mesh.name, None, &name, String::new()),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_string(),
                kind: "ClusterRole".to_string(),
                name: name.clone(),
            },
            subjects: Some(
                identities
                    .iter()
                    .map(|(namespace, sa, _)| Subject {
                        kind: "ServiceAccount".to_string(),
                        name: sa.clone(),
                        namespace: Some(namespace.clone()),
                        ..Subject::default()
                    })
                    .collect(),
            ),
        };
        objects.push(Object::ClusterRoleBinding(with_content_hash(
            binding,
            |b| &mut b.metadata,
        )));
    }
    objects.sort_by_key(Object::sort_key);
    Ok(objects)
}

fn rule(group: &str, resource: &str) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(vec![resource.to_string()]),
        verbs: vec!["list".to_string(), "watch".to_string()],
        ..PolicyRule::default()
    }
}

/// Sets the hash annotation of `object` to the SHA-256 of its JSON form without it.
fn with_content_hash<T: serde::Serialize>(
    mut object: T,
    meta: impl Fn(&mut T) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> T {
    meta(&mut object).annotations = None;
    let hash = sha256_hex(&serde_json::to_vec(&object).unwrap_or_default());
    meta(&mut object).annotations = Some(BTreeMap::from([(labels::CONFIG_HASH.to_string(), hash)]));
    object
}

/// All objects as one multi-document YAML stream.
pub fn to_yaml(objects: &[Object]) -> Result<String, KubeError> {
    let values: Vec<_> = objects.iter().map(Object::to_json).collect();
    yaml::to_documents(&values)
}

/// One file per object, by relative path: `NAMESPACE/KIND-NAME.yaml`, cluster-scoped
/// objects under `_cluster/`.
pub fn files(objects: &[Object]) -> Result<BTreeMap<String, String>, KubeError> {
    objects
        .iter()
        .map(|object| {
            let text = yaml::to_documents(&[object.to_json()])?;
            Ok((
                file_name(object.namespace(), object.kind(), object.name()),
                text,
            ))
        })
        .collect()
}

/// The relative path of an object's file in `meshc manifests -o DIR`.
pub fn file_name(namespace: Option<&str>, kind: &str, name: &str) -> String {
    format!(
        "{}/{}-{name}.yaml",
        namespace.unwrap_or("_cluster"),
        kind.to_ascii_lowercase()
    )
}

/// Whether `text` is one object of `mesh` as [`files`] writes it (so a file that is no
/// longer produced may be removed).
pub fn is_object_of(text: &str, mesh: &str) -> bool {
    let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let labels = &value["metadata"]["labels"];
    labels[labels::MANAGED_BY] == labels::MANAGER && labels[labels::MESH] == mesh
}

/// The certificate data of a Secret written earlier as YAML (`None` when it is not one).
pub fn tls_data_from_yaml(text: &str) -> Option<TlsData> {
    let secret: Secret = serde_saphyr::from_str(text).ok()?;
    TlsData::from_secret_data(secret.data.as_ref()?)
}
