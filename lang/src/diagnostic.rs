//! The one diagnostic type of the toolchain, and its rendering.
//!
//! Syntax errors from this crate and every semantic error and lint of the compiler are
//! [`Diagnostic`]s: a stable code, a severity, a primary span with a label, secondary
//! labels and a help line. They render through miette like rustc's (graphical, with or
//! without colour) and serialize for tools.

use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
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
        self.with_indexed_source(&IndexedSource::new(source))
    }

    fn with_indexed_source(&self, source: &IndexedSource) -> Report {
        Report {
            diagnostic: self.clone(),
            source: source.clone(),
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

/// A named source with the starts of its lines, as miette counts lines (after `\n`,
/// `\r\n` or a lone `\r`). miette's own `read_span` finds a label's lines by scanning
/// the text from its first byte, once per label: on a generated 10,000-service mesh
/// (7.9 MB) rendering a few dozen warnings took a quarter of `meshc compile`. This one
/// jumps to a line boundary shortly before the label and lets miette scan from there,
/// then shifts what it found back to whole-file offsets and line numbers: the same
/// snippet, without the rescan.
#[derive(Clone, Debug)]
struct IndexedSource {
    name: String,
    text: Arc<str>,
    /// Byte offsets at which a line starts, except the first line's 0.
    starts: Arc<[usize]>,
}

impl IndexedSource {
    fn new(source: &SourceFile) -> IndexedSource {
        let bytes = source.text.as_bytes();
        let mut starts = Vec::new();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            if b == b'\r' || b == b'\n' {
                starts.push(i + 1);
            }
            i += 1;
        }
        IndexedSource {
            name: source.name.clone(),
            text: Arc::clone(&source.text),
            starts: starts.into(),
        }
    }
}

impl SourceCode for IndexedSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // The span's line (0-based), then a start one line before its context, so that
        // miette sees every line it would keep as context.
        let line = self.starts.partition_point(|&start| start <= span.offset());
        let skipped = line.saturating_sub(context_lines_before + 1);
        let window_start = match skipped.checked_sub(1) {
            Some(i) => self.starts.get(i).copied().unwrap_or(0),
            None => 0,
        };
        let window = self
            .text
            .as_bytes()
            .get(window_start..)
            .ok_or(MietteError::OutOfBounds)?;
        let local = SourceSpan::new(
            span.offset().saturating_sub(window_start).into(),
            span.len(),
        );
        let inner = window.read_span(&local, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + window_start).into(),
                inner.span().len(),
            ),
            inner.line() + skipped,
            inner.column(),
            inner.line_count() + skipped,
        )))
    }
}

/// A diagnostic with its source: what miette renders.
#[derive(Debug)]
pub struct Report {
    diagnostic: Diagnostic,
    source: IndexedSource,
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
    let source = IndexedSource::new(source);
    for diagnostic in diagnostics {
        let report = diagnostic.with_indexed_source(&source);
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{}: {}\n", diagnostic.code, diagnostic.message));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use miette::{SourceCode, SourceSpan};

    use super::{IndexedSource, LineIndex, SourceFile, line_col};

    #[test]
    fn the_indexed_source_reads_the_spans_miette_reads() {
        for text in [
            "",
            "a",
            "one\ntwo\nthree\nfour\nfive\nsix\n",
            "a\r\nb\rc\n\nd\r\n\r\ne f g\nh",
            "service café {\n  port 8080\n}\n\nrouté ñ\n\n\n",
        ] {
            let source = SourceFile::new("x.mesh", text);
            let indexed = IndexedSource::new(&source);
            for start in 0..=text.len() {
                for len in 0..=(text.len() - start).min(12) {
                    for (before, after) in [(0, 0), (1, 1), (2, 3), (0, 2), (3, 0)] {
                        let span = SourceSpan::new(start.into(), len);
                        let ours = indexed.read_span(&span, before, after);
                        let theirs = text.as_bytes().read_span(&span, before, after);
                        let key = format!("{text:?} {start}+{len} ({before}, {after})");
                        assert_eq!(ours.is_ok(), theirs.is_ok(), "{key}");
                        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                            assert_eq!(ours.data(), theirs.data(), "{key}");
                            assert_eq!(ours.span(), theirs.span(), "{key}");
                            assert_eq!(ours.line(), theirs.line(), "{key}");
                            assert_eq!(ours.column(), theirs.column(), "{key}");
                            assert_eq!(ours.line_count(), theirs.line_count(), "{key}");
                            assert_eq!(ours.name(), Some("x.mesh"), "{key}");
                        }
                    }
                }
            }
        }
    }

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
