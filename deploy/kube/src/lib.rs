//! `mesh-kube`: the mesh on Kubernetes.
//!
//! `meshc` compiles a mesh into per-workload configs; this crate turns them into the
//! Kubernetes objects that carry them into a cluster and applies them there:
//!
//! - [`manifests`]: from a compiled mesh ([`MeshInput`]) to the objects it needs — one
//!   ConfigMap per workload, one `kubernetes.io/tls` Secret per identity, and the RBAC that
//!   lets agents discover endpoints — every one labelled with the mesh and annotated with
//!   the hash of what it carries. Deterministic: the same input gives the same objects.
//! - [`doctor`]: what is wrong with the mesh in a cluster.
//! - [`agents`]: the meshed pods' agents, read through the API server (`meshc stat
//!   --kubernetes`).
//! - [`cert_manager`]: identities that cert-manager issues and renews, instead.
//! - [`yaml`]: multi-document YAML in and out.
//! - [`apply`]: server-side apply of those objects through the `kube` client, with dry
//!   runs, conflict reporting and pruning of what the mesh no longer produces.
//! - [`gateway`]: the whole workload of an ingress gateway (Deployment, `LoadBalancer`
//!   Service, config and certificates).
//! - [`inject`]: adding the `mesh-agent` sidecar to workload manifests.
//! - [`injector`]: the objects that run [`webhook`] in a cluster and register it.
//! - [`webhook`]: the same injection as a mutating admission webhook decides it.

pub mod agents;
pub mod apply;
pub mod cert_manager;
pub mod certs;
pub mod doctor;
pub mod error;
pub mod gateway;
pub mod inject;
pub mod injector;
pub mod input;
pub mod labels;
pub mod manifests;
pub mod object;
pub mod webhook;
pub mod yaml;

pub use error::KubeError;
pub use input::{GatewayInput, MeshInput, WorkloadInput};
pub use object::Object;
