//! SPIFFE ids: the names workloads know each other by.
//!
//! A mesh workload is `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`. This module
//! parses and prints that form and nothing looser, so that an id that parses here is one
//! that a certificate, a config and a Cedar policy all spell the same way. The character
//! rules are those of the SPIFFE ID specification: the trust domain is lowercase letters,
//! digits, `.`, `-` and `_`; a path segment is letters, digits, `.`, `-` and `_`, and is
//! neither empty nor `.` or `..`.

use std::fmt;
use std::str::FromStr;

/// The URI scheme of every SPIFFE id.
const SCHEME: &str = "spiffe://";
/// The longest SPIFFE id the specification allows, in bytes.
const MAX_LEN: usize = 2048;
/// The longest trust domain the specification allows, in bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A workload identity: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
///
/// Every value is valid: the only ways to make one are [`SpiffeId::parse`] and
/// [`SpiffeId::new`], which both check it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

/// Why a string is not a mesh SPIFFE id; it names the string and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SPIFFE id {input:?}: {kind}")]
pub struct SpiffeIdError {
    input: String,
    kind: SpiffeIdErrorKind,
}

impl SpiffeIdError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn kind(&self) -> &SpiffeIdErrorKind {
        &self.kind
    }
}

/// The ways a string can fail to be a mesh SPIFFE id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdErrorKind {
    /// The string is empty.
    #[error("it is empty")]
    Empty,
    /// The string is longer than the 2048 bytes the specification allows.
    #[error("it is {0} bytes long; a SPIFFE id has at most 2048")]
    TooLong(usize),
    /// The string does not start with `spiffe://` (the scheme is lowercase).
    #[error("it does not start with \"spiffe://\"")]
    MissingScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    /// The trust domain is longer than 255 bytes.
    #[error("the trust domain is {0} bytes long; at most 255 are allowed")]
    TrustDomainTooLong(usize),
    /// A character the trust domain may not hold (uppercase, a port, user info, …).
    #[error(
        "the trust domain holds {0:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    TrustDomainCharacter(char),
    /// No path at all: `spiffe://example.org`.
    #[error("it has no path; expected /ns/NAMESPACE/sa/SERVICE_ACCOUNT")]
    MissingPath,
    /// The path is not `/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    #[error("the path {0:?} is not /ns/NAMESPACE/sa/SERVICE_ACCOUNT")]
    PathShape(String),
    /// An empty path segment (`//`, or a trailing `/`).
    #[error("the path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` path segment.
    #[error("the path has a {0:?} segment")]
    DotSegment(String),
    /// A character a path segment may not hold (`?`, `#`, `%`, `:`, space, …).
    #[error(
        "the path segment {segment:?} holds {character:?}; only letters, digits, '.', '-' and '_' are allowed"
    )]
    SegmentCharacter {
        /// The segment.
        segment: String,
        /// The first character it may not hold.
        character: char,
    },
}

impl SpiffeId {
    /// Parses `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    pub fn parse(input: &str) -> Result<SpiffeId, SpiffeIdError> {
        parse(input).map_err(|kind| SpiffeIdError {
            input: input.to_owned(),
            kind,
        })
    }

    /// Builds the id of service account `service_account` in `namespace` of `trust_domain`,
    /// with the same checks as [`SpiffeId::parse`].
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<SpiffeId, SpiffeIdError> {
        SpiffeId::parse(&format!(
            "{SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}"
        ))
    }

    /// The trust domain, e.g. `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The namespace, e.g. `bookinfo`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The service account, e.g. `reviews`.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

fn parse(input: &str) -> Result<SpiffeId, SpiffeIdErrorKind> {
    if input.is_empty() {
        return Err(SpiffeIdErrorKind::Empty);
    }
    if input.len() > MAX_LEN {
        return Err(SpiffeIdErrorKind::TooLong(input.len()));
    }
    let rest = input
        .strip_prefix(SCHEME)
        .ok_or(SpiffeIdErrorKind::MissingScheme)?;
    let (trust_domain, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    check_trust_domain(trust_domain)?;
    if path.is_empty() {
        return Err(SpiffeIdErrorKind::MissingPath);
    }
    // `path` starts with '/', so the first segment is the empty string before it.
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for segment in &segments {
        check_segment(segment)?;
    }
    match segments.as_slice() {
        ["ns", namespace, "sa", service_account] => Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: (*namespace).to_owned(),
            service_account: (*service_account).to_owned(),
        }),
        _ => Err(SpiffeIdErrorKind::PathShape(path.to_owned())),
    }
}

/// Checks a trust domain alone (`cluster.local`), as [`SpiffeId::parse`] checks the one in
/// an id: what the compiler holds a mesh's `trust_domain` to, so every id it builds parses.
pub fn check_trust_domain(trust_domain: &str) -> Result<(), SpiffeIdErrorKind> {
    if trust_domain.is_empty() {
        return Err(SpiffeIdErrorKind::EmptyTrustDomain);
    }
    if trust_domain.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdErrorKind::TrustDomainTooLong(trust_domain.len()));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    match trust_domain.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(SpiffeIdErrorKind::TrustDomainCharacter(c)),
        None => Ok(()),
    }
}

fn check_segment(segment: &str) -> Result<(), SpiffeIdErrorKind> {
    if segment.is_empty() {
        return Err(SpiffeIdErrorKind::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(SpiffeIdErrorKind::DotSegment(segment.to_owned()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    match segment.chars().find(|&c| !allowed(c)) {
        Some(character) => Err(SpiffeIdErrorKind::SegmentCharacter {
            segment: segment.to_owned(),
            character,
        }),
        None => Ok(()),
    }
}
