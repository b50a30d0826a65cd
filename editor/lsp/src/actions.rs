//! Code actions for the fixes the checker already knows: a "did you mean `X`?" help line
//! replaces the misspelled name with `X`; a split whose weights do not add up to 100%
//! gets its last weight adjusted.

use std::collections::HashMap;

use mesh_compiler::diag::{Finding, SPLIT_SUM};
use mesh_compiler::load::FileId;
use mesh_lang::ast::{ItemKind, LiteralKind, Percent, RouteMember, RuleMember, Span};
use tower_lsp_server::ls_types::{CodeAction, CodeActionKind, TextEdit, WorkspaceEdit};

use crate::analysis::Analysis;

/// Quick fixes for the findings of `file` that overlap `span`.
pub fn quick_fixes(
    analysis: &Analysis,
    file: FileId,
    span: Span,
    catalog: &str,
) -> Vec<CodeAction> {
    let Some(info) = analysis.file(file) else {
        return Vec::new();
    };
    let Some(uri) = info.uri.clone() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for finding in analysis.checked.findings.iter().filter(|f| {
        f.file == file && f.diagnostic.span.start <= span.end && span.start <= f.diagnostic.span.end
    }) {
        let Some((title, edit_span, replacement)) = fix(analysis, finding) else {
            continue;
        };
        let edit = TextEdit::new(info.lines.range(edit_span), replacement);
        out.push(CodeAction {
            title,
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![crate::diagnostics::convert(
                analysis, finding, catalog,
            )]),
            edit: Some(WorkspaceEdit::new(HashMap::from([(
                uri.clone(),
                vec![edit],
            )]))),
            is_preferred: Some(true),
            ..CodeAction::default()
        });
    }
    out
}

/// The suggested name in a "did you mean `X`?" help line.
pub fn suggestion(help: &str) -> Option<&str> {
    let rest = help.split("did you mean `").nth(1)?;
    let (name, tail) = rest.split_once('`')?;
    tail.starts_with('?').then_some(name)
}

fn fix(analysis: &Analysis, finding: &Finding) -> Option<(String, Span, String)> {
    let d = &finding.diagnostic;
    if let Some(name) = d.help.as_deref().and_then(suggestion) {
        let text = analysis
            .loaded(finding.file)?
            .source
            .text
            .get(d.span.start..d.span.end)?;
        // Only where the span is the one name the suggestion replaces.
        if text.is_empty() || text.contains(char::is_whitespace) || text == name {
            return None;
        }
        return Some((
            format!("Replace `{text}` with `{name}`"),
            d.span,
            name.to_string(),
        ));
    }
    if d.code == SPLIT_SUM {
        return split_fix(analysis, finding.file, d.span);
    }
    None
}

/// Adjusts the last weight of the split at `at` so the weights add up to 100%.
fn split_fix(analysis: &Analysis, file: FileId, at: Span) -> Option<(String, Span, String)> {
    let ast = &analysis.loaded(file)?.ast;
    let mut splits = Vec::new();
    let mut stack: Vec<&mesh_lang::ast::Item> = ast.items.iter().collect();
    while let Some(item) = stack.pop() {
        match &item.kind {
            ItemKind::Namespace(ns) => stack.extend(ns.items.iter()),
            ItemKind::Route(route) => {
                for member in &route.members {
                    if let RouteMember::Rule(rule) = &member.node {
                        for m in &rule.members {
                            if let RuleMember::Split(targets) = &m.node
                                && m.span.start == at.start
                            {
                                splits.push(targets);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let targets = splits.first()?;
    let (last, others) = targets.split_last()?;
    let mut others_sum = 0u64;
    for t in others {
        let LiteralKind::Percent(p) = t.weight.kind else {
            return None;
        };
        others_sum += p.milli;
    }
    let needed = Percent::FULL
        .milli
        .checked_sub(others_sum)
        .filter(|n| *n > 0)?;
    let value = Percent { milli: needed }.to_string();
    Some((
        format!("Set the last weight to {value} so the split adds up to 100%"),
        last.weight.span,
        value,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixes(src: &str) -> Vec<(String, String)> {
        let analysis = Analysis::new(vec![("/x/a.mesh".into(), src.to_string())], "");
        quick_fixes(&analysis, FileId(0), Span::new(0, src.len()), "")
            .into_iter()
            .map(|a| {
                let edits = a.edit.and_then(|e| e.changes).unwrap_or_default();
                let text = edits
                    .values()
                    .flatten()
                    .map(|e| e.new_text.clone())
                    .collect();
                (a.title, text)
            })
            .collect()
    }

    #[test]
    fn a_split_that_misses_100_percent_gets_its_last_weight_fixed() {
        let src = "service s { port http 80 subset a { v = \"a\" } subset b { v = \"b\" } }\n\
                   route s { rule r { split { s.a 70%  s.b 20% } } }\n";
        let got = fixes(src);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, "30%");
    }

    #[test]
    fn a_misspelled_name_is_replaced_by_the_suggestion() {
        let src = "service reviews { port http 80 }\nroute reviews { rule r { to reveiws } }\n";
        let got = fixes(src);
        assert!(
            got.iter()
                .any(|(title, text)| text == "reviews" && title.contains("reveiws")),
            "{got:?}"
        );
    }

    #[test]
    fn suggestions_are_read_from_help_lines() {
        assert_eq!(suggestion("did you mean `reviews`?"), Some("reviews"));
        assert_eq!(suggestion("names resolve in their own namespace"), None);
        assert_eq!(suggestion("did you mean `x` or"), None);
    }
}
