//! The labels and annotations every object `meshc` makes carries, and the names it gives
//! objects, in one place so that generation, pruning and injection agree.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The standard label naming the tool that manages an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value on every object `meshc` makes.
pub const MANAGER: &str = "meshc";
/// The label holding the mesh's name.
pub const MESH: &str = "mesh";
/// The annotation holding the SHA-256 of what an object carries (for a ConfigMap, the
/// workload config's bytes: the hash the agent reports in `mesh_config_info`).
pub const CONFIG_HASH: &str = "mesh/config-hash";
/// The field manager of server-side apply.
pub const FIELD_MANAGER: &str = "meshc";

/// The key of the workload config in its ConfigMap.
pub const CONFIG_KEY: &str = "config.json";
/// The key of the Cedar schema in each ConfigMap.
pub const SCHEMA_KEY: &str = "mesh.cedarschema";

/// The label selector matching every object of `mesh`.
pub fn selector(mesh: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{MESH}={mesh}")
}

/// The labels of every object of `mesh`.
pub fn labels(mesh: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (MESH.to_string(), mesh.to_string()),
    ])
}

/// Metadata of an object of `mesh`.
pub fn meta(mesh: &str, namespace: Option<&str>, name: &str, hash: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(mesh)),
        annotations: Some(BTreeMap::from([(CONFIG_HASH.to_string(), hash)])),
        ..ObjectMeta::default()
    }
}

/// The name of the ConfigMap of the workload `service`.
pub fn config_map_name(service: &str) -> String {
    service.to_string()
}

/// The name of the TLS Secret of the identity (service account) `sa`.
pub fn secret_name(sa: &str) -> String {
    format!("{sa}-mesh-identity")
}

/// The name of the ClusterRole and ClusterRoleBinding of `mesh`'s discovery.
pub fn discovery_role_name(mesh: &str) -> String {
    format!("meshc-{mesh}-discovery")
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
}
