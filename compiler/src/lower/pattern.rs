//! Patterns in conditions and policies: regexes (`matches`) are compiled at check time
//! with regex-syntax, globs (`like`, `paths [...]`) are validated with the agent's own
//! glob compiler (`mesh_config::glob`), and errors point at the offending character
//! inside the string when the string is written verbatim.

use mesh_config::glob::{Glob, GlobError};
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
    match Glob::new(&lit.value) {
        Ok(_) => true,
        Err(GlobError { start, end }) => {
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
