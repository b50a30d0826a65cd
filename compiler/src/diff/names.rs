//! How callers are named in a diff: by the service (or gateway) that has the identity in
//! either version, rather than by the identity itself, and the classes of identities no
//! policy names by what they stand for.

use std::collections::{BTreeSet, HashMap};

use super::classes::CallerClass;
use crate::ir::Mesh;

/// The services and gateways of both versions, by identity.
pub(super) struct Names {
    by_identity: HashMap<String, BTreeSet<String>>,
}

impl Names {
    pub(super) fn new(meshes: [&Mesh; 2]) -> Names {
        let mut by_identity: HashMap<String, BTreeSet<String>> = HashMap::new();
        for mesh in meshes {
            for service in &mesh.services {
                by_identity
                    .entry(format!("{}/{}", service.namespace, service.identity))
                    .or_default()
                    .insert(service.key());
            }
            for gateway in &mesh.gateways {
                by_identity
                    .entry(format!("{}/{}", gateway.namespace, gateway.identity))
                    .or_default()
                    .insert(format!("gateway/{}", gateway.key()));
            }
        }
        Names { by_identity }
    }

    /// The caller `class` stands for: `ns/name` of the one workload with the identity
    /// (else the identity), `ns/*`, `*` or `anonymous`.
    pub(super) fn caller(&self, class: &CallerClass) -> String {
        match class {
            CallerClass::Identity(identity) => match self.by_identity.get(identity) {
                Some(names) if names.len() == 1 => names.iter().next().cloned().unwrap_or_default(),
                _ => identity.clone(),
            },
            CallerClass::InNamespace(ns) => format!("{ns}/*"),
            CallerClass::Outside => "*".into(),
            CallerClass::Anonymous => "anonymous".into(),
        }
    }
}
