//! The one line index of the toolchain. The compiler speaks byte offsets into UTF-8 text;
//! people read 1-based lines and columns counted in characters (human output, JSON,
//! SARIF, GitHub annotations), and editors speak 0-based lines and UTF-16 code units
//! (the language server protocol). A [`LineIndex`] answers both for one text, in
//! logarithmic time per offset, and converts editor positions back to offsets.
//!
//! Lines end at `\n`, `\r\n` or a lone `\r`, as the protocol and miette's snippets count
//! them. Out-of-range input is clamped, never an error: editors send stale positions.

use std::sync::Arc;

/// The starts of the lines of one text, and the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineIndex {
    text: Arc<str>,
    /// Byte offset of the first byte of each line; the first is 0.
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: impl Into<Arc<str>>) -> LineIndex {
        let text = text.into();
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            if b == b'\r' || b == b'\n' {
                starts.push(i + 1);
            }
            i += 1;
        }
        LineIndex { text, starts }
    }

    /// The indexed text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The indexed text, shared.
    pub fn shared_text(&self) -> &Arc<str> {
        &self.text
    }

    /// `offset` clamped to the text and moved back to a character boundary.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The 0-based line of byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }

    /// The byte offset at which 0-based `line` starts, if the text has that line.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        self.starts.get(line).copied()
    }

    /// The text of 0-based `line` before its line break (empty past the last line).
    fn line_text(&self, line: usize) -> (usize, &str) {
        let Some(start) = self.line_start(line) else {
            return (self.text.len(), "");
        };
        let end = self.line_start(line + 1).unwrap_or(self.text.len());
        let text = self.text.get(start..end).unwrap_or_default();
        let text = text.strip_suffix('\n').unwrap_or(text);
        (start, text.strip_suffix('\r').unwrap_or(text))
    }

    /// 1-based line and column of byte `offset`, the column counted in characters.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let line = self.line(offset);
        let start = self.line_start(line).unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .unwrap_or_default()
            .chars()
            .count();
        (line + 1, column + 1)
    }

    /// 0-based line and column of byte `offset`, the column counted in UTF-16 code units
    /// (the language server protocol's default position encoding).
    pub fn utf16(&self, offset: usize) -> (u32, u32) {
        let offset = self.clamp(offset);
        let line = self.line(offset);
        let start = self.line_start(line).unwrap_or(0);
        let units = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.encode_utf16().count());
        (saturate(line), saturate(units))
    }

    /// The byte offset of 0-based `line` and UTF-16 `character`. A character past the end
    /// of its line means the end of the line (before its line break); a line past the end
    /// means the end of the text; a position inside a surrogate pair means the
    /// character's start.
    pub fn offset_of_utf16(&self, line: u32, character: u32) -> usize {
        let line = line as usize;
        if line >= self.starts.len() {
            return self.text.len();
        }
        let (start, text) = self.line_text(line);
        let mut units = 0usize;
        for (i, c) in text.char_indices() {
            let next = units + c.len_utf16();
            if next > character as usize {
                return start + i;
            }
            units = next;
        }
        start + text.len()
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    /// Line and character column by scanning from the start: what the index must agree
    /// with.
    fn scan(text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (mut line, mut column) = (1, 1);
        for (i, c) in text.get(..offset).unwrap_or_default().char_indices() {
            // The `\r` of a `\r\n` is part of its line; the `\n` ends it.
            if c == '\r' && text.get(i + 1..i + 2) == Some("\n") {
                column += 1;
                continue;
            }
            if c == '\n' || c == '\r' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        (line, column)
    }

    #[test]
    fn lines_and_character_columns_agree_with_a_scan_at_every_offset() {
        for text in [
            "",
            "\n",
            "a",
            "service café {\r\n  port 8080\n}\n\nrouté ñ\n",
            "\n\nx",
            "a\rb\r\n\rc",
        ] {
            let index = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(
                    index.line_col(offset),
                    scan(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn utf16_columns_count_code_units_and_convert_back() {
        // `é` is 2 bytes and 1 unit, `🦀` 4 bytes and 2 units.
        let text = "// é🦀\r\nservice x {}\n";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap_or_default();
        assert_eq!(index.utf16(x), (1, 8));
        assert_eq!(index.line_col(x), (2, 9));
        let after_crab = text.find('\r').unwrap_or_default();
        assert_eq!(index.utf16(after_crab), (0, 6));
        assert_eq!(index.line_col(after_crab), (1, 6));
        assert_eq!(index.offset_of_utf16(0, 6), after_crab);
        assert_eq!(index.offset_of_utf16(1, 8), x);
        // Inside the surrogate pair: the crab's start.
        assert_eq!(
            index.offset_of_utf16(0, 5),
            text.find('🦀').unwrap_or_default()
        );
        // Past the end of a line: before its `\r\n`; past the last line: the end.
        assert_eq!(index.offset_of_utf16(0, 99), after_crab);
        assert_eq!(index.offset_of_utf16(9, 0), text.len());
        assert_eq!(index.utf16(999), (2, 0));
    }
}
