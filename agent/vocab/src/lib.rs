//! `mesh-vocab`: the words both halves of the mesh read, parsed one way.
//!
//! The compiler writes SPIFFE ids, globs, durations, authorities, query strings and header
//! names into workload configs; the agent reads them back from configs, certificates,
//! command lines and requests. Each word has exactly one parser here, so a value the compiler or
//! `mesh_config::Config::new` accepts is one the agent accepts at the first request, and
//! the other way round.
//!
//! The crate sits below `mesh-lang`, `mesh-config` and `mesh-identity` and depends on
//! nothing heavy, so that all of them can share it without pulling in each other's
//! dependencies (Cedar, rustls).

pub mod authority;
pub mod duration;
pub mod glob;
pub mod header;
pub mod query;
pub mod spiffe;

pub use spiffe::{SpiffeId, SpiffeIdError, SpiffeIdErrorKind};
