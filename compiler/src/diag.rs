//! Diagnostics across files: every finding of the compiler is a `mesh_lang::Diagnostic`
//! tagged with the file it is about. The codes live here, one constant each, matching
//! `compiler/DIAGNOSTICS.md`.

use mesh_lang::{Diagnostic, Severity};

use crate::load::FileId;

/// Syntax error (from the parser, which defines the code).
pub const SYNTAX: &str = mesh_lang::SYNTAX_ERROR;
/// Unknown reference.
pub const UNKNOWN_REF: &str = "E0002";
/// Duplicate definition.
pub const DUPLICATE: &str = "E0003";
/// Type mismatch.
pub const TYPE_MISMATCH: &str = "E0004";
/// Split weights do not add up to 100%.
pub const SPLIT_SUM: &str = "E0005";
/// Value out of range.
pub const OUT_OF_RANGE: &str = "E0006";
/// Invalid regex or glob.
pub const BAD_PATTERN: &str = "E0007";
/// Import not found, or import cycle.
pub const IMPORT: &str = "E0008";
/// Cedar policy does not validate against the mesh schema.
pub const CEDAR: &str = "E0009";
/// Conflicting blocks.
pub const CONFLICT: &str = "E0010";
/// An L7 condition on a service whose ports are all opaque TCP.
pub const L7_ON_TCP: &str = "E0011";
/// A rule (or route) without exactly one destination.
pub const RULE_DESTINATION: &str = "E0012";
/// A gateway rule that sends HTTP to a service without an HTTP port.
pub const GATEWAY_TO_TCP: &str = "E0013";
/// A gateway without a listener or a host, or a `tls` block without its certificate or key.
pub const GATEWAY_INCOMPLETE: &str = "E0014";
/// Unreachable rule.
pub const UNREACHABLE_RULE: &str = "W0001";
/// Unused subset or retry profile.
pub const UNUSED: &str = "W0002";
/// Allow fully covered by a deny.
pub const SHADOWED_ALLOW: &str = "W0003";
/// Retry amplification along a call chain.
pub const RETRY_AMPLIFICATION: &str = "W0004";
/// A caller's timeout shorter than the callee's retries.
pub const TIMEOUT_BUDGET: &str = "W0005";
/// `allow from any` under strict mTLS.
pub const ALLOW_ANY_STRICT: &str = "W0006";
/// A route that sends traffic to another service.
pub const CROSS_SERVICE_ROUTE: &str = "W0007";
/// `idle_timeout` on a route of a service without a tcp port.
pub const IDLE_TIMEOUT_WITHOUT_TCP: &str = "W0008";
/// A rate limit of a service without an HTTP port.
pub const RATE_LIMIT_WITHOUT_HTTP: &str = "W0009";
/// A policy with members but no allow: every request is denied.
pub const ALLOWS_NOTHING: &str = "W0010";
/// A gateway routes to a service whose policy does not let the gateway call it.
pub const GATEWAY_DENIED: &str = "W0011";

/// Every code with its title (the heading in `DIAGNOSTICS.md`) and how to fix it: the
/// rules of the SARIF output.
pub const CATALOG: &[(&str, &str, &str)] = &[
    (
        SYNTAX,
        "syntax error",
        "Follow the help line: most often a misspelled keyword, `:` for `=`, single quotes, or a missing `}`.",
    ),
    (
        UNKNOWN_REF,
        "unknown reference",
        "Correct the name, or qualify it with its namespace (`shop/cart`).",
    ),
    (
        DUPLICATE,
        "duplicate definition",
        "Rename or merge one of the two definitions.",
    ),
    (
        TYPE_MISMATCH,
        "type mismatch",
        "Write a literal of the expected type; the help line lists its forms.",
    ),
    (
        SPLIT_SUM,
        "split weights do not add up to 100%",
        "Adjust the weights so they add up to exactly 100%.",
    ),
    (
        OUT_OF_RANGE,
        "value out of range",
        "Bring the value into range; the help line gives it.",
    ),
    (
        BAD_PATTERN,
        "invalid regex or glob",
        "Correct the pattern; write regexes as raw strings.",
    ),
    (
        IMPORT,
        "import not found, or import cycle",
        "Correct the path (relative to the importing file, or `std/NAME`), or remove one import of the cycle.",
    ),
    (
        CEDAR,
        "Cedar policy does not validate against the mesh schema",
        "Use the mesh's entity types (`Mesh::Service`, `Mesh::Namespace`, `Mesh::Action`) and context attributes (`path`, `host`, `headers`, `query`); the label shows the offending place.",
    ),
    (
        CONFLICT,
        "conflicting blocks",
        "Merge the two blocks into one.",
    ),
    (
        L7_ON_TCP,
        "L7 condition on an opaque TCP service",
        "Remove the condition or member, or give the service an http port: only `source` conditions and `ports` apply to opaque TCP.",
    ),
    (
        RULE_DESTINATION,
        "rule without exactly one destination",
        "Give the rule exactly one `to` or one `split`.",
    ),
    (
        GATEWAY_TO_TCP,
        "gateway routes to a service without an HTTP port",
        "Route the gateway to a service with an http, http2 or grpc port, or give the service one.",
    ),
    (
        GATEWAY_INCOMPLETE,
        "incomplete gateway or TLS block",
        "Give the gateway at least one `listen` and one `host`, and every `tls` block a `cert` and a `key`.",
    ),
    (
        UNREACHABLE_RULE,
        "unreachable rule",
        "Order rules from specific to general; the catch-all goes last.",
    ),
    (
        UNUSED,
        "unused subset or retry profile",
        "Route to the subset or use the profile, or remove it.",
    ),
    (
        SHADOWED_ALLOW,
        "allow fully covered by a deny",
        "Narrow the deny, or remove the allow.",
    ),
    (
        RETRY_AMPLIFICATION,
        "retry amplification along a call chain",
        "Retry at one hop of the chain only, lower `attempts` elsewhere, or add retry budgets.",
    ),
    (
        TIMEOUT_BUDGET,
        "caller timeout shorter than the callee's retries",
        "Raise the caller-facing timeout, or make the callee's retries fit in it.",
    ),
    (
        ALLOW_ANY_STRICT,
        "`allow from any` under `mtls strict`",
        "Write `allow from authenticated`.",
    ),
    (
        CROSS_SERVICE_ROUTE,
        "route sends traffic to another service",
        "Route to the service itself or one of its subsets.",
    ),
    (
        IDLE_TIMEOUT_WITHOUT_TCP,
        "`idle_timeout` on a service without a tcp port",
        "Remove `idle_timeout`, or declare the service's opaque port as `port tcp N`.",
    ),
    (
        RATE_LIMIT_WITHOUT_HTTP,
        "rate limit on a service without an HTTP port",
        "Remove the `rate_limit`, or give the service an http port: rate limits count HTTP requests, not opaque TCP connections.",
    ),
    (
        ALLOWS_NOTHING,
        "policy that allows nothing",
        "Add an `allow` for the callers that need the service; to refuse every caller on purpose, leave the policy empty (`policy NAME {}`).",
    ),
    (
        GATEWAY_DENIED,
        "gateway routes to a service whose policy denies it",
        "Add `allow from gateway/NAME` (or a namespace or `authenticated`) to the service's policy, or stop routing the gateway there.",
    ),
];

/// A diagnostic and the file it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file the spans refer to.
    pub file: FileId,
    /// What was found.
    pub diagnostic: Diagnostic,
}

impl Finding {
    /// Whether this finding is an error.
    pub fn is_error(&self) -> bool {
        self.diagnostic.severity == Severity::Error
    }
}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo and
/// closer than every other candidate. One-character names get no suggestion.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let threshold = match name.chars().count() {
        0..=1 => return None,
        2..=3 => 1,
        4..=5 => 2,
        _ => 3,
    };
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, _)| *d <= threshold)
        .collect();
    scored.sort();
    scored.dedup();
    match scored.as_slice() {
        [(best, c), (next, _), ..] if best < next => Some(c),
        [(_, c)] => Some(c),
        _ => None,
    }
}
