//! What this crate needs to know about a compiled mesh, as plain data, so that it does not
//! depend on the compiler (the compiler depends on it).

use std::collections::BTreeMap;

/// A compiled mesh.
#[derive(Clone, Debug)]
pub struct MeshInput {
    /// The mesh's name (the value of the `mesh` label).
    pub name: String,
    /// Its trust domain.
    pub trust_domain: String,
    /// Its workloads, sorted by namespace and name.
    pub workloads: Vec<WorkloadInput>,
    /// Its ingress gateways, sorted by namespace and name.
    pub gateways: Vec<GatewayInput>,
    /// The Cedar schema of the mesh.
    pub cedar_schema: String,
    /// Its `.mesh` sources (the bundled standard library left out), by path relative to
    /// the directory that holds them all, `/`-separated: what the injector compiles.
    pub sources: BTreeMap<String, String>,
}

/// One workload (service) of the mesh.
#[derive(Clone, Debug)]
pub struct WorkloadInput {
    /// Its namespace.
    pub namespace: String,
    /// Its service name.
    pub name: String,
    /// Its service account (identity) in its namespace.
    pub service_account: String,
    /// Its SPIFFE id.
    pub spiffe_id: String,
    /// The ports it serves (the first is where the agent forwards inbound requests).
    pub ports: Vec<u16>,
    /// Its config, as `meshc compile` writes it (JSON).
    pub config: String,
}

/// One ingress gateway of the mesh.
#[derive(Clone, Debug)]
pub struct GatewayInput {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its service account (identity) in its namespace.
    pub service_account: String,
    /// Its SPIFFE id.
    pub spiffe_id: String,
    /// The ports it listens on.
    pub listeners: Vec<u16>,
    /// Its config, as `meshc compile` writes it (JSON; certificate paths are files here).
    pub config: String,
}

impl MeshInput {
    /// The distinct identities of the mesh as (namespace, service account, SPIFFE id),
    /// sorted.
    pub fn identities(&self) -> Vec<(String, String, String)> {
        let mut ids: Vec<_> = self
            .workloads
            .iter()
            .map(|w| (&w.namespace, &w.service_account, &w.spiffe_id))
            .chain(
                self.gateways
                    .iter()
                    .map(|g| (&g.namespace, &g.service_account, &g.spiffe_id)),
            )
            .map(|(ns, sa, id)| (ns.clone(), sa.clone(), id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
