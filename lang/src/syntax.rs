//! Parsing a file: runs the lexer and the generated parser, turns lexical and syntax
//! errors into `E0001` diagnostics with friendly token names, and attaches doc comments.

use lalrpop_util::{ErrorRecovery, ParseError};

use crate::ast::{
    Comment, CommentKind, File, GatewayMember, Ident, Item, ItemKind, Ref, RouteMember,
    ServiceMember, Span,
};
use crate::diagnostic::Diagnostic;
use crate::grammar::FileParser;
use crate::lexer::{LexError, LexErrorKind, Lexer, Token};

/// A recovered syntax error as the generated parser reports it.
pub type ParseErrorRecovery<'s> = ErrorRecovery<usize, Token<'s>, std::convert::Infallible>;

/// The code of every syntax error.
pub const SYNTAX_ERROR: &str = "E0001";

/// A parsed file and the syntax diagnostics found on the way.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The tree; items or members that failed to parse are `Error` nodes.
    pub file: File,
    /// Syntax errors in source order; empty when the file is well formed.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `src`, recovering from errors: always returns a tree.
pub fn parse(src: &str) -> Parsed {
    let mut lexer = Lexer::new(src);
    let mut recovered = Vec::new();
    let result = FileParser::new().parse(src, &mut recovered, lexer.by_ref());
    let mut diagnostics: Vec<Diagnostic> = lexer
        .errors
        .iter()
        .map(|e| lex_diagnostic(src, e))
        .collect();
    for (offset, _) in lexer.unclosed.iter().zip(0..) {
        diagnostics.push(unclosed_brace(src, *offset));
    }
    let items = match result {
        Ok(items) => items,
        Err(error) => {
            diagnostics.extend(syntax_diagnostic(src, &error));
            Vec::new()
        }
    };
    for recovery in &recovered {
        diagnostics.extend(syntax_diagnostic(src, &recovery.error));
    }
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    diagnostics.dedup_by(|a, b| a.span.start == b.span.start && a.message == b.message);
    let mut file = File {
        items,
        comments: lexer.comments,
    };
    attach_docs(src, &mut file);
    Parsed { file, diagnostics }
}

/// The error for an `import` (at `start..end`) inside a `namespace` block: what the
/// parser would have reported there, as one error for the whole import.
pub(crate) fn nested_import<'s>(
    start: usize,
    token: Token<'s>,
    end: usize,
) -> ParseErrorRecovery<'s> {
    let expected = [
        "}", "service", "retry", "route", "policy", "test", "gateway",
    ];
    ErrorRecovery {
        error: ParseError::UnrecognizedToken {
            token: (start, token, end),
            expected: expected.iter().map(|e| format!("\"{e}\"")).collect(),
        },
        dropped_tokens: Vec::new(),
    }
}

/// Builds a reference from its written parts: `a`, `a.s`, `a/b`, `a/b.s`.
pub(crate) fn make_ref(
    first: Ident,
    second: Option<Ident>,
    subset: Option<Ident>,
    span: Span,
) -> Ref {
    match second {
        Some(name) => Ref {
            namespace: Some(first),
            name,
            subset,
            span,
        },
        None => Ref {
            namespace: None,
            name: first,
            subset,
            span,
        },
    }
}

/// Where "end of file" is shown: after the last visible character, so the label lands on
/// a line that is displayed.
fn eof_offset(src: &str) -> usize {
    src.trim_end().len()
}

fn unclosed_brace(src: &str, open: usize) -> Diagnostic {
    let end = eof_offset(src);
    Diagnostic::error(
        SYNTAX_ERROR,
        "expected `}`, found end of file",
        Span::new(end, end),
        "the file ends here",
    )
    .with_label(Span::new(open, open + 1), "this `{` is never closed")
    .with_help("add the missing `}`")
}

fn lex_diagnostic(src: &str, error: &LexError) -> Diagnostic {
    let text = src
        .get(error.span.start..error.span.end)
        .unwrap_or_default();
    let span = error.span;
    match &error.kind {
        LexErrorKind::UnexpectedChar => {
            let ch = text.chars().next().unwrap_or('?');
            let help = match ch {
                ';' => Some("no `;` is needed: members are separated by whitespace"),
                ':' => Some("labels and request headers use `=`: key = \"value\""),
                '&' => Some("use `&&` for “and”"),
                '|' => Some("use `||` for “or”"),
                '#' => Some("comments start with `//`"),
                '<' | '>' => Some(
                    "conditions compare with `==`, `!=`, `starts_with`, `matches`, `like` and `in`",
                ),
                _ => None,
            };
            let diagnostic = Diagnostic::error(
                SYNTAX_ERROR,
                format!("unexpected character `{}`", ch.escape_debug()),
                span,
                "not part of any token",
            );
            match help {
                Some(help) => diagnostic.with_help(help),
                None => diagnostic,
            }
        }
        LexErrorKind::SingleQuoted => Diagnostic::error(
            SYNTAX_ERROR,
            format!("{text} is not a string"),
            span,
            "single quotes",
        )
        .with_help(format!(
            "strings use double quotes: \"{}\"",
            text.trim_matches('\'')
        )),
        LexErrorKind::UnterminatedString => Diagnostic::error(
            SYNTAX_ERROR,
            "unterminated string",
            Span::new(span.start, span.start + 1),
            "this string is never closed",
        )
        .with_help("close it with `\"` on the same line; a raw string r\"...\" may span lines"),
        LexErrorKind::UnterminatedRawString => {
            let hashes = text
                .get(1..)
                .unwrap_or_default()
                .bytes()
                .take_while(|&b| b == b'#')
                .count();
            Diagnostic::error(
                SYNTAX_ERROR,
                "unterminated raw string",
                Span::new(span.start, span.start + 2 + hashes),
                "this raw string is never closed",
            )
            .with_help(format!("close it with `\"{}`", "#".repeat(hashes)))
        }
        LexErrorKind::UnterminatedComment => Diagnostic::error(
            SYNTAX_ERROR,
            "unterminated block comment",
            Span::new(span.start, span.start + 2),
            "this comment is never closed",
        )
        .with_help("close it with `*/`; block comments nest, so every `/*` needs its own `*/`"),
        LexErrorKind::BadEscape { at, len } => {
            let escape = src.get(*at..at + len).unwrap_or("\\");
            Diagnostic::error(
                SYNTAX_ERROR,
                format!("unknown escape `{escape}` in string"),
                Span::new(*at, at + len),
                "unknown escape",
            )
            .with_help("escapes are \\\" \\\\ \\n \\t \\r \\0 and \\u{…}; write regexes as raw strings: r\"^/v[0-9]+\"")
        }
        LexErrorKind::UnknownUnit { at, unit } => Diagnostic::error(
            SYNTAX_ERROR,
            format!("unknown unit `{unit}` in `{text}`"),
            Span::new(*at, at + unit.len()),
            "not a duration unit",
        )
        .with_help(
            "durations are whole numbers with a unit: us, ms, s, m or h (as in `250ms`, `2s`)",
        ),
        LexErrorKind::UnknownRateUnit { unit } => Diagnostic::error(
            SYNTAX_ERROR,
            format!("unknown rate unit `/{unit}` in `{text}`"),
            span,
            "not a rate",
        )
        .with_help("rates are per second, minute or hour: `10/s`, `600/m`, `1/h`"),
        LexErrorKind::BadStatusClass => Diagnostic::error(
            SYNTAX_ERROR,
            format!("`{text}` is not a status class"),
            span,
            "not a status class",
        )
        .with_help("status classes are `1xx` to `5xx`"),
        LexErrorKind::DecimalNumber => Diagnostic::error(
            SYNTAX_ERROR,
            format!("`{text}`: only percents may have decimals"),
            span,
            "decimal number",
        )
        .with_help(
            "write a percent as `12.5%`, a duration in a smaller unit (`1500ms`, not `1.5s`)",
        ),
        LexErrorKind::TooPrecise => Diagnostic::error(
            SYNTAX_ERROR,
            format!("`{text}` has more than three decimals"),
            span,
            "too precise",
        )
        .with_help("percents have at most three decimals, as in `0.125%`"),
        LexErrorKind::NumberTooLarge => Diagnostic::error(
            SYNTAX_ERROR,
            format!("`{text}` is too large"),
            span,
            "does not fit in 64 bits",
        ),
    }
}

/// Terminal names for literal classes, as the grammar declares them.
const CLASSES: [&str; 7] = [
    "identifier",
    "integer",
    "duration",
    "percent",
    "rate",
    "status class",
    "string",
];
/// Request attributes: listed even where any name is expected, since they mean more.
const ATTRIBUTES: [&str; 6] = ["method", "path", "host", "source", "header", "query"];
const VALUE_CLASSES: [&str; 6] = [
    "integer",
    "duration",
    "percent",
    "rate",
    "status class",
    "string",
];

fn syntax_diagnostic(
    src: &str,
    error: &ParseError<usize, Token<'_>, std::convert::Infallible>,
) -> Option<Diagnostic> {
    match error {
        ParseError::UnrecognizedToken {
            token: (start, token, end),
            expected,
        } => {
            if *token == Token::Error {
                return None;
            }
            let at_eof = start == end && *start == src.len();
            let (found, span) = if at_eof {
                let eof = eof_offset(src);
                ("end of file".to_string(), Span::new(eof, eof))
            } else {
                (
                    describe_token(src, token, Span::new(*start, *end)),
                    Span::new(*start, *end),
                )
            };
            Some(expected_found(src, span, expected, &found, token))
        }
        ParseError::UnrecognizedEof { expected, .. } => Some(expected_found(
            src,
            Span::new(eof_offset(src), eof_offset(src)),
            expected,
            "end of file",
            &Token::Error,
        )),
        ParseError::ExtraToken {
            token: (start, token, end),
        } => {
            let span = Span::new(*start, *end);
            Some(Diagnostic::error(
                SYNTAX_ERROR,
                format!("unexpected {}", describe_token(src, token, span)),
                span,
                "unexpected",
            ))
        }
        ParseError::InvalidToken { location } => Some(Diagnostic::error(
            SYNTAX_ERROR,
            "invalid token",
            Span::new(*location, *location + 1),
            "invalid token",
        )),
        ParseError::User { error } => match *error {},
    }
}

fn expected_found(
    src: &str,
    span: Span,
    expected: &[String],
    found: &str,
    token: &Token<'_>,
) -> Diagnostic {
    let mut names: Vec<&str> = expected.iter().map(|e| e.trim_matches('"')).collect();
    // Inside a namespace the grammar takes `import` only to report it well (`NsEntry`).
    if !names.contains(&"namespace") {
        names.retain(|n| *n != "import");
    }
    let list = describe_expected(&names);
    let mut diagnostic = Diagnostic::error(
        SYNTAX_ERROR,
        format!("expected {list}, found {found}"),
        span,
        format!("unexpected {}", short_found(found)),
    );
    if let Some(help) = help_for(src, span, &names, token) {
        diagnostic = diagnostic.with_help(help);
    }
    diagnostic
}

fn short_found(found: &str) -> &str {
    if found == "end of file" {
        found
    } else {
        found
            .split_once(' ')
            .map_or(found, |(kind, _)| kind)
            .trim_end_matches(',')
    }
}

fn is_keyword(name: &str) -> bool {
    !CLASSES.contains(&name)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// "`{`", "a name", "one of `port`, `identity` or `}`": tokens first, then the classes.
fn describe_expected(names: &[&str]) -> String {
    let has_ident = names.contains(&"identifier");
    let keywords = names.iter().filter(|n| is_keyword(n)).count();
    // Where a name is expected every keyword is too (keywords double as names).
    let any_name = has_ident && keywords > 10;
    let any_value = VALUE_CLASSES.iter().all(|c| names.contains(c));
    let mut parts: Vec<String> = names
        .iter()
        .filter(|n| !CLASSES.contains(n) && n.as_bytes() != b"invalid token")
        .filter(|n| !(any_name && is_keyword(n) && !(any_value && ATTRIBUTES.contains(n))))
        .map(|n| format!("`{n}`"))
        .collect();
    if has_ident {
        parts.push("a name".into());
    }
    if any_value {
        parts.push("a value".into());
    } else {
        parts.extend(
            VALUE_CLASSES
                .iter()
                .filter(|c| names.contains(c))
                .map(|c| match *c {
                    "integer" => "an integer".to_string(),
                    other => format!("a {other}"),
                }),
        );
    }
    match parts.as_slice() {
        [] => "nothing more".into(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        [init @ .., last] if init.len() < 12 => format!("one of {} or {last}", init.join(", ")),
        many => format!(
            "one of {}, … ({} more)",
            many.get(..12).unwrap_or_default().join(", "),
            many.len() - 12
        ),
    }
}

fn describe_token(src: &str, token: &Token<'_>, span: Span) -> String {
    let text = src.get(span.start..span.end).unwrap_or_default();
    let short: String = if text.chars().count() > 24 {
        text.chars().take(20).chain("…".chars()).collect()
    } else {
        text.to_string()
    };
    match token {
        Token::Ident(_) => format!("name `{short}`"),
        Token::Int(_) => format!("integer `{short}`"),
        Token::Duration(_) => format!("duration `{short}`"),
        Token::Percent(_) => format!("percent `{short}`"),
        Token::Rate(_) => format!("rate `{short}`"),
        Token::StatusClass(_) => format!("status class `{short}`"),
        Token::Str(_) | Token::RawStr(_) => format!("string `{short}`"),
        _ if span.is_empty() => "end of file".into(),
        _ => format!("`{short}`"),
    }
}

/// A help line for mistakes that are easy to make.
fn help_for(src: &str, span: Span, expected: &[&str], token: &Token<'_>) -> Option<String> {
    let text = src.get(span.start..span.end).unwrap_or_default();
    match token {
        Token::Ident(word) => {
            let best = expected
                .iter()
                .filter(|e| is_keyword(e))
                .map(|e| (strsim::damerau_levenshtein(word, e), *e))
                .filter(|(d, e)| *d <= 2 && *d < e.len())
                .min();
            if let Some((_, keyword)) = best {
                return Some(format!("did you mean `{keyword}`?"));
            }
            None
        }
        Token::KwImport if !expected.contains(&"import") => Some(
            "imports are allowed only at the top level of a file: move it above the `namespace`"
                .into(),
        ),
        Token::Assign if expected.contains(&"==") => Some("use `==` to compare".into()),
        Token::Str(_) if expected.contains(&"identifier") && !expected.contains(&"string") => {
            Some("names are written without quotes".into())
        }
        Token::Int(_) if expected.contains(&"percent") && !expected.contains(&"integer") => {
            Some(format!("write the weight as a percent: `{text}%`"))
        }
        _ => None,
    }
}

/// Sets `doc` on items, subsets and rules from the `///` comments right before them.
fn attach_docs(src: &str, file: &mut File) {
    if !file.comments.iter().any(|c| c.kind == CommentKind::Doc) {
        return;
    }
    let comments = &file.comments;
    attach_to_items(src, comments, &mut file.items);
}

fn attach_to_items(src: &str, comments: &[Comment], items: &mut [Item]) {
    for item in items {
        item.doc = doc_before(src, comments, item.span.start);
        match &mut item.kind {
            ItemKind::Namespace(ns) => attach_to_items(src, comments, &mut ns.items),
            ItemKind::Service(service) => {
                for member in &mut service.members {
                    if let ServiceMember::Subset(subset) = &mut member.node {
                        subset.doc = doc_before(src, comments, member.span.start);
                    }
                }
            }
            ItemKind::Route(route) => {
                for member in &mut route.members {
                    if let RouteMember::Rule(rule) = &mut member.node {
                        rule.doc = doc_before(src, comments, member.span.start);
                    }
                }
            }
            ItemKind::Gateway(gateway) => {
                for member in &mut gateway.members {
                    if let GatewayMember::Host(host) = &mut member.node {
                        for rule in &mut host.rules {
                            if let RouteMember::Rule(r) = &mut rule.node {
                                r.doc = doc_before(src, comments, rule.span.start);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The text of the run of doc comments that ends right before `start`, separated from it
/// and from each other by whitespace only.
fn doc_before(src: &str, comments: &[Comment], start: usize) -> Option<String> {
    let mut index = comments.partition_point(|c| c.span.end <= start);
    let mut boundary = start;
    let mut lines = Vec::new();
    while index > 0 {
        index -= 1;
        let comment = comments.get(index)?;
        let gap = src.get(comment.span.end..boundary).unwrap_or("x");
        if comment.kind != CommentKind::Doc || !gap.trim().is_empty() {
            break;
        }
        let text = src
            .get(comment.span.start..comment.span.end)
            .unwrap_or_default();
        let text = text.trim_start_matches("///");
        lines.push(text.strip_prefix(' ').unwrap_or(text).trim_end());
        boundary = comment.span.start;
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}
