//! Which collection and object a URL path (or an object's `apiVersion` and `kind`) names.

use serde_json::Value;

/// A collection, optionally narrowed to a namespace and an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `GROUP/VERSION` (`v1` for the core group).
    pub api_version: String,
    /// The resource, plural (`configmaps`).
    pub plural: String,
    /// The namespace, if the path has one.
    pub namespace: Option<String>,
    /// The object's name, if the path has one.
    pub name: Option<String>,
}

/// Kind and plural of the resources the fake knows by name; others are derived.
const KINDS: [(&str, &str); 10] = [
    ("ConfigMap", "configmaps"),
    ("Secret", "secrets"),
    ("ServiceAccount", "serviceaccounts"),
    ("ClusterRole", "clusterroles"),
    ("ClusterRoleBinding", "clusterrolebindings"),
    ("EndpointSlice", "endpointslices"),
    ("Pod", "pods"),
    ("Service", "services"),
    ("Namespace", "namespaces"),
    ("Deployment", "deployments"),
];

/// The plural of `kind`.
pub fn plural(kind: &str) -> String {
    KINDS.iter().find(|(k, _)| *k == kind).map_or_else(
        || format!("{}s", kind.to_ascii_lowercase()),
        |(_, p)| p.to_string(),
    )
}

/// The kind of `plural`.
pub fn kind(plural: &str) -> String {
    KINDS.iter().find(|(_, p)| *p == plural).map_or_else(
        || plural.trim_end_matches('s').to_string(),
        |(k, _)| k.to_string(),
    )
}

impl Target {
    /// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...`.
    pub fn parse(path: &str) -> Option<Target> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => (version.to_string(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name) = match rest {
            [plural] => (plural.to_string(), None),
            [plural, name] => (plural.to_string(), Some(name.to_string())),
            _ => return None,
        };
        Some(Target {
            api_version,
            plural,
            namespace,
            name,
        })
    }

    /// The target of an object, from its `apiVersion`, `kind` and metadata.
    pub fn of_object(object: &Value) -> Option<Target> {
        Some(Target {
            api_version: object["apiVersion"].as_str()?.to_string(),
            plural: plural(object["kind"].as_str()?),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: Some(object["metadata"]["name"].as_str()?.to_string()),
        })
    }

    /// The collection key: `API_VERSION/PLURAL`.
    pub fn collection(&self) -> String {
        format!("{}/{}", self.api_version, self.plural)
    }

    /// The kind of the collection's objects.
    pub fn kind(&self) -> String {
        kind(&self.plural)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let t = Target::parse("/api/v1/namespaces/ns/configmaps/a").unwrap();
        assert_eq!(
            (
                t.api_version.as_str(),
                t.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref()
            ),
            ("v1", "configmaps", Some("ns"), Some("a"))
        );
        let t = Target::parse("/apis/discovery.k8s.io/v1/endpointslices").unwrap();
        assert_eq!(
            (t.collection().as_str(), t.namespace, t.name),
            ("discovery.k8s.io/v1/endpointslices", None, None)
        );
        let t = Target::parse("/apis/rbac.authorization.k8s.io/v1/clusterroles/x").unwrap();
        assert_eq!(t.name.as_deref(), Some("x"));
        let t = Target::parse("/api/v1/namespaces/ns").unwrap();
        assert_eq!(
            (t.plural.as_str(), t.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        assert!(Target::parse("/version").is_none());
    }
}
