//! Hover: for a symbol, its one-line signature and `///` docs; for a literal, its type and
//! value; for a request attribute such as `header("x")`, what it reads and what the
//! condition matches; for a `route` or `policy` block, its summary.

use mesh_compiler::load::FileId;
use tower_lsp_server::ls_types::{Hover, HoverContents, MarkupContent, MarkupKind};

use crate::analysis::Analysis;
use crate::index::{Symbol, hover_block};

/// The hover at `offset`, if there is something to say.
pub fn hover(analysis: &Analysis, file: FileId, offset: usize) -> Option<Hover> {
    let lines = &analysis.file(file)?.lines;
    if let Some(occurrence) = analysis.index.at(file, offset) {
        let text = match &occurrence.symbol {
            Symbol::File(target) => {
                let name = &analysis.loaded(*target)?.source.name;
                format!("```mesh\nimport \"{name}\"\n```")
            }
            symbol => {
                let def = analysis.index.definitions.get(symbol)?;
                let mut text = hover_block(&def.signature, def.doc.as_deref());
                if def.is_std {
                    text.push_str("\n\n*bundled standard library*");
                }
                text
            }
        };
        return Some(markdown(text, lines.range(occurrence.span)));
    }
    let site = analysis.index.site_at(file, offset)?;
    Some(markdown(site.text.clone(), lines.range(site.span)))
}

fn markdown(value: String, range: tower_lsp_server::ls_types::Range) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(range),
    }
}
