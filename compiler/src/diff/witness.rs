//! Example strings for the patterns conditions test: a path a `like` glob or a `matches`
//! regex accepts. The analysis needs one value inside each pattern's class to look at it;
//! a pattern it finds no witness for still splits the other values by whether they match.

use mesh_config::glob::Glob;
use regex_syntax::hir::{Class, Hir, HirKind};

/// What the analysis writes for a glob's `*`, a prefix's continuation and a value no
/// condition names: short, plain and unlikely to be a constant of a real mesh.
pub(super) const FILLER: &str = "x";

/// Strings `glob` (written as in the language: `*` any text, `\*` and `\\` escapes)
/// matches: each `*` as nothing and as [`FILLER`]. Empty when the glob does not parse.
pub(super) fn glob_witnesses(glob: &str) -> Vec<String> {
    let Ok(compiled) = Glob::new(glob) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for star in ["", FILLER] {
        let mut text = String::new();
        let mut chars = glob.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => text.extend(chars.next()),
                '*' => text.push_str(star),
                c => text.push(c),
            }
        }
        if compiled.matches(&text) && !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// A string `regex` (Rust syntax, unanchored search) matches, when one is found by taking
/// the shortest way through it; `None` when it does not parse or the way found fails
/// (look-arounds such as `\b` are not followed).
pub(super) fn regex_witness(regex: &str, compiled: &regex::Regex) -> Option<String> {
    let hir = regex_syntax::Parser::new().parse(regex).ok()?;
    let mut out = String::new();
    walk(&hir, &mut out, 0)?;
    compiled.is_match(&out).then_some(out)
}

/// Characters preferred when a class offers a choice, so examples stay readable.
const PREFERRED: [char; 6] = ['a', '0', 'A', '-', '/', '.'];

fn walk(hir: &Hir, out: &mut String, depth: usize) -> Option<()> {
    if depth > 64 || out.len() > 256 {
        return None;
    }
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => out.push_str(std::str::from_utf8(&literal.0).ok()?),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            let preferred = PREFERRED
                .into_iter()
                .find(|c| ranges.iter().any(|r| r.start() <= *c && *c <= r.end()));
            out.push(preferred.or_else(|| ranges.first().map(|r| r.start()))?);
        }
        HirKind::Class(Class::Bytes(class)) => {
            let byte = class.ranges().first()?.start();
            out.push(char::from(byte).is_ascii().then_some(char::from(byte))?);
        }
        HirKind::Repetition(repetition) => {
            for _ in 0..repetition.min.min(16) {
                walk(&repetition.sub, out, depth + 1)?;
            }
        }
        HirKind::Capture(capture) => walk(&capture.sub, out, depth + 1)?,
        HirKind::Concat(items) => {
            for item in items {
                walk(item, out, depth + 1)?;
            }
        }
        HirKind::Alternation(items) => walk(items.first()?, out, depth + 1)?,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_witnessed_with_and_without_text_for_their_stars() {
        assert_eq!(glob_witnesses("/api/*"), ["/api/", "/api/x"]);
        assert_eq!(glob_witnesses("/a/*/b"), ["/a//b", "/a/x/b"]);
        assert_eq!(glob_witnesses(r"/lit\*"), ["/lit*"]);
        assert!(glob_witnesses(r"/bad\q").is_empty());
    }

    #[test]
    fn regexes_are_witnessed_by_a_string_they_match() {
        for pattern in [
            r"^/reviews/\d+$",
            r"^/(a|b)c[x-z]{2,3}",
            r"v[0-9]+\.json",
            r"^$",
        ] {
            let compiled = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{e}"));
            let witness = regex_witness(pattern, &compiled);
            assert!(
                witness.as_deref().is_some_and(|w| compiled.is_match(w)),
                "{pattern}: {witness:?}"
            );
        }
        let word = regex::Regex::new(r"\bx\b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(regex_witness(r"\bx\b", &word).as_deref(), Some("x"));
    }
}
