//! The errors of this crate: what went wrong while building, reading or applying objects.

use std::path::PathBuf;

/// Why objects could not be produced, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A certificate could not be issued.
    #[error("cannot issue a certificate for {id}: {source}")]
    Issue {
        /// The SPIFFE id.
        id: String,
        /// The cause.
        source: mesh_identity::IdentityError,
    },
    /// An identity's SPIFFE id is not valid.
    #[error("invalid SPIFFE id {id}: {source}")]
    SpiffeId {
        /// The id.
        id: String,
        /// The cause.
        source: mesh_identity::SpiffeIdError,
    },
    /// YAML could not be read.
    #[error("{what}: not valid YAML: {message}")]
    YamlIn {
        /// What was read.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// An object could not be written as YAML.
    #[error("cannot write {what} as YAML: {message}")]
    YamlOut {
        /// The object.
        what: String,
        /// The serializer's message.
        message: String,
    },
    /// A document does not have the shape of its kind.
    #[error("document {index} ({kind} {name}): {message}")]
    Shape {
        /// 1-based position in the input.
        index: usize,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// What does not fit.
        message: String,
    },
    /// A workload cannot be injected.
    #[error("{kind} {name}: {message}")]
    Inject {
        /// Its kind.
        kind: String,
        /// `namespace/name` or `name`.
        name: String,
        /// Why.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The cluster could not be reached or configured.
    #[error("{0}")]
    Client(String),
    /// The API server refused a request.
    #[error("{object}: {message}")]
    Api {
        /// `kind/name` (with its namespace).
        object: String,
        /// What the server said.
        message: String,
    },
    /// A server-side apply met fields owned by another manager.
    #[error(
        "{object}: conflict: {message}\n  the fields are managed by {managers}; re-run with --force-conflicts to take them over"
    )]
    Conflict {
        /// `kind/name` (with its namespace).
        object: String,
        /// What the server said.
        message: String,
        /// The conflicting managers, quoted and comma-separated.
        managers: String,
    },
}
