//! `--format json`: one document with every diagnostic and the counts.

use serde::Serialize;

use crate::diag::Finding;
use crate::load::Loaded;

#[derive(Serialize)]
struct Document<'a> {
    diagnostics: Vec<Entry<'a>>,
    errors: usize,
    warnings: usize,
}

#[derive(Serialize)]
struct Entry<'a> {
    code: &'a str,
    severity: mesh_lang::Severity,
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    labels: Vec<LabelEntry<'a>>,
    help: Option<&'a str>,
}

#[derive(Serialize)]
struct LabelEntry<'a> {
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
}

/// The JSON document for `findings`.
pub fn json(loaded: &Loaded, findings: &[Finding]) -> String {
    let located = super::locate(loaded, findings);
    let diagnostics: Vec<Entry<'_>> = located
        .iter()
        .map(|l| {
            let d = &l.finding.diagnostic;
            Entry {
                code: d.code,
                severity: d.severity,
                message: &d.message,
                file: l.file,
                line: l.start.0,
                column: l.start.1,
                end_line: l.end.0,
                end_column: l.end.1,
                labels: std::iter::once((d.label.as_str(), l.file, l.start))
                    .filter(|(m, _, _)| !m.is_empty())
                    .chain(l.labels.iter().copied())
                    .map(|(message, file, (line, column))| LabelEntry {
                        message,
                        file,
                        line,
                        column,
                    })
                    .collect(),
                help: d.help.as_deref(),
            }
        })
        .collect();
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let document = Document {
        errors,
        warnings: findings.len() - errors,
        diagnostics,
    };
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}
