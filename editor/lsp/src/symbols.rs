//! The outline of a file (document symbols, nested: namespaces hold items, services their
//! subsets, routes their rules) and the workspace-wide symbol search.

use mesh_compiler::load::FileId;
use mesh_lang::ast::{GatewayMember, Item, ItemKind, RouteMember, ServiceMember, Span, TestCase};
use tower_lsp_server::ls_types::{DocumentSymbol, Location, OneOf, SymbolKind, WorkspaceSymbol};

use crate::analysis::Analysis;
use crate::index::Symbol;
use crate::text::LineIndex;

/// The outline of `file`.
pub fn document_symbols(analysis: &Analysis, file: FileId) -> Vec<DocumentSymbol> {
    let (Some(loaded), Some(info)) = (analysis.loaded(file), analysis.file(file)) else {
        return Vec::new();
    };
    loaded
        .ast
        .items
        .iter()
        .filter_map(|item| item_symbol(item, &info.lines))
        .collect()
}

#[allow(
    deprecated,
    reason = "DocumentSymbol::deprecated must still be written"
)]
fn symbol(
    name: String,
    detail: Option<String>,
    kind: SymbolKind,
    span: Span,
    name_span: Span,
    lines: &LineIndex,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    // The selection range must lie inside the range, even for recovered nodes.
    let span = span.to(name_span);
    DocumentSymbol {
        name: if name.is_empty() { "?".into() } else { name },
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: lines.range(span),
        selection_range: lines.range(name_span),
        children: (!children.is_empty()).then_some(children),
    }
}

fn item_symbol(item: &Item, lines: &LineIndex) -> Option<DocumentSymbol> {
    Some(match &item.kind {
        ItemKind::Mesh(m) => symbol(
            m.name.name.clone(),
            Some("mesh".into()),
            SymbolKind::PACKAGE,
            item.span,
            m.name.span,
            lines,
            Vec::new(),
        ),
        ItemKind::Import(path) => symbol(
            path.value.clone(),
            Some("import".into()),
            SymbolKind::FILE,
            item.span,
            path.span,
            lines,
            Vec::new(),
        ),
        ItemKind::Namespace(ns) => symbol(
            ns.name.name.clone(),
            Some("namespace".into()),
            SymbolKind::NAMESPACE,
            item.span,
            ns.name.span,
            lines,
            ns.items
                .iter()
                .filter_map(|i| item_symbol(i, lines))
                .collect(),
        ),
        ItemKind::Service(s) => {
            let subsets = s
                .members
                .iter()
                .filter_map(|m| match &m.node {
                    ServiceMember::Subset(sub) => Some(symbol(
                        sub.name.name.clone(),
                        Some("subset".into()),
                        SymbolKind::ENUM_MEMBER,
                        m.span,
                        sub.name.span,
                        lines,
                        Vec::new(),
                    )),
                    _ => None,
                })
                .collect();
            symbol(
                s.name.name.clone(),
                Some("service".into()),
                SymbolKind::CLASS,
                item.span,
                s.name.span,
                lines,
                subsets,
            )
        }
        ItemKind::Retry(r) => symbol(
            r.name.name.clone(),
            Some("retry profile".into()),
            SymbolKind::FUNCTION,
            item.span,
            r.name.span,
            lines,
            Vec::new(),
        ),
        ItemKind::Route(r) => {
            let rules = r
                .members
                .iter()
                .filter_map(|m| match &m.node {
                    RouteMember::Rule(rule) => Some(symbol(
                        rule.name.name.clone(),
                        Some("rule".into()),
                        SymbolKind::METHOD,
                        m.span,
                        rule.name.span,
                        lines,
                        Vec::new(),
                    )),
                    _ => None,
                })
                .collect();
            symbol(
                format!("route {}", r.service.name.name),
                Some("route".into()),
                SymbolKind::INTERFACE,
                item.span,
                r.service.span,
                lines,
                rules,
            )
        }
        ItemKind::Policy(p) => symbol(
            format!("policy {}", p.service.name.name),
            Some("policy".into()),
            SymbolKind::OBJECT,
            item.span,
            p.service.span,
            lines,
            Vec::new(),
        ),
        ItemKind::Test(t) => {
            let cases = t
                .cases
                .iter()
                .filter(|c| matches!(c.node, TestCase::Case { .. } | TestCase::Connect { .. }))
                .count();
            symbol(
                t.name.value.clone(),
                Some(format!(
                    "test, {cases} case{}",
                    if cases == 1 { "" } else { "s" }
                )),
                SymbolKind::EVENT,
                item.span,
                t.name.span,
                lines,
                Vec::new(),
            )
        }
        ItemKind::Gateway(g) => {
            let hosts = g
                .members
                .iter()
                .filter_map(|m| match &m.node {
                    GatewayMember::Host(host) => Some(symbol(
                        host.name.value.clone(),
                        Some("host".into()),
                        SymbolKind::FIELD,
                        m.span,
                        host.name.span,
                        lines,
                        Vec::new(),
                    )),
                    _ => None,
                })
                .collect();
            symbol(
                g.name.name.clone(),
                Some("gateway".into()),
                SymbolKind::MODULE,
                item.span,
                g.name.span,
                lines,
                hosts,
            )
        }
        ItemKind::Error => return None,
    })
}

/// Whether `query` matches `name`: its characters appear in order, ignoring case.
pub fn fuzzy_match(query: &str, name: &str) -> bool {
    let mut chars = name.chars().flat_map(char::to_lowercase);
    query
        .chars()
        .flat_map(char::to_lowercase)
        .all(|q| chars.any(|c| c == q))
}

/// Every definition of the analysis whose name matches `query`.
pub fn workspace_symbols(analysis: &Analysis, query: &str) -> Vec<WorkspaceSymbol> {
    let mut out: Vec<WorkspaceSymbol> = analysis
        .index
        .definitions
        .iter()
        .filter(|(symbol, def)| !def.is_std && fuzzy_match(query, symbol.name()))
        .filter_map(|(symbol, def)| {
            let info = analysis.file(def.file)?;
            let (kind, container) = match symbol {
                Symbol::Namespace(_) => (SymbolKind::NAMESPACE, None),
                Symbol::Service(ns, _) | Symbol::Retry(ns, _) => (
                    if matches!(symbol, Symbol::Service(..)) {
                        SymbolKind::CLASS
                    } else {
                        SymbolKind::FUNCTION
                    },
                    Some(ns.clone()),
                ),
                Symbol::Subset(ns, service, _) => {
                    (SymbolKind::ENUM_MEMBER, Some(format!("{ns}/{service}")))
                }
                Symbol::Rule(ns, service, _) => {
                    (SymbolKind::METHOD, Some(format!("route {ns}/{service}")))
                }
                Symbol::File(_) => return None,
            };
            Some(WorkspaceSymbol {
                name: symbol.name().to_string(),
                kind,
                tags: None,
                container_name: container,
                location: OneOf::Left(Location::new(
                    info.uri.clone()?,
                    info.lines.range(def.name_span),
                )),
                data: None,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.container_name, &a.name).cmp(&(&b.container_name, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::fuzzy_match;

    #[test]
    fn fuzzy_matching_is_ordered_and_case_insensitive() {
        assert!(fuzzy_match("rvw", "reviews"));
        assert!(fuzzy_match("", "reviews"));
        assert!(fuzzy_match("REV", "reviews"));
        assert!(!fuzzy_match("wer", "reviews"));
    }
}
