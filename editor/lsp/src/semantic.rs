//! Semantic tokens: the lexer's classes (keywords, literals, comments, operators) refined
//! by the index (a name that resolves to a service, subset, retry profile, namespace or
//! rule gets that kind, with `declaration` on definitions and `defaultLibrary` for `std/`
//! items). Tokens spanning lines (block comments, raw strings) are cut per line, since
//! not every client supports multi-line tokens.

use mesh_compiler::load::FileId;
use mesh_lang::ast::{CommentKind, Span};
use mesh_lang::lexer::Token;
use tower_lsp_server::ls_types::{
    SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend,
};

use crate::analysis::Analysis;
use crate::index::Symbol;
use crate::tokens::{is_keyword, is_operator, lex};

/// Token types, in legend order.
const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::CLASS,
    SemanticTokenType::ENUM_MEMBER,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::METHOD,
    SemanticTokenType::KEYWORD,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::COMMENT,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::VARIABLE,
];
const NAMESPACE: u32 = 0;
const CLASS: u32 = 1;
const ENUM_MEMBER: u32 = 2;
const FUNCTION: u32 = 3;
const METHOD: u32 = 4;
const KEYWORD: u32 = 5;
const STRING: u32 = 6;
const NUMBER: u32 = 7;
const COMMENT: u32 = 8;
const OPERATOR: u32 = 9;
const VARIABLE: u32 = 10;

/// Modifiers, in legend order (bit i is modifier i).
const MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::DOCUMENTATION,
    SemanticTokenModifier::DEFAULT_LIBRARY,
];
const DECLARATION: u32 = 1;
const DOCUMENTATION: u32 = 2;
const DEFAULT_LIBRARY: u32 = 4;

/// The legend the server announces.
pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

/// The semantic tokens of `file`, delta-encoded as the protocol wants.
pub fn tokens(analysis: &Analysis, file: FileId) -> Vec<SemanticToken> {
    let Some(info) = analysis.file(file) else {
        return Vec::new();
    };
    let text = info.lines.text();
    let (toks, comments) = lex(text);
    let mut raw: Vec<(Span, u32, u32)> = Vec::new();
    for c in comments {
        let modifiers = if c.kind == CommentKind::Doc {
            DOCUMENTATION
        } else {
            0
        };
        raw.push((c.span, COMMENT, modifiers));
    }
    let occurrences: std::collections::HashMap<(usize, usize), (&Symbol, bool)> = analysis
        .index
        .occurrences
        .iter()
        .filter(|o| o.file == file)
        .map(|o| ((o.span.start, o.span.end), (&o.symbol, o.is_def)))
        .collect();
    for t in toks {
        let class = if let Some((symbol, is_def)) = occurrences.get(&(t.span.start, t.span.end)) {
            let ty = match symbol {
                Symbol::Namespace(_) => NAMESPACE,
                Symbol::Service(..) => CLASS,
                Symbol::Subset(..) => ENUM_MEMBER,
                Symbol::Retry(..) => FUNCTION,
                Symbol::Rule(..) => METHOD,
                Symbol::File(_) => STRING,
            };
            let std = analysis
                .index
                .definitions
                .get(*symbol)
                .is_some_and(|d| d.is_std);
            let mut modifiers = if *is_def { DECLARATION } else { 0 };
            if std {
                modifiers |= DEFAULT_LIBRARY;
            }
            Some((ty, modifiers))
        } else {
            match &t.token {
                Token::Str(_) | Token::RawStr(_) => Some((STRING, 0)),
                Token::Int(_)
                | Token::Duration(_)
                | Token::Percent(_)
                | Token::Rate(_)
                | Token::StatusClass(_) => Some((NUMBER, 0)),
                Token::Ident(_) => Some((VARIABLE, 0)),
                token if is_operator(token) => Some((OPERATOR, 0)),
                token if is_keyword(token) => Some((KEYWORD, 0)),
                _ => None,
            }
        };
        if let Some((ty, modifiers)) = class {
            raw.push((t.span, ty, modifiers));
        }
    }
    raw.sort_by_key(|(span, _, _)| span.start);
    encode(&info.lines, text, &raw)
}

fn encode(
    lines: &crate::text::LineIndex,
    text: &str,
    raw: &[(Span, u32, u32)],
) -> Vec<SemanticToken> {
    let mut out = Vec::with_capacity(raw.len());
    let (mut prev_line, mut prev_start) = (0u32, 0u32);
    let mut covered = 0usize;
    for &(span, ty, modifiers) in raw {
        if span.start < covered {
            continue; // overlapping tokens are not allowed
        }
        covered = span.end;
        // Cut at line ends.
        let mut start = span.start;
        while start < span.end {
            let line_end = text
                .get(start..span.end)
                .and_then(|s| s.find('\n'))
                .map_or(span.end, |i| start + i);
            if line_end > start {
                let from = lines.position(start);
                let to = lines.position(line_end);
                let length = to.character.saturating_sub(from.character);
                let delta_line = from.line - prev_line;
                let delta_start = if delta_line == 0 {
                    from.character - prev_start
                } else {
                    from.character
                };
                out.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length,
                    token_type: ty,
                    token_modifiers_bitset: modifiers,
                });
                prev_line = from.line;
                prev_start = from.character;
            }
            start = line_end + 1;
        }
    }
    out
}
