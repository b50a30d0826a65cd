//! Formatting: the `meshc fmt` formatter over the whole document, as one edit. A file with
//! syntax errors is left alone, as `meshc fmt` does.

use tower_lsp_server::ls_types::{Position, Range, TextEdit};

use crate::text::LineIndex;

/// The edit that formats `text`; `None` when it is already formatted or cannot be parsed.
pub fn format(text: &str) -> Option<Vec<TextEdit>> {
    let formatted = mesh_lang::format_source(text).ok()?;
    if formatted == text {
        return Some(Vec::new());
    }
    let end = LineIndex::new(text.into()).position(text.len());
    Some(vec![TextEdit::new(
        Range::new(Position::new(0, 0), end),
        formatted,
    )])
}
