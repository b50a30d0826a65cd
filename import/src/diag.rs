//! The import's diagnostics, family `I` (catalogued in the crate README): the toolchain's one
//! [`Diagnostic`] type, with spans into the YAML source so that `meshc` renders them like
//! every other diagnostic, and messages that name the object and the YAML path.

use std::cell::RefCell;

use mesh_lang::Diagnostic;
use mesh_lang::ast::Span;

/// The input is not YAML. Nothing is written.
pub const MALFORMED: &str = "I0001";
/// A document is not a Kubernetes object, or of a kind the import does not know.
/// Nothing is written.
pub const UNKNOWN_KIND: &str = "I0002";
/// A field (or a whole object) has no equivalent in the language; it is not imported.
pub const NOT_EXPRESSIBLE: &str = "I0003";
/// A value the language cannot hold or the API does not allow (a wrong type, an unknown
/// method or retry condition, an invalid regex); the field is not imported.
pub const BAD_VALUE: &str = "I0004";
/// A field the import does not know (a typo, or a newer API version); not imported.
pub const UNKNOWN_FIELD: &str = "I0005";

/// Where the diagnostics of one input go, and the object they are about.
pub struct Ctx<'s> {
    /// `VirtualService reviews (default)`: how messages name the object (empty before
    /// the object is known).
    pub object: String,
    sink: &'s RefCell<Vec<Diagnostic>>,
}

impl<'s> Ctx<'s> {
    /// Diagnostics about `object` go to `sink`.
    pub fn new(object: String, sink: &'s RefCell<Vec<Diagnostic>>) -> Self {
        Ctx { object, sink }
    }

    /// Reports a finding at `span` about the field at `path`.
    pub fn report(&self, code: &'static str, span: Span, path: &str, what: &str) {
        let message = if self.object.is_empty() {
            what.to_string()
        } else if path.is_empty() {
            format!("{}: {what}", self.object)
        } else {
            format!("{} {path}: {what}", self.object)
        };
        let diagnostic = if code == MALFORMED || code == UNKNOWN_KIND {
            Diagnostic::error(code, message, span, "here")
        } else {
            Diagnostic::warning(code, message, span, "not imported")
        };
        self.push(diagnostic);
    }

    /// Adds a diagnostic as it is.
    pub fn push(&self, diagnostic: Diagnostic) {
        self.sink.borrow_mut().push(diagnostic);
    }
}
