//! The one diagnostic type of the toolchain, and its rendering.
//!
//! Syntax errors from this crate and every semantic error and lint of the compiler are
//! [`Diagnostic`]s: a stable code, a severity, a primary span with a label, secondary
//! labels and a help line. They render through miette like rustc's (graphical, with or
//! without colour) and serialize for tools.

use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

use crate::ast::Span;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops compilation.
    Error,
    /// Worth a look; fails `meshc check` only with `--deny-warnings`.
    Warning,
}

/// A secondary label: a related span and what it shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
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

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
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

    /// Pairs the diagnostic with its source so miette can render it.
    pub fn with_source(&self, source: &SourceFile) -> Report {
        Report {
            diagnostic: self.clone(),
            source: NamedSource::new(source.name.clone(), Arc::clone(&source.text)),
        }
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

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// The line starts of one text, so that many offsets can be turned into line and column
/// without rescanning the text from its start for each (`line_col` is linear in the
/// offset; this is logarithmic).
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// Byte offsets of the first byte of each line.
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        LineIndex { starts }
    }

    /// What [`line_col`] answers for `offset` in `text` (the text this index was built
    /// from).
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = text.get(start..offset).unwrap_or_default().chars().count() + 1;
        (line, column)
    }
}

/// A diagnostic with its source: what miette renders.
#[derive(Debug)]
pub struct Report {
    diagnostic: Diagnostic,
    source: NamedSource<Arc<str>>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let d = &self.diagnostic;
        let primary = LabeledSpan::new_primary_with_span(
            (!d.label.is_empty()).then(|| d.label.clone()),
            d.span,
        );
        let secondary = d
            .labels
            .iter()
            .map(|l| LabeledSpan::new_with_span(Some(l.message.clone()), l.span));
        Some(Box::new(std::iter::once(primary).chain(secondary)))
    }
}

/// Renders diagnostics as plain text (no colour) at a fixed width: for snapshots, logs
/// and terminals that are not TTYs.
pub fn render_plain(diagnostics: &[Diagnostic], source: &SourceFile, width: usize) -> String {
    render_with(
        diagnostics,
        source,
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(width),
    )
}

/// Renders diagnostics with the given miette handler.
pub fn render_with(
    diagnostics: &[Diagnostic],
    source: &SourceFile,
    handler: GraphicalReportHandler,
) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = diagnostic.with_source(source);
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{}: {}\n", diagnostic.code, diagnostic.message));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{LineIndex, line_col};

    #[test]
    fn the_line_index_agrees_with_line_col_at_every_offset() {
        for text in [
            "",
            "\n",
            "a",
            "service café {\r\n  port 8080\n}\n\nrouté ñ\n",
            "\n\nx",
        ] {
            let index = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(
                    index.line_col(text, offset),
                    line_col(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }
}
