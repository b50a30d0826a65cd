//! Diagnostics for people: miette's graphical report, rustc-like, with each label shown in
//! its own neighbourhood.
//!
//! miette gives a diagnostic one source and draws its labels in snippets with a line of
//! context. Two things made that unfit for large meshes: labels in another file had
//! nowhere to go, and miette 7 merges every label of a source into one snippet from the
//! first to the last (its overlap test adds an absolute line number to a start line), so
//! two labels 3,000 lines apart printed the 3,000 lines between them. Here the labels of a
//! diagnostic are grouped into clusters — labels of one file at most [`GAP`] lines apart —
//! and each cluster is laid out in its own region of one virtual source: region `i` holds
//! the cluster's whole file at offsets `base_i..base_i + len`. miette reads each region
//! as that file (its name, its line numbers), and can never merge two clusters, since no
//! span crosses from one region into the next. The cluster of the primary label comes
//! first, then the others of its file, then other files.
//!
//! Columns in snippet headers (`file:line:col`) count characters, not bytes.

use std::collections::HashMap;
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};

use crate::ast::Span;
use crate::diagnostic::{Diagnostic, FileId, Severity, SourceFile};
use crate::lines::LineIndex;

/// Labels more than this many lines apart are shown in separate snippets.
pub const GAP: usize = 3;

/// Renders one file's diagnostics as plain text (no colour) at a fixed width: for
/// snapshots, logs and terminals that are not TTYs. Labels must be in that file (syntax
/// errors); see [`render_with`].
pub fn render_plain(diagnostics: &[Diagnostic], source: &SourceFile, width: usize) -> String {
    render_with(
        diagnostics,
        source,
        &GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(width),
    )
}

/// Renders one file's diagnostics with the given miette handler. A label that names
/// another file (which this function cannot read) is listed after its diagnostic as a
/// note; [`render_files`] shows it in its file.
pub fn render_with(
    diagnostics: &[Diagnostic],
    source: &SourceFile,
    handler: &GraphicalReportHandler,
) -> String {
    const ONLY: FileId = FileId(u32::MAX);
    let pairs: Vec<(FileId, &Diagnostic)> = diagnostics.iter().map(|d| (ONLY, d)).collect();
    render_files(&pairs, &|id| (id == ONLY).then_some(source), handler)
}

/// Renders diagnostics of any files of a mesh: each with the file it is about, `sources`
/// giving the text of that file and of every file a label points into.
pub fn render_files<'a>(
    diagnostics: &[(FileId, &Diagnostic)],
    sources: &dyn Fn(FileId) -> Option<&'a SourceFile>,
    handler: &GraphicalReportHandler,
) -> String {
    let mut out = String::new();
    let mut indexed: HashMap<FileId, Option<Arc<IndexedSource>>> = HashMap::new();
    let mut index = |id: FileId| -> Option<Arc<IndexedSource>> {
        indexed
            .entry(id)
            .or_insert_with(|| sources(id).map(|s| Arc::new(IndexedSource::new(s))))
            .clone()
    };
    for (file, diagnostic) in diagnostics {
        let Some(own) = index(*file) else {
            out.push_str(&format!("{}: {}\n", diagnostic.code, diagnostic.message));
            continue;
        };
        let (report, notes) = Report::new(diagnostic, *file, own, &mut index);
        if handler.render_report(&mut out, &report).is_err() {
            out.push_str(&format!("{}: {}\n", diagnostic.code, diagnostic.message));
        }
        for note in notes {
            out.push_str(&format!("  note: {note} (in a file that is not loaded)\n"));
        }
    }
    out
}

/// A label on its way into a cluster.
struct Placed {
    file: FileId,
    span: Span,
    text: Option<String>,
    primary: bool,
    /// Its first and last line (0-based).
    lines: (usize, usize),
}

/// A diagnostic laid out for miette: its clusters as regions of one source.
#[derive(Debug)]
struct Report {
    diagnostic: Diagnostic,
    source: Regions,
    labels: Vec<LabeledSpan>,
}

impl Report {
    /// Lays out `diagnostic` (about `file`, read as `own`); labels in files `index` cannot
    /// read are returned as notes.
    fn new(
        diagnostic: &Diagnostic,
        file: FileId,
        own: Arc<IndexedSource>,
        index: &mut dyn FnMut(FileId) -> Option<Arc<IndexedSource>>,
    ) -> (Report, Vec<String>) {
        let place = |file: FileId, source: &IndexedSource, span: Span, text, primary| Placed {
            file,
            span,
            text,
            primary,
            lines: (source.lines.line(span.start), source.lines.line(span.end)),
        };
        let mut sources: Vec<(FileId, Arc<IndexedSource>)> = vec![(file, Arc::clone(&own))];
        let mut placed = vec![place(
            file,
            &own,
            diagnostic.span,
            (!diagnostic.label.is_empty()).then(|| diagnostic.label.clone()),
            true,
        )];
        let mut notes = Vec::new();
        for label in &diagnostic.labels {
            let in_file = label.file.unwrap_or(file);
            let source = match sources.iter().find(|(id, _)| *id == in_file) {
                Some((_, s)) => Some(Arc::clone(s)),
                None => index(in_file).inspect(|s| sources.push((in_file, Arc::clone(s)))),
            };
            match source {
                Some(source) => placed.push(place(
                    in_file,
                    &source,
                    label.span,
                    Some(label.message.clone()),
                    false,
                )),
                None => notes.push(label.message.clone()),
            }
        }
        // The primary's file first, then the others in file order; by position inside.
        placed.sort_by_key(|p| (p.file != file, p.file, p.span.start, !p.primary));
        let mut clusters: Vec<Vec<Placed>> = Vec::new();
        for p in placed {
            match clusters.last_mut() {
                Some(cluster)
                    if cluster.first().is_some_and(|c| c.file == p.file)
                        && cluster
                            .iter()
                            .map(|c| c.lines.1)
                            .max()
                            .is_some_and(|end| p.lines.0 <= end + GAP) =>
                {
                    cluster.push(p);
                }
                _ => clusters.push(vec![p]),
            }
        }
        if let Some(primary) = clusters.iter().position(|c| c.iter().any(|p| p.primary)) {
            let cluster = clusters.remove(primary);
            clusters.insert(0, cluster);
        }
        let mut regions = Vec::new();
        let mut labels = Vec::new();
        let mut base = 0;
        for cluster in clusters {
            let Some(file) = cluster.first().map(|p| p.file) else {
                continue;
            };
            let Some((_, source)) = sources.iter().find(|(id, _)| *id == file) else {
                continue;
            };
            for p in cluster {
                let span = SourceSpan::new((base + p.span.start).into(), p.span.len());
                labels.push(if p.primary {
                    LabeledSpan::new_primary_with_span(p.text, span)
                } else {
                    LabeledSpan::new_with_span(p.text, span)
                });
            }
            let len = source.lines.text().len();
            regions.push(Region {
                base,
                source: Arc::clone(source),
            });
            base += len + 1;
        }
        let report = Report {
            diagnostic: diagnostic.clone(),
            source: Regions(regions),
            labels,
        };
        (report, notes)
    }
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

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// One cluster's file, at `base..base + len` of the virtual source.
#[derive(Debug)]
struct Region {
    base: usize,
    source: Arc<IndexedSource>,
}

/// The virtual source of one diagnostic: its regions in order.
#[derive(Debug)]
struct Regions(Vec<Region>);

impl SourceCode for Regions {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let at = self.0.partition_point(|r| r.base <= span.offset());
        let region = at
            .checked_sub(1)
            .and_then(|i| self.0.get(i))
            .ok_or(MietteError::OutOfBounds)?;
        let local = span.offset() - region.base;
        if local + span.len() > region.source.lines.text().len() {
            // Across two clusters: miette asks this when it tries to merge them.
            return Err(MietteError::OutOfBounds);
        }
        let contents = region.source.read(
            &SourceSpan::new(local.into(), span.len()),
            context_lines_before,
            context_lines_after,
            region.base,
        )?;
        Ok(Box::new(contents))
    }
}

/// A named source with its line index. miette's own `read_span` finds a label's lines by
/// scanning the text from its first byte, once per label: on a generated 10,000-service
/// mesh (7.9 MB) rendering a few dozen warnings took a quarter of `meshc compile`. This one
/// jumps to a line boundary shortly before the label and lets miette scan from there,
/// then shifts what it found back to whole-file offsets and line numbers: the same
/// snippet, without the rescan.
#[derive(Clone, Debug)]
struct IndexedSource {
    name: String,
    lines: LineIndex,
}

impl IndexedSource {
    fn new(source: &SourceFile) -> IndexedSource {
        IndexedSource {
            name: source.name.clone(),
            lines: LineIndex::new(Arc::clone(&source.text)),
        }
    }

    /// What miette's `read_span` reads for `span` of this file, with offsets moved by
    /// `base` and a column in characters where miette gives one (no context before).
    fn read(
        &self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
        base: usize,
    ) -> Result<MietteSpanContents<'_>, MietteError> {
        // The span's line, then a start one line before its context, so that miette sees
        // every line it would keep as context.
        let line = self.lines.line(span.offset());
        let skipped = line.saturating_sub(context_lines_before + 1);
        let window_start = self.lines.line_start(skipped).unwrap_or(0);
        let window = self
            .lines
            .text()
            .as_bytes()
            .get(window_start..)
            .ok_or(MietteError::OutOfBounds)?;
        let local = SourceSpan::new(
            span.offset().saturating_sub(window_start).into(),
            span.len(),
        );
        let inner = window.read_span(&local, context_lines_before, context_lines_after)?;
        let column = if context_lines_before == 0 {
            self.lines.line_col(span.offset()).1 - 1
        } else {
            inner.column()
        };
        Ok(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + window_start + base).into(),
                inner.span().len(),
            ),
            inner.line() + skipped,
            column,
            inner.line_count() + skipped,
        ))
    }
}

#[cfg(test)]
mod tests {
    use miette::{SourceCode, SourceSpan, SpanContents};

    use super::{IndexedSource, SourceFile};

    #[test]
    fn the_indexed_source_reads_the_spans_miette_reads_with_character_columns() {
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
                        let ours = indexed.read(&span, before, after, 0);
                        let theirs = text.as_bytes().read_span(&span, before, after);
                        let key = format!("{text:?} {start}+{len} ({before}, {after})");
                        assert_eq!(ours.is_ok(), theirs.is_ok(), "{key}");
                        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                            assert_eq!(ours.data(), theirs.data(), "{key}");
                            assert_eq!(ours.span(), theirs.span(), "{key}");
                            assert_eq!(ours.line(), theirs.line(), "{key}");
                            assert_eq!(ours.line_count(), theirs.line_count(), "{key}");
                            assert_eq!(ours.name(), Some("x.mesh"), "{key}");
                            if before == 0 && text.is_char_boundary(start) {
                                // Characters, as the line index counts them (its own test
                                // checks it against a scan).
                                let column = indexed.lines.line_col(start).1 - 1;
                                assert_eq!(ours.column(), column, "{key}");
                            } else if before > 0 {
                                assert_eq!(ours.column(), theirs.column(), "{key}");
                            }
                        }
                    }
                }
            }
        }
    }
}
