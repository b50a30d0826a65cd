//! The one diagnostic type of the toolchain.
//!
//! Syntax errors from this crate and every semantic error and lint of the compiler are
//! [`Diagnostic`]s: a stable code, a severity, a primary span with a label, secondary
//! labels (in the same file or another) and a help line. `crate::render` shows them
//! through miette like rustc does; the compiler serializes them for tools.

use std::sync::Arc;

use serde::Serialize;

use crate::ast::Span;
use crate::lines::LineIndex;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops compilation.
    Error,
    /// Worth a look; fails `meshc check` only with `--deny-warnings`.
    Warning,
}

/// Which file of a mesh: the index the compiler's loader gives each file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FileId(pub u32);

/// A secondary label: a related span and what it shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    /// The file of `span`; `None` for the diagnostic's own file.
    pub file: Option<FileId>,
    /// The related code.
    pub span: Span,
    /// What it has to do with the diagnostic.
    pub message: String,
}

/// A finding about a `.mesh` file, in that file's coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code from `compiler/DIAGNOSTICS.md` (`E0001`, `W0003`, …).
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One sentence saying what is wrong.
    pub message: String,
    /// The code the diagnostic is about.
    pub span: Span,
    /// The label shown at `span`.
    pub label: String,
    /// Other relevant places.
    pub labels: Vec<Label>,
    /// How to fix it, when that can be said.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with `code`, `message` and a primary `label` at `span`.
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Self {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: label.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    /// A warning with `code`, `message` and a primary `label` at `span`.
    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message, span, label)
        }
    }

    /// Adds a secondary label in the diagnostic's own file.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            file: None,
            span,
            message: message.into(),
        });
        self
    }

    /// Adds a secondary label at `span` of `file`, which may be the diagnostic's own
    /// file or another.
    pub fn with_label_in(mut self, file: FileId, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            file: Some(file),
            span,
            message: message.into(),
        });
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A named source text (a file path, or `std/retry` for bundled files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The name shown in diagnostics.
    pub name: String,
    /// The file's contents.
    pub text: Arc<str>,
}

impl SourceFile {
    /// A source called `name` holding `text`.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`. Indexes the text on
    /// every call: for many offsets, build a [`LineIndex`] once.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        LineIndex::new(Arc::clone(&self.text)).line_col(offset)
    }
}
