//! Diagnostics across files: every finding of the compiler is a `mesh_lang::Diagnostic`
//! tagged with the file it is about. The codes live here, one constant each, matching
//! `compiler/DIAGNOSTICS.md`.

use mesh_lang::{Diagnostic, Severity};

use crate::load::FileId;

/// Syntax error (from the parser).
pub const SYNTAX: &str = "E0001";
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
/// A rule without exactly one destination.
pub const RULE_DESTINATION: &str = "E0011";
/// Unreachable rule.
pub const UNREACHABLE_RULE: &str = "W0001";
/// Unused subset or retry profile.
pub const UNUSED: &str = "W0002";
/// Allow fully covered by a deny.
pub const SHADOWED_ALLOW: &str = "W0003";
/// `allow from any` under strict mTLS.
pub const ALLOW_ANY_STRICT: &str = "W0006";
/// A route that sends traffic to another service.
pub const CROSS_SERVICE_ROUTE: &str = "W0007";

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

/// The closest of `candidates` to `name`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let threshold = match name.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, _)| *d <= threshold)
        .min()
        .map(|(_, c)| c)
}
