//! One object `meshc` manages, typed with `k8s-openapi`, and what every part of the crate
//! asks of it: its kind, name and namespace, and its JSON form.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cert_manager::{Certificate, ClusterIssuer};

/// An object of the mesh.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A workload's config.
    ConfigMap(ConfigMap),
    /// An identity's certificate.
    Secret(Secret),
    /// An identity's service account.
    ServiceAccount(ServiceAccount),
    /// What agents may read for discovery.
    ClusterRole(ClusterRole),
    /// Who may read it.
    ClusterRoleBinding(ClusterRoleBinding),
    /// A gateway's pods (boxed: a Deployment is many times the size of the others).
    Deployment(Box<Deployment>),
    /// A gateway's address (boxed, as a Deployment).
    Service(Box<Service>),
    /// The sidecar injector's namespace.
    Namespace(Namespace),
    /// The sidecar injector's registration with the API server.
    MutatingWebhookConfiguration(Box<MutatingWebhookConfiguration>),
    /// cert-manager's issuer backed by the mesh CA.
    ClusterIssuer(Box<ClusterIssuer>),
    /// An identity's certificate as cert-manager keeps it renewed.
    Certificate(Box<Certificate>),
}

/// The kinds `meshc` manages, in the order it applies them (what others refer to first).
/// Namespaces are created but never pruned: deleting one deletes everything in it.
pub const KINDS: [&str; 11] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Secret",
    "ClusterIssuer",
    "Certificate",
    "ConfigMap",
    "Deployment",
    "Service",
    "MutatingWebhookConfiguration",
];

impl Object {
    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ClusterRole(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::MutatingWebhookConfiguration(o) => &o.metadata,
            Object::ClusterIssuer(o) => &o.metadata,
            Object::Certificate(o) => &o.metadata,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::Namespace(_) => "Namespace",
            Object::MutatingWebhookConfiguration(_) => "MutatingWebhookConfiguration",
            Object::ClusterIssuer(_) => "ClusterIssuer",
            Object::Certificate(_) => "Certificate",
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// Its namespace (`None` for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }

    /// `kind/name` as kubectl prints it (`configmap/reviews`).
    pub fn display_name(&self) -> String {
        display_name(self.kind(), self.name())
    }

    /// Sort key: kind in apply order, then namespace and name.
    pub fn sort_key(&self) -> (usize, String, String) {
        (
            kind_rank(self.kind()),
            self.namespace().unwrap_or_default().to_string(),
            self.name().to_string(),
        )
    }

    /// Its JSON form, with `apiVersion` and `kind`.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Secret(o) => serde_json::to_value(o),
            Object::ServiceAccount(o) => serde_json::to_value(o),
            Object::ClusterRole(o) => serde_json::to_value(o),
            Object::ClusterRoleBinding(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::Namespace(o) => serde_json::to_value(o),
            Object::MutatingWebhookConfiguration(o) => serde_json::to_value(o),
            Object::ClusterIssuer(o) => serde_json::to_value(o),
            Object::Certificate(o) => serde_json::to_value(o),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

/// `kind/name` in kubectl's style.
pub fn display_name(kind: &str, name: &str) -> String {
    format!("{}/{name}", kind.to_ascii_lowercase())
}

/// Where `kind` comes in [`KINDS`].
pub fn kind_rank(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len())
}
