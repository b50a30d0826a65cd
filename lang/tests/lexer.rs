//! The lexer on every literal form of LANGUAGE.md §2, and on every lexical error.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use logos::Logos;
use mesh_lang::ast::{Duration, Percent, Rate, TimeUnit};
use mesh_lang::lexer::{LexErrorKind, Lexer, Token};

fn tokens(src: &str) -> Vec<Token<'_>> {
    Lexer::new(src).map(|t| t.unwrap().1).collect()
}

fn error_kinds(src: &str) -> Vec<LexErrorKind> {
    let mut lexer = Lexer::new(src);
    lexer.by_ref().for_each(drop);
    lexer.errors.into_iter().map(|e| e.kind).collect()
}

fn string_value(src: &str) -> String {
    match tokens(src).as_slice() {
        [Token::Str(s)] => s.value.to_string(),
        other => panic!("{src}: {other:?}"),
    }
}

fn verbatim_at(src: &str) -> Option<usize> {
    match tokens(src).as_slice() {
        [Token::Str(s)] => s.verbatim_at,
        other => panic!("{src}: {other:?}"),
    }
}

#[test]
fn integers_durations_percents_rates_and_status_classes() {
    assert_eq!(tokens("9080"), [Token::Int(9080)]);
    let d = |value, unit| Token::Duration(Duration { value, unit });
    assert_eq!(
        tokens("500us 250ms 2s 1m 1h"),
        [
            d(500, TimeUnit::Micros),
            d(250, TimeUnit::Millis),
            d(2, TimeUnit::Seconds),
            d(1, TimeUnit::Minutes),
            d(1, TimeUnit::Hours)
        ]
    );
    assert_eq!(
        tokens("10% 12.5% 0.125% 100%"),
        [
            Token::Percent(Percent { milli: 10_000 }),
            Token::Percent(Percent { milli: 12_500 }),
            Token::Percent(Percent { milli: 125 }),
            Token::Percent(Percent::FULL)
        ]
    );
    assert_eq!(
        tokens("10/s 600/m 1/h"),
        [
            Token::Rate(Rate {
                count: 10,
                per: TimeUnit::Seconds
            }),
            Token::Rate(Rate {
                count: 600,
                per: TimeUnit::Minutes
            }),
            Token::Rate(Rate {
                count: 1,
                per: TimeUnit::Hours
            })
        ]
    );
    assert_eq!(
        tokens("5xx 4xx 1xx"),
        [
            Token::StatusClass(5),
            Token::StatusClass(4),
            Token::StatusClass(1)
        ]
    );
    assert_eq!(
        tokens("25ms..250ms"),
        [
            d(25, TimeUnit::Millis),
            Token::DotDot,
            d(250, TimeUnit::Millis)
        ]
    );
}

#[test]
fn percent_display_round_trips() {
    for text in ["10%", "12.5%", "0.125%", "100%", "0%"] {
        match tokens(text).as_slice() {
            [Token::Percent(p)] => assert_eq!(p.to_string(), text),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn identifiers_allow_dashes_and_keywords_are_whole_words() {
    assert_eq!(
        tokens("bookinfo-productpage"),
        [Token::Ident("bookinfo-productpage")]
    );
    assert_eq!(tokens("service"), [Token::KwService]);
    assert_eq!(
        tokens("services service-a _x"),
        [
            Token::Ident("services"),
            Token::Ident("service-a"),
            Token::Ident("_x")
        ]
    );
    assert_eq!(
        tokens("shop/cart.v2"),
        [
            Token::Ident("shop"),
            Token::Slash,
            Token::Ident("cart"),
            Token::Dot,
            Token::Ident("v2")
        ]
    );
}

#[test]
fn strings_decode_escapes_and_know_where_their_text_is() {
    assert_eq!(string_value(r#""text""#), "text");
    assert_eq!(string_value(r#""a\"b\\c\nd\te\r\0""#), "a\"b\\c\nd\te\r\0");
    assert_eq!(string_value(r#""caf\u{e9} \u{1F600}""#), "café 😀");
    assert_eq!(string_value(r#""ünïcödé""#), "ünïcödé");
    assert_eq!(verbatim_at(r#"  "abc""#), Some(3));
    assert_eq!(verbatim_at(r#""a\nb""#), None);
}

#[test]
fn raw_strings_with_and_without_guards() {
    assert_eq!(string_value(r#"r"^/v[0-9]+/""#), "^/v[0-9]+/");
    assert_eq!(string_value(r###"r#"say "hi""#"###), r#"say "hi""#);
    assert_eq!(string_value(r####"r##"a "# b"##"####), r##"a "# b"##);
    assert_eq!(string_value("r\"multi\nline\""), "multi\nline");
    assert_eq!(verbatim_at(r##"r#"abc"#"##), Some(3));
}

#[test]
fn comments_are_kept_aside_and_nest() {
    let src = "// line\n/// doc\n//// not doc\n/* a /* nested */ b */ port";
    let mut lexer = Lexer::new(src);
    let toks: Vec<_> = lexer.by_ref().map(|t| t.unwrap().1).collect();
    assert_eq!(toks, [Token::KwPort]);
    let kinds: Vec<_> = lexer
        .comments
        .iter()
        .map(|c| (c.kind, &src[c.span.start..c.span.end]))
        .collect();
    use mesh_lang::ast::CommentKind::*;
    assert_eq!(
        kinds,
        [
            (Line, "// line"),
            (Doc, "/// doc"),
            (Line, "//// not doc"),
            (Block, "/* a /* nested */ b */")
        ]
    );
}

#[test]
fn every_lexical_error_is_reported_and_lexing_goes_on() {
    assert_eq!(
        error_kinds("\"open\nport"),
        [LexErrorKind::UnterminatedString]
    );
    assert_eq!(
        error_kinds("r#\"open\"\nport"),
        [LexErrorKind::UnterminatedRawString]
    );
    assert_eq!(error_kinds("/* /* */"), [LexErrorKind::UnterminatedComment]);
    assert!(matches!(
        error_kinds(r#""\q""#).as_slice(),
        [LexErrorKind::BadEscape { len: 2, .. }]
    ));
    assert!(matches!(
        error_kinds(r#""\u{zz}""#).as_slice(),
        [LexErrorKind::BadEscape { .. }]
    ));
    assert!(matches!(
        error_kinds(r#""\u12""#).as_slice(),
        [LexErrorKind::BadEscape { .. }]
    ));
    assert_eq!(
        error_kinds("5sec"),
        [LexErrorKind::UnknownUnit {
            at: 1,
            unit: "sec".into()
        }]
    );
    assert_eq!(
        error_kinds("10/d"),
        [LexErrorKind::UnknownRateUnit { unit: "d".into() }]
    );
    assert_eq!(error_kinds("6xx"), [LexErrorKind::BadStatusClass]);
    assert_eq!(
        error_kinds("1.5 1.5s"),
        [LexErrorKind::DecimalNumber, LexErrorKind::DecimalNumber]
    );
    assert_eq!(error_kinds("1.2345%"), [LexErrorKind::TooPrecise]);
    assert_eq!(
        error_kinds("99999999999999999999"),
        [LexErrorKind::NumberTooLarge]
    );
    assert_eq!(error_kinds("'x'"), [LexErrorKind::SingleQuoted]);
    assert_eq!(error_kinds("; @ ~"), vec![LexErrorKind::UnexpectedChar; 3]);
    // After an error the next line still lexes.
    let mut lexer = Lexer::new("\"open\nport 80");
    let toks: Vec<_> = lexer.by_ref().map(|t| t.unwrap().1).collect();
    assert_eq!(toks, [Token::Error, Token::KwPort, Token::Int(80)]);
}

#[test]
fn open_braces_are_closed_at_end_of_input() {
    let mut lexer = Lexer::new("a { b { c");
    let toks: Vec<_> = lexer.by_ref().map(|t| t.unwrap()).collect();
    assert_eq!(lexer.unclosed, [2, 6]);
    assert_eq!(
        &toks[toks.len() - 2..],
        [(9, Token::RBrace, 9), (9, Token::RBrace, 9)]
    );
}

#[test]
fn the_raw_logos_lexer_reports_errors_as_err() {
    let mut raw = Token::lexer("§");
    assert_eq!(raw.next(), Some(Err(LexErrorKind::UnexpectedChar)));
}
