//! The lexer: source text to tokens, comments and lexical errors.
//!
//! [`Token`] is a logos DFA; [`Lexer`] wraps it for the lalrpop parser. The wrapper keeps
//! comments aside (the formatter and doc comments need them, the grammar does not), turns
//! every lexical error into a [`Token::Error`] so the parser's error recovery handles it
//! like any other unexpected token, and at end of input closes any `{` left open with
//! zero-width `}` tokens, so a half-written file still parses into a tree.

use std::borrow::Cow;

use logos::Logos;
use mesh_vocab::duration::{self, DurationErrorKind};

use crate::ast::{Comment, CommentKind, Duration, Percent, Rate, Span, TimeUnit};

/// What went wrong while reading a token.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LexErrorKind {
    /// A character that starts no token.
    #[default]
    UnexpectedChar,
    /// `'text'`: strings use double quotes.
    SingleQuoted,
    /// `"...` without its closing quote on the same line.
    UnterminatedString,
    /// `r#"...` without its closing `"#`.
    UnterminatedRawString,
    /// `/* ...` without its closing `*/`.
    UnterminatedComment,
    /// A backslash escape the language does not have; `at..at+len` is the escape.
    BadEscape {
        /// Absolute byte offset of the backslash.
        at: usize,
        /// Length of the escape in bytes.
        len: usize,
    },
    /// A number followed by a unit that is not a duration unit.
    UnknownUnit {
        /// Absolute byte offset of the unit.
        at: usize,
        /// The unit as written.
        unit: String,
    },
    /// `10/x` with a unit other than `s`, `m`, `h`.
    UnknownRateUnit {
        /// The unit as written.
        unit: String,
    },
    /// `6xx`: status classes go from `1xx` to `5xx`.
    BadStatusClass,
    /// `1.5` or `1.5s`: only percents may have decimals.
    DecimalNumber,
    /// A percent with more than three decimals.
    TooPrecise,
    /// A number that does not fit in 64 bits.
    NumberTooLarge,
}

/// A lexical error with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    /// What went wrong.
    pub kind: LexErrorKind,
    /// The offending text.
    pub span: Span,
}

/// A string literal token: decoded text, and where the text sits in the source when the
/// source spells it byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrTok<'s> {
    /// The decoded text.
    pub value: Cow<'s, str>,
    /// Absolute offset of the first content byte, for strings without escapes.
    pub verbatim_at: Option<usize>,
}

/// Tokens of the `.mesh` language.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexErrorKind)]
#[logos(skip r"[ \t\r\n\f\u{FEFF}]+")]
pub enum Token<'s> {
    /// `[A-Za-z_][A-Za-z0-9_-]*` that is not a keyword.
    #[regex(r"[A-Za-z_][A-Za-z0-9_-]*", |lex| lex.slice())]
    Ident(&'s str),
    /// `9080`
    #[regex(r"[0-9]+", lex_int)]
    Int(u64),
    /// `250ms`
    #[regex(r"[0-9]+[A-Za-z_][A-Za-z0-9_]*", lex_duration)]
    Duration(Duration),
    /// `12.5%`
    #[regex(r"[0-9]+(\.[0-9]+)?%", lex_percent)]
    Percent(Percent),
    /// `10/s`
    #[regex(r"[0-9]+/[A-Za-z]+", lex_rate)]
    Rate(Rate),
    /// `5xx`
    #[regex(r"[1-5]xx", |lex| lex.slice().bytes().next().map_or(0, |b| b - b'0'), priority = 10)]
    StatusClass(u8),
    /// `"text"`
    #[token("\"", lex_string)]
    Str(StrTok<'s>),
    /// `r"raw"`, `r#"raw"#`
    #[regex(r##"r#*""##, lex_raw_string)]
    RawStr(StrTok<'s>),
    /// `'text'`: always an error, with a helpful message.
    #[regex(r"'[^'\n]*'?", lex_single_quoted)]
    SingleQuoted,
    /// `1.5`, `1.5s`: always an error, with a helpful message.
    #[regex(r"[0-9]+\.[0-9]+([A-Za-z_][A-Za-z0-9_]*)?", lex_decimal)]
    Decimal,

    /// `// ...` and `/// ...`
    #[regex(r"//[^\n]*", allow_greedy = true)]
    LineComment,
    /// `/* ... */`, nested.
    #[token("/*", lex_block_comment)]
    BlockComment,

    // Keywords. They are reserved only where the grammar needs them: the grammar accepts
    // any of them where a name is expected.
    #[token("mesh")]
    KwMesh,
    #[token("import")]
    KwImport,
    #[token("namespace")]
    KwNamespace,
    #[token("service")]
    KwService,
    #[token("retry")]
    KwRetry,
    #[token("route")]
    KwRoute,
    #[token("policy")]
    KwPolicy,
    #[token("test")]
    KwTest,
    #[token("trust_domain")]
    KwTrustDomain,
    #[token("mtls")]
    KwMtls,
    #[token("default_policy")]
    KwDefaultPolicy,
    #[token("port")]
    KwPort,
    #[token("identity")]
    KwIdentity,
    #[token("labels")]
    KwLabels,
    #[token("subset")]
    KwSubset,
    #[token("balance")]
    KwBalance,
    #[token("timeout")]
    KwTimeout,
    #[token("rule")]
    KwRule,
    #[token("when")]
    KwWhen,
    #[token("to")]
    KwTo,
    #[token("split")]
    KwSplit,
    #[token("mirror")]
    KwMirror,
    #[token("fault")]
    KwFault,
    #[token("delay")]
    KwDelay,
    #[token("abort")]
    KwAbort,
    #[token("set_header")]
    KwSetHeader,
    #[token("remove_header")]
    KwRemoveHeader,
    #[token("rewrite_prefix")]
    KwRewritePrefix,
    #[token("attempts")]
    KwAttempts,
    #[token("per_try_timeout")]
    KwPerTryTimeout,
    #[token("on")]
    KwOn,
    #[token("backoff")]
    KwBackoff,
    #[token("budget")]
    KwBudget,
    #[token("min")]
    KwMin,
    #[token("mode")]
    KwMode,
    #[token("allow")]
    KwAllow,
    #[token("deny")]
    KwDeny,
    #[token("from")]
    KwFrom,
    #[token("cedar")]
    KwCedar,
    #[token("methods")]
    KwMethods,
    #[token("paths")]
    KwPaths,
    #[token("any")]
    KwAny,
    #[token("authenticated")]
    KwAuthenticated,
    #[token("request")]
    KwRequest,
    #[token("expect")]
    KwExpect,
    #[token("header")]
    KwHeader,
    #[token("query")]
    KwQuery,
    #[token("backend")]
    KwBackend,
    #[token("only")]
    KwOnly,
    #[token("retries")]
    KwRetries,
    #[token("method")]
    KwMethod,
    #[token("path")]
    KwPath,
    #[token("host")]
    KwHost,
    #[token("source")]
    KwSource,
    #[token("exists")]
    KwExists,
    #[token("in")]
    KwIn,
    #[token("starts_with")]
    KwStartsWith,
    #[token("matches")]
    KwMatches,
    #[token("like")]
    KwLike,
    #[token("connect_timeout")]
    KwConnectTimeout,
    #[token("idle_timeout")]
    KwIdleTimeout,
    #[token("ports")]
    KwPorts,
    #[token("connect")]
    KwConnect,
    #[token("rate_limit")]
    KwRateLimit,
    #[token("burst")]
    KwBurst,
    #[token("per")]
    KwPer,
    #[token("caller")]
    KwCaller,
    #[token("limits")]
    KwLimits,
    #[token("max_connections")]
    KwMaxConnections,
    #[token("max_pending")]
    KwMaxPending,
    #[token("max_requests")]
    KwMaxRequests,
    #[token("outlier")]
    KwOutlier,
    #[token("consecutive_5xx")]
    KwConsecutive5xx,
    #[token("interval")]
    KwInterval,
    #[token("base_ejection")]
    KwBaseEjection,
    #[token("max_ejected")]
    KwMaxEjected,
    #[token("gateway")]
    KwGateway,
    #[token("listen")]
    KwListen,
    #[token("tls")]
    KwTls,
    #[token("cert")]
    KwCert,
    #[token("key")]
    KwKey,
    #[token("telemetry")]
    KwTelemetry,
    #[token("tracing")]
    KwTracing,
    #[token("access_log")]
    KwAccessLog,

    // Punctuation.
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token("/")]
    Slash,
    #[token("=")]
    Assign,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,

    /// Stands for a lexical error in the parser's input (never produced by logos itself).
    Error,
}

fn lex_single_quoted<'s>(_: &mut logos::Lexer<'s, Token<'s>>) -> Result<(), LexErrorKind> {
    Err(LexErrorKind::SingleQuoted)
}

fn lex_decimal<'s>(_: &mut logos::Lexer<'s, Token<'s>>) -> Result<(), LexErrorKind> {
    Err(LexErrorKind::DecimalNumber)
}

fn lex_int<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<u64, LexErrorKind> {
    lex.slice()
        .parse()
        .map_err(|_| LexErrorKind::NumberTooLarge)
}

/// A duration literal, read by the parser the agent's duration flags use too
/// (`mesh_vocab::duration`). The token is digits then a letter, so only an unknown unit
/// or a too large number can be wrong.
fn lex_duration<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<Duration, LexErrorKind> {
    duration::parse(lex.slice()).map_err(|error| match error.kind() {
        DurationErrorKind::UnknownUnit { unit, .. } if unit.eq_ignore_ascii_case("xx") => {
            LexErrorKind::BadStatusClass
        }
        DurationErrorKind::UnknownUnit { at, unit } => LexErrorKind::UnknownUnit {
            at: lex.span().start + at,
            unit: unit.clone(),
        },
        _ => LexErrorKind::NumberTooLarge,
    })
}

fn lex_percent<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<Percent, LexErrorKind> {
    let text = lex.slice().trim_end_matches('%');
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 {
        return Err(LexErrorKind::TooPrecise);
    }
    let whole: u64 = whole.parse().map_err(|_| LexErrorKind::NumberTooLarge)?;
    let mut milli_frac = 0u64;
    for (i, digit) in frac.bytes().enumerate() {
        let place = 10u64.pow(2 - i as u32);
        milli_frac += u64::from(digit - b'0') * place;
    }
    let milli = whole
        .checked_mul(1000)
        .and_then(|m| m.checked_add(milli_frac))
        .ok_or(LexErrorKind::NumberTooLarge)?;
    Ok(Percent { milli })
}

fn lex_rate<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<Rate, LexErrorKind> {
    let (count, unit) = lex.slice().split_once('/').unwrap_or_default();
    let per = match unit {
        "s" => TimeUnit::Seconds,
        "m" => TimeUnit::Minutes,
        "h" => TimeUnit::Hours,
        _ => {
            return Err(LexErrorKind::UnknownRateUnit {
                unit: unit.to_string(),
            });
        }
    };
    let count = count.parse().map_err(|_| LexErrorKind::NumberTooLarge)?;
    Ok(Rate { count, per })
}

/// Reads the rest of a `"` string: escapes decoded, ends at the closing quote. A string
/// cannot span lines, so an unterminated one stops at the end of its line and lexing
/// resumes on the next.
fn lex_string<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<StrTok<'s>, LexErrorKind> {
    let start = lex.span().end;
    let rest = lex.remainder();
    let bytes = rest.as_bytes();
    let mut decoded: Option<String> = None;
    let mut i = 0;
    let mut error = None;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                lex.bump(i + 1);
                if let Some(err) = error {
                    return Err(err);
                }
                let content = rest.get(..i).unwrap_or_default();
                return Ok(match decoded {
                    None => StrTok {
                        value: Cow::Borrowed(content),
                        verbatim_at: Some(start),
                    },
                    Some(text) => StrTok {
                        value: Cow::Owned(text),
                        verbatim_at: None,
                    },
                });
            }
            b'\n' => break,
            b'\\' => {
                let text = decoded.get_or_insert_with(|| rest.get(..i).unwrap_or_default().into());
                match decode_escape(rest.get(i..).unwrap_or_default()) {
                    Ok((ch, len)) => {
                        text.push(ch);
                        i += len;
                    }
                    Err(len) => {
                        error.get_or_insert(LexErrorKind::BadEscape { at: start + i, len });
                        i += len.max(1);
                    }
                }
            }
            _ => {
                let ch_len = utf8_len(b);
                if let Some(text) = decoded.as_mut() {
                    text.push_str(rest.get(i..i + ch_len).unwrap_or_default());
                }
                i += ch_len;
            }
        }
    }
    lex.bump(i.min(rest.len()));
    Err(LexErrorKind::UnterminatedString)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Decodes the escape at the start of `s` (which starts with a backslash). Returns the
/// character and the escape's length, or the length of the bad escape.
fn decode_escape(s: &str) -> Result<(char, usize), usize> {
    let mut chars = s.chars();
    chars.next();
    let Some(kind) = chars.next() else {
        return Err(1);
    };
    let simple = match kind {
        '"' => Some('"'),
        '\\' => Some('\\'),
        'n' => Some('\n'),
        't' => Some('\t'),
        'r' => Some('\r'),
        '0' => Some('\0'),
        _ => None,
    };
    if let Some(ch) = simple {
        return Ok((ch, 2));
    }
    if kind != 'u' {
        return Err(1 + kind.len_utf8());
    }
    let rest = s.get(2..).unwrap_or_default();
    let Some(body) = rest.strip_prefix('{') else {
        return Err(2);
    };
    let Some(close) = body.find('}') else {
        return Err(3);
    };
    let hex = body.get(..close).unwrap_or_default();
    let len = 2 + 1 + close + 1;
    if hex.is_empty() || hex.len() > 6 {
        return Err(len);
    }
    u32::from_str_radix(hex, 16)
        .ok()
        .and_then(char::from_u32)
        .map(|ch| (ch, len))
        .ok_or(len)
}

/// Reads a raw string `r#*"...“#*` whose opening has just been matched.
fn lex_raw_string<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<StrTok<'s>, LexErrorKind> {
    let hashes = lex.slice().len() - 2;
    let start = lex.span().end;
    let rest = lex.remainder();
    let mut search = 0;
    while let Some(found) = rest.get(search..).and_then(|r| r.find('"')) {
        let quote = search + found;
        let after = rest.get(quote + 1..).unwrap_or_default();
        if after.bytes().take(hashes).filter(|&b| b == b'#').count() == hashes {
            lex.bump(quote + 1 + hashes);
            return Ok(StrTok {
                value: Cow::Borrowed(rest.get(..quote).unwrap_or_default()),
                verbatim_at: Some(start),
            });
        }
        search = quote + 1;
    }
    lex.bump(rest.len());
    Err(LexErrorKind::UnterminatedRawString)
}

/// Skips a block comment whose `/*` has just been matched; comments nest.
fn lex_block_comment<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<(), LexErrorKind> {
    let bytes = lex.remainder().as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while i < bytes.len() {
        match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    lex.bump(i);
                    return Ok(());
                }
            }
            _ => i += 1,
        }
    }
    lex.bump(bytes.len());
    Err(LexErrorKind::UnterminatedComment)
}

/// The parser's token source: `(start, token, end)` triples without comments.
pub struct Lexer<'s> {
    inner: logos::Lexer<'s, Token<'s>>,
    /// Comments seen so far, in source order.
    pub comments: Vec<Comment>,
    /// Lexical errors seen so far, in source order.
    pub errors: Vec<LexError>,
    /// Offsets of the `{` not yet closed.
    open_braces: Vec<usize>,
    /// Offsets of the `{` that were still open at end of input.
    pub unclosed: Vec<usize>,
    /// `}` still to invent at end of input.
    pending_closers: usize,
}

impl<'s> Lexer<'s> {
    /// A lexer over `src`.
    pub fn new(src: &'s str) -> Self {
        Self {
            inner: Token::lexer(src),
            comments: Vec::new(),
            errors: Vec::new(),
            open_braces: Vec::new(),
            unclosed: Vec::new(),
            pending_closers: 0,
        }
    }
}

/// A token with its byte offsets, as lalrpop expects.
pub type SpannedToken<'s> = (usize, Token<'s>, usize);

impl<'s> Iterator for Lexer<'s> {
    type Item = Result<SpannedToken<'s>, std::convert::Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(result) = self.inner.next() else {
                if self.pending_closers == 0 && !self.open_braces.is_empty() {
                    self.unclosed = std::mem::take(&mut self.open_braces);
                    self.pending_closers = self.unclosed.len();
                }
                if self.pending_closers == 0 {
                    return None;
                }
                self.pending_closers -= 1;
                let end = self.inner.source().len();
                return Some(Ok((end, Token::RBrace, end)));
            };
            let span = self.inner.span();
            let token = match result {
                Ok(Token::LineComment) => {
                    let text = self.inner.slice();
                    let kind = if text.starts_with("///") && !text.starts_with("////") {
                        CommentKind::Doc
                    } else {
                        CommentKind::Line
                    };
                    let end = span.start + text.trim_end().len();
                    self.comments.push(Comment {
                        kind,
                        span: Span::new(span.start, end),
                    });
                    continue;
                }
                Ok(Token::BlockComment) => {
                    self.comments.push(Comment {
                        kind: CommentKind::Block,
                        span: Span::new(span.start, span.end),
                    });
                    continue;
                }
                Ok(Token::RawStr(s)) => Token::Str(s),
                Ok(Token::LBrace) => {
                    self.open_braces.push(span.start);
                    Token::LBrace
                }
                Ok(Token::RBrace) => {
                    self.open_braces.pop();
                    Token::RBrace
                }
                Ok(token) => token,
                Err(kind) => {
                    self.errors.push(LexError {
                        kind,
                        span: Span::new(span.start, span.end),
                    });
                    Token::Error
                }
            };
            return Some(Ok((span.start, token, span.end)));
        }
    }
}
