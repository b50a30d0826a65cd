//! The source as tokens, for what works on text that may not parse: completion's cursor
//! context and semantic highlighting. Uses the language's own lexer.

use mesh_lang::ast::{Comment, Span};
use mesh_lang::lexer::{Lexer, Token};

/// A token and where it is.
#[derive(Clone, Debug)]
pub struct Tok<'s> {
    /// The token.
    pub token: Token<'s>,
    /// Its bytes.
    pub span: Span,
}

/// Every token of `src` (without the `}` the lexer invents at end of input) and every
/// comment.
pub fn lex(src: &str) -> (Vec<Tok<'_>>, Vec<Comment>) {
    let mut lexer = Lexer::new(src);
    let mut toks = Vec::new();
    for (start, token, end) in lexer.by_ref().flatten() {
        if start < end {
            toks.push(Tok {
                token,
                span: Span::new(start, end),
            });
        }
    }
    (toks, std::mem::take(&mut lexer.comments))
}

/// Whether a token is a keyword.
pub fn is_keyword(token: &Token<'_>) -> bool {
    !matches!(
        token,
        Token::Ident(_)
            | Token::Int(_)
            | Token::Duration(_)
            | Token::Percent(_)
            | Token::Rate(_)
            | Token::StatusClass(_)
            | Token::Str(_)
            | Token::RawStr(_)
            | Token::SingleQuoted
            | Token::Decimal
            | Token::LineComment
            | Token::BlockComment
            | Token::LBrace
            | Token::RBrace
            | Token::LParen
            | Token::RParen
            | Token::LBracket
            | Token::RBracket
            | Token::Comma
            | Token::Dot
            | Token::DotDot
            | Token::Slash
            | Token::Assign
            | Token::EqEq
            | Token::NotEq
            | Token::AndAnd
            | Token::OrOr
            | Token::Bang
            | Token::Error
    )
}

/// Whether a token is an operator or punctuation that highlighting shows as an operator.
pub fn is_operator(token: &Token<'_>) -> bool {
    matches!(
        token,
        Token::EqEq
            | Token::NotEq
            | Token::AndAnd
            | Token::OrOr
            | Token::Bang
            | Token::Assign
            | Token::DotDot
    )
}
