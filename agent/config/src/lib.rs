//! `mesh-config`: the contract between `meshc` and `mesh-agent`.
//!
//! It holds the per-workload config schema ([`schema`]), its validation ([`Config::new`]),
//! and its semantics: matching a request to a rule and choosing a backend
//! ([`Config::route`]), and deciding authorization ([`Config::authorize`]). `meshc test`,
//! `meshc explain` and the agent all call these same functions, so a test in a `.mesh`
//! file checks exactly what production does.

mod authz;
mod authz_slice;
mod config;
mod gateway;
mod rate_limit;
pub mod request;
mod route;
pub mod schema;

pub use authz::{AuthzDecision, Peer, TCP_ACTION, Verdict};
pub use config::{Config, ConfigError};
/// The shared vocabulary (SPIFFE ids, globs, durations, authorities, query strings) that
/// validation and the semantics parse with; see `mesh-vocab`.
pub use mesh_vocab as vocab;
pub use mesh_vocab::SpiffeId;
/// Globs (`like`, `paths [...]`), as `mesh_config::glob` for existing users.
pub use mesh_vocab::glob;
pub use request::{RequestView, SimpleRequest};
pub use route::{RouteDecision, RouteKey};

/// The JSON Schema of [`schema::WorkloadConfig`], as checked in at
/// `agent/config/workload-config.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(schema::WorkloadConfig);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}
