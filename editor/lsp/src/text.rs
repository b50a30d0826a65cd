//! Positions: the compiler speaks byte offsets into UTF-8 text, the protocol speaks
//! (line, UTF-16 code unit) pairs. [`LineIndex`] puts the protocol's types on the
//! toolchain's one line index (`mesh_lang::LineIndex`), which does the counting and
//! clamps out-of-range input instead of failing, since clients may send stale positions.

use mesh_lang::ast::Span;
use tower_lsp_server::ls_types::{Position, Range};

/// Offset ↔ position conversion for one text.
#[derive(Clone, Debug)]
pub struct LineIndex(mesh_lang::LineIndex);

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: std::sync::Arc<str>) -> Self {
        Self(mesh_lang::LineIndex::new(text))
    }

    /// The indexed text.
    pub fn text(&self) -> &str {
        self.0.text()
    }

    /// The protocol position of byte `offset` (clamped to the text, moved back to a
    /// character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let (line, character) = self.0.utf16(offset);
        Position::new(line, character)
    }

    /// The protocol range of a byte span.
    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end))
    }

    /// The byte offset of a protocol position. A character past the end of its line
    /// means the end of the line; a line past the end means the end of the text; a
    /// position inside a surrogate pair means the character's start.
    pub fn offset(&self, position: Position) -> usize {
        self.0.offset_of_utf16(position.line, position.character)
    }

    /// The byte span of a protocol range.
    pub fn span(&self, range: Range) -> Span {
        let start = self.offset(range.start);
        let end = self.offset(range.end);
        Span::new(start.min(end), start.max(end))
    }
}

/// Applies an incremental change (`range` replaced by `new_text`) to `text`.
pub fn apply_change(text: &str, range: Range, new_text: &str) -> String {
    let index = LineIndex::new(text.into());
    let span = index.span(range);
    let mut out = String::with_capacity(text.len() + new_text.len());
    out.push_str(text.get(..span.start).unwrap_or_default());
    out.push_str(new_text);
    out.push_str(text.get(span.end..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_code_units() {
        // `é` is 2 bytes and 1 unit, `🦀` 4 bytes and 2 units.
        let text = "// é🦀\nservice x {}\n";
        let index = LineIndex::new(text.into());
        let x = text.find('x').unwrap_or_default();
        assert_eq!(index.position(x), Position::new(1, 8));
        let after_crab = text.find('\n').unwrap_or_default();
        assert_eq!(index.position(after_crab), Position::new(0, 6));
        assert_eq!(index.offset(Position::new(0, 6)), after_crab);
        assert_eq!(index.offset(Position::new(1, 8)), x);
        // Inside the surrogate pair: the crab's start.
        assert_eq!(
            index.offset(Position::new(0, 5)),
            text.find('🦀').unwrap_or_default()
        );
    }

    #[test]
    fn out_of_range_positions_are_clamped() {
        let text = "ab\ncd";
        let index = LineIndex::new(text.into());
        assert_eq!(index.offset(Position::new(0, 99)), 2);
        assert_eq!(index.offset(Position::new(9, 0)), text.len());
        assert_eq!(index.position(999), Position::new(1, 2));
    }

    #[test]
    fn incremental_changes_splice_by_utf16_range() {
        let text = "é = 1\nx";
        let changed = apply_change(
            text,
            Range::new(Position::new(0, 1), Position::new(0, 3)),
            ":",
        );
        assert_eq!(changed, "é: 1\nx");
    }
}
