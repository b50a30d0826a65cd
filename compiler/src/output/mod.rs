//! Machine-readable renderings of findings, for CI systems and editors: one JSON document,
//! SARIF 2.1.0 for code-scanning upload, and GitHub workflow commands. Positions are
//! 1-based lines and columns counted in characters; secondary labels name their own file
//! (JSON `labels[].file`, SARIF `relatedLocations`).

mod github;
mod json;
mod sarif;

pub use github::github;
pub use json::json;
pub use sarif::sarif;

use std::collections::HashMap;

use mesh_lang::{FileId, LineIndex};

use crate::diag::Finding;
use crate::load::Loaded;

/// A finding with its positions resolved, shared by the renderers.
struct Located<'a> {
    finding: &'a Finding,
    file: &'a str,
    start: (usize, usize),
    end: (usize, usize),
    /// Each secondary label: its text, the file it points into and its start.
    labels: Vec<(&'a str, &'a str, (usize, usize))>,
}

fn locate<'a>(loaded: &'a Loaded, findings: &'a [Finding]) -> Vec<Located<'a>> {
    let mut indexes: HashMap<FileId, LineIndex> = HashMap::new();
    let mut line_col = |file: FileId, offset: usize| -> Option<(&'a str, (usize, usize))> {
        let loaded = loaded.file(file)?;
        let index = indexes
            .entry(file)
            .or_insert_with(|| LineIndex::new(loaded.source.text.clone()));
        Some((loaded.source.name.as_str(), index.line_col(offset)))
    };
    findings
        .iter()
        .filter_map(|finding| {
            let d = &finding.diagnostic;
            let (file, start) = line_col(finding.file, d.span.start)?;
            let (_, end) = line_col(finding.file, d.span.end)?;
            let labels = d
                .labels
                .iter()
                .filter_map(|l| {
                    let (file, at) = line_col(l.file.unwrap_or(finding.file), l.span.start)?;
                    Some((l.message.as_str(), file, at))
                })
                .collect();
            Some(Located {
                finding,
                file,
                start,
                end,
                labels,
            })
        })
        .collect()
}
