//! Machine-readable renderings of findings, for CI systems and editors: one JSON document,
//! SARIF 2.1.0 for code-scanning upload, and GitHub workflow commands. Positions are
//! 1-based lines and columns counted in characters.

mod github;
mod json;
mod sarif;

pub use github::github;
pub use json::json;
pub use sarif::sarif;

use mesh_lang::diagnostic::LineIndex;

use crate::diag::Finding;
use crate::load::Loaded;

/// A finding with its positions resolved, shared by the renderers.
struct Located<'a> {
    finding: &'a Finding,
    file: &'a str,
    start: (usize, usize),
    end: (usize, usize),
    labels: Vec<(&'a str, (usize, usize))>,
}

fn locate<'a>(loaded: &'a Loaded, findings: &'a [Finding]) -> Vec<Located<'a>> {
    let mut indexes: std::collections::HashMap<_, LineIndex> = std::collections::HashMap::new();
    findings
        .iter()
        .filter_map(|finding| {
            let file = loaded.file(finding.file)?;
            let text = &file.source.text;
            let index = indexes
                .entry(finding.file)
                .or_insert_with(|| LineIndex::new(text));
            let line_col = |offset| index.line_col(text, offset);
            let d = &finding.diagnostic;
            Some(Located {
                finding,
                file: &file.source.name,
                start: line_col(d.span.start),
                end: line_col(d.span.end),
                labels: d
                    .labels
                    .iter()
                    .map(|l| (l.message.as_str(), line_col(l.span.start)))
                    .collect(),
            })
        })
        .collect()
}
