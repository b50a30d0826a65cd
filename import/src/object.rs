//! The envelope of a Kubernetes object — `apiVersion`, `kind`, `metadata` — read from a YAML
//! document, so that each translation gets its kind, name, namespace and `spec`. Lists
//! (`kind: List`, as `kubectl get -o yaml` writes) are opened; documents that are not
//! objects, and kinds the import does not know, are errors (`I0002`).

use std::cell::RefCell;

use mesh_lang::Diagnostic;

use crate::diag::{Ctx, UNKNOWN_KIND};
use crate::fields::At;
use crate::yaml::Node;

/// The kinds the import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `networking.istio.io` VirtualService.
    VirtualService,
    /// `networking.istio.io` DestinationRule.
    DestinationRule,
    /// `networking.istio.io` ServiceEntry.
    ServiceEntry,
    /// `security.istio.io` AuthorizationPolicy.
    AuthorizationPolicy,
    /// `security.istio.io` PeerAuthentication.
    PeerAuthentication,
    /// `gateway.networking.k8s.io` HTTPRoute.
    HttpRoute,
    /// `gateway.networking.k8s.io` GRPCRoute.
    GrpcRoute,
    /// Kubernetes Service: its ports and selector.
    KubeService,
    /// Kubernetes Deployment: the service account of its pods.
    Deployment,
    /// Kubernetes ServiceAccount: nothing to import (accepted so that whole application
    /// manifests can be imported with their Istio objects).
    ServiceAccount,
    /// A kind of those APIs that has no equivalent in the language (Istio's Gateway,
    /// Sidecar, EnvoyFilter, …; Gateway API's Gateway, TCPRoute, …): reported, not imported.
    Other,
}

/// One object of the input.
pub struct Object<'a> {
    /// Its kind.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// Its `spec` (absent: `None`).
    pub spec: Option<&'a Node>,
    /// The whole document, for diagnostics about the object itself.
    pub node: &'a Node,
    /// Where its diagnostics go.
    pub ctx: Ctx<'a>,
    /// What its translation referred to, checked once everything is translated.
    pub refs: Refs,
}

/// The services and subsets an object's translation referred to.
#[derive(Default)]
pub struct Refs {
    /// Namespace, name and (when given) port of each service named.
    pub services: RefCell<Vec<(String, String, Option<u16>)>>,
    /// Each subset named.
    pub subsets: RefCell<Vec<PendingSubset>>,
}

/// A subset a route names, which some DestinationRule must define.
pub struct PendingSubset {
    /// The service's namespace.
    pub ns: String,
    /// The service.
    pub service: String,
    /// The subset.
    pub subset: String,
    /// Where it is named.
    pub span: mesh_lang::ast::Span,
    /// Its YAML path.
    pub path: String,
}

impl Object<'_> {
    /// Its spec as a field at path `spec` (a missing spec reads as an empty mapping).
    pub fn spec(&self) -> At<'_> {
        static EMPTY: Node = Node {
            value: crate::yaml::Value::Null,
            span: mesh_lang::ast::Span::new(0, 0),
        };
        let node = self.spec.unwrap_or(&EMPTY);
        At {
            node,
            span: if self.spec.is_some() {
                node.span
            } else {
                self.node.span
            },
            path: "spec".to_string(),
            ctx: &self.ctx,
        }
    }
}

fn kind_of(group: &str, kind: &str) -> Option<Kind> {
    Some(match (group, kind) {
        ("networking.istio.io", "VirtualService") => Kind::VirtualService,
        ("networking.istio.io", "DestinationRule") => Kind::DestinationRule,
        ("networking.istio.io", "ServiceEntry") => Kind::ServiceEntry,
        ("security.istio.io", "AuthorizationPolicy") => Kind::AuthorizationPolicy,
        ("security.istio.io", "PeerAuthentication") => Kind::PeerAuthentication,
        ("gateway.networking.k8s.io", "HTTPRoute") => Kind::HttpRoute,
        ("gateway.networking.k8s.io", "GRPCRoute") => Kind::GrpcRoute,
        ("v1", "Service") => Kind::KubeService,
        ("apps", "Deployment") => Kind::Deployment,
        ("v1", "ServiceAccount") => Kind::ServiceAccount,
        (
            "networking.istio.io",
            "Gateway" | "Sidecar" | "EnvoyFilter" | "WorkloadEntry" | "WorkloadGroup"
            | "ProxyConfig",
        )
        | ("security.istio.io", "RequestAuthentication")
        | ("telemetry.istio.io", "Telemetry")
        | (
            "gateway.networking.k8s.io",
            "Gateway" | "GatewayClass" | "TCPRoute" | "TLSRoute" | "UDPRoute" | "ReferenceGrant"
            | "BackendTLSPolicy",
        ) => Kind::Other,
        _ => return None,
    })
}

/// The objects of one parsed input, in order, with their diagnostics going to `sink`.
pub fn objects<'a>(docs: &'a [Node], sink: &'a RefCell<Vec<Diagnostic>>) -> Vec<Object<'a>> {
    let mut out = Vec::new();
    for doc in docs {
        collect(doc, sink, &mut out);
    }
    out
}

fn collect<'a>(doc: &'a Node, sink: &'a RefCell<Vec<Diagnostic>>, out: &mut Vec<Object<'a>>) {
    let envelope = Ctx::new(String::new(), sink);
    let Some(fields) = (match &doc.value {
        crate::yaml::Value::Map(_) => At::root(doc, "", &envelope).fields(),
        other => {
            envelope.report(
                UNKNOWN_KIND,
                doc.span,
                "",
                &format!("expected a Kubernetes object, found {}", other.kind()),
            );
            return;
        }
    }) else {
        return;
    };
    let api_version = fields.str("apiVersion").unwrap_or_default();
    let kind_name = fields.str("kind").unwrap_or_default();
    if api_version == "v1" && kind_name == "List" {
        fields.skip("items");
        if let Some(crate::yaml::Value::Seq(items)) = entry(doc, "items").map(|n| &n.value) {
            for item in items {
                collect(item, sink, out);
            }
        }
        fields.skip("metadata");
        return;
    }
    let group = api_version.split('/').next().unwrap_or_default();
    let Some(kind) = kind_of(group, &kind_name) else {
        let what = if kind_name.is_empty() {
            "a document without `kind` is not a Kubernetes object".to_string()
        } else {
            format!(
                "kind {kind_name} of apiVersion {api_version:?} is not an Istio or Gateway API \
                 object the import knows"
            )
        };
        let at = fields.take("kind").map_or(doc.span, |k| k.at().span);
        envelope.report(UNKNOWN_KIND, at, "", &what);
        for key in ["apiVersion", "metadata", "spec", "status", "items", "data"] {
            fields.skip(key);
        }
        skip_rest(&fields, doc);
        return;
    };
    let mut name = String::new();
    let mut namespace = "default".to_string();
    if let Some(meta) = fields.take("metadata")
        && let Some(meta) = meta.at().fields()
    {
        name = meta.str("name").unwrap_or_default();
        if let Some(field) = meta.take("namespace")
            && let Some(ns) = field.at().str()
        {
            if !crate::lit::is_ident(&ns) {
                field.at().bad_value(&format!(
                    "{ns:?} is not a namespace name, so the object is not imported"
                ));
                skip_rest(&fields, doc);
                return;
            }
            namespace = ns;
        }
        for key in [
            "labels",
            "annotations",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "finalizers",
            "ownerReferences",
            "generateName",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.skip(key);
        }
    }
    fields.skip("status");
    fields.skip("spec");
    let spec = entry(doc, "spec");
    let ctx = Ctx::new(
        format!("{kind_name} {} ({namespace})", display_name(&name)),
        sink,
    );
    out.push(Object {
        kind,
        name,
        namespace,
        spec,
        node: doc,
        ctx,
        refs: Refs::default(),
    });
}

/// Marks every remaining field of a rejected document as seen: its diagnostic says it all.
fn skip_rest(fields: &crate::fields::Fields<'_>, doc: &Node) {
    if let crate::yaml::Value::Map(entries) = &doc.value {
        for (key, _) in entries {
            if let Some(key) = key.scalar_text() {
                fields.skip(&key);
            }
        }
    }
}

/// The value of key `key` of a mapping node.
pub fn entry<'a>(doc: &'a Node, key: &str) -> Option<&'a Node> {
    match &doc.value {
        crate::yaml::Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn display_name(name: &str) -> &str {
    if name.is_empty() { "(unnamed)" } else { name }
}
