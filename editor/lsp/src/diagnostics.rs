//! Compiler findings as protocol diagnostics: code, severity, message (with the help line),
//! the primary label, the secondary labels as related information (each with its own
//! file's URI), and a link to the code's entry in the diagnostic catalog.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mesh_compiler::diag::CATALOG;
use mesh_compiler::diag::Finding;
use mesh_lang::Severity;
use tower_lsp_server::ls_types::{
    CodeDescription, Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location,
    NumberOrString, Uri,
};

use crate::analysis::Analysis;

/// The diagnostic catalog of the source tree this server was built from; clients may
/// point elsewhere with the `catalogUrl` initialization option (a published copy).
pub const DEFAULT_CATALOG: &str = concat!(
    "file://",
    env!("CARGO_MANIFEST_DIR"),
    "/../../compiler/DIAGNOSTICS.md"
);

/// The `source` field of every diagnostic.
pub const SOURCE: &str = "meshc";

/// Every file's diagnostics (empty lists for clean files), keyed by path.
pub fn for_analysis(analysis: &Analysis, catalog: &str) -> BTreeMap<PathBuf, Vec<Diagnostic>> {
    let mut out: BTreeMap<PathBuf, Vec<Diagnostic>> = analysis
        .files
        .iter()
        .filter_map(|f| f.path.clone())
        .map(|p| (p, Vec::new()))
        .collect();
    for finding in &analysis.checked.findings {
        let Some(path) = analysis.file(finding.file).and_then(|f| f.path.clone()) else {
            continue;
        };
        if let Some(list) = out.get_mut(&path) {
            list.push(convert(analysis, finding, catalog));
        }
    }
    out
}

/// The link to `code`'s entry in the catalog at `catalog`: the anchor Markdown renderers
/// give its `## CODE title` heading.
pub fn catalog_link(catalog: &str, code: &str) -> Option<Uri> {
    let title = CATALOG.iter().find(|(c, _, _)| *c == code)?.1;
    let heading = format!("{code} {title}");
    let anchor: String = heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect();
    format!("{catalog}#{anchor}").parse().ok()
}

/// One finding as a protocol diagnostic.
pub fn convert(analysis: &Analysis, finding: &Finding, catalog: &str) -> Diagnostic {
    let d = &finding.diagnostic;
    let Some(file) = analysis.file(finding.file) else {
        return Diagnostic::default();
    };
    let mut message = d.message.clone();
    if !d.label.is_empty() && d.label != d.message {
        message.push_str(&format!(" ({})", d.label));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    // Each label in its own file; labels in bundled `std/` files have no URI to point at.
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter_map(|label| {
            let info = analysis.file(label.file.unwrap_or(finding.file))?;
            Some(DiagnosticRelatedInformation {
                location: Location::new(info.uri.clone()?, info.lines.range(label.span)),
                message: label.message.clone(),
            })
        })
        .collect();
    Diagnostic {
        range: file.lines.range(d.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: catalog_link(catalog, d.code).map(|href| CodeDescription { href }),
        source: Some(SOURCE.to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_links_point_at_the_heading_anchor() {
        let link = catalog_link("https://example.org/DIAGNOSTICS.md", "E0005")
            .map(|u| u.as_str().to_string());
        assert_eq!(
            link.as_deref(),
            Some("https://example.org/DIAGNOSTICS.md#e0005-split-weights-do-not-add-up-to-100")
        );
        let w6 = catalog_link("https://example.org/D.md", "W0006").map(|u| u.as_str().to_string());
        assert_eq!(
            w6.as_deref(),
            Some("https://example.org/D.md#w0006-allow-from-any-under-mtls-strict")
        );
        assert!(catalog_link(DEFAULT_CATALOG, "E0001").is_some());
        assert!(catalog_link(DEFAULT_CATALOG, "X9999").is_none());
    }
}
