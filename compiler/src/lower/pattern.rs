//! Patterns in conditions and policies: regexes (`matches`) are compiled at check time
//! with regex-syntax, globs (`like`, `paths [...]`) are validated, and errors point at
//! the offending character inside the string when the string is written verbatim.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{Span, StrLit};

use crate::diag::BAD_PATTERN;

use super::Cx;

/// Checks the regex in `lit`; `E0007` at the offending span if it does not compile.
pub fn check_regex(cx: &mut Cx<'_>, lit: &StrLit) -> bool {
    let pattern = lit.value.as_str();
    let mut parser = regex_syntax::ast::parse::Parser::new();
    let error = match parser.parse(pattern) {
        Ok(ast) => match regex_syntax::hir::translate::Translator::new().translate(pattern, &ast) {
            Ok(_) => return true,
            Err(e) => (
                e.kind().to_string(),
                e.span().start.offset,
                e.span().end.offset,
            ),
        },
        Err(e) => (
            e.kind().to_string(),
            e.span().start.offset,
            e.span().end.offset,
        ),
    };
    let (message, start, end) = error;
    let span = inner_span(lit, start, end);
    cx.push(
        Diagnostic::error(
            BAD_PATTERN,
            format!("invalid regex: {message}"),
            span,
            message,
        )
        .with_help(
            "regexes use Rust `regex` syntax; write them as raw strings, as in r\"^/v[0-9]+/\"",
        ),
    );
    false
}

/// Checks the glob in `lit`; `E0007` at the offending escape.
pub fn check_glob(cx: &mut Cx<'_>, lit: &StrLit) -> bool {
    match validate_glob(&lit.value) {
        Ok(()) => true,
        Err((start, end)) => {
            let escape = lit.value.get(start..end).unwrap_or("\\");
            cx.push(
                Diagnostic::error(
                    BAD_PATTERN,
                    format!("invalid glob: unknown escape `{escape}`"),
                    inner_span(lit, start, end),
                    "unknown escape",
                )
                .with_help(
                    "in globs `*` matches any text, `\\*` a literal star and `\\\\` a backslash",
                ),
            );
            false
        }
    }
}

/// The span of bytes `start..end` of the string's text: exact when the string is written
/// verbatim, the whole literal otherwise.
fn inner_span(lit: &StrLit, start: usize, end: usize) -> Span {
    match lit.verbatim_at {
        Some(at) => Span::new(
            at + start,
            at + end.max(start + 1).min(lit.value.len().max(start + 1)),
        ),
        None => lit.span,
    }
}

/// A glob is text where `*` matches any sequence, `\*` is a star and `\\` a backslash.
/// Returns the byte range of the first invalid escape.
pub fn validate_glob(glob: &str) -> Result<(), (usize, usize)> {
    let mut chars = glob.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, '*' | '\\')) => {}
                Some((j, other)) => return Err((i, j + other.len_utf8())),
                None => return Err((i, i + 1)),
            }
        }
    }
    Ok(())
}

/// Whether `glob` matches all of `text` (a valid glob; an invalid escape matches itself).
pub fn glob_matches(glob: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Piece {
        Star,
        Char(char),
    }
    let mut pieces = Vec::new();
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => pieces.push(Piece::Star),
            '\\' => pieces.push(Piece::Char(chars.next().unwrap_or('\\'))),
            other => pieces.push(Piece::Char(other)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last star: linear in practice.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pieces.get(p) {
            Some(Piece::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Piece::Char(c)) if Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pieces
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|piece| *piece == Piece::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_cedar_like() {
        assert!(glob_matches("/cart/*", "/cart/items"));
        assert!(glob_matches("/cart/*", "/cart/"));
        assert!(!glob_matches("/cart/*", "/cart"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*.example.org", "api.example.org"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("\\*", "*"));
        assert!(!glob_matches("\\*", "x"));
    }

    #[test]
    fn glob_escapes_are_validated() {
        assert_eq!(validate_glob("/a/*"), Ok(()));
        assert_eq!(validate_glob("\\*\\\\"), Ok(()));
        assert_eq!(validate_glob("/a\\d"), Err((2, 4)));
        assert_eq!(validate_glob("/a\\"), Err((2, 3)));
    }
}
