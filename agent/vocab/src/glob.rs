//! Globs as the language and Cedar's `like` write them: `*` matches any text (including
//! `/`), `\*` a literal star, `\\` a backslash; a glob matches the whole value.
//!
//! The compiler validates `like` and `paths [...]` globs with [`Glob::new`] (its `E0007`
//! points at [`GlobError`]'s range) and reasons about them with [`Glob::matches`] in its
//! lints; `mesh-config` compiles them with the same function for the agent. Any other
//! escape is an error, and an invalid glob matches nothing.

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pieces: Vec<Piece>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Star,
    Char(char),
}

/// An escape other than `\*` and `\\`, at this byte range of the glob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid escape at bytes {start}..{end}: only `\\*` and `\\\\` are escapes")]
pub struct GlobError {
    /// First byte of the bad escape.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

impl Glob {
    /// Compiles `glob`.
    pub fn new(glob: &str) -> Result<Glob, GlobError> {
        let mut pieces = Vec::with_capacity(glob.len());
        let mut chars = glob.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '*' => {
                    if pieces.last() != Some(&Piece::Star) {
                        pieces.push(Piece::Star);
                    }
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => pieces.push(Piece::Char(escaped)),
                    Some((j, other)) => {
                        return Err(GlobError {
                            start: i,
                            end: j + other.len_utf8(),
                        });
                    }
                    None => {
                        return Err(GlobError {
                            start: i,
                            end: i + 1,
                        });
                    }
                },
                other => pieces.push(Piece::Char(other)),
            }
        }
        Ok(Glob { pieces })
    }

    /// The text every match starts with: the glob up to its first `*`, unescaped.
    pub fn literal_prefix(&self) -> String {
        self.pieces
            .iter()
            .map_while(|piece| match piece {
                Piece::Char(c) => Some(*c),
                Piece::Star => None,
            })
            .collect()
    }

    /// Whether the glob matches all of `text`.
    pub fn matches(&self, text: &str) -> bool {
        // Iterative matching with backtracking to the last star: O(n·m) worst case,
        // linear for the usual one or two stars.
        let pieces = &self.pieces;
        let mut p = 0usize;
        let mut rest = text;
        let mut star: Option<(usize, &str)> = None;
        loop {
            match pieces.get(p) {
                Some(Piece::Star) => {
                    star = Some((p, rest));
                    p += 1;
                    continue;
                }
                Some(Piece::Char(c)) => {
                    let mut chars = rest.chars();
                    if chars.next() == Some(*c) {
                        rest = chars.as_str();
                        p += 1;
                        continue;
                    }
                }
                None if rest.is_empty() => return true,
                None => {}
            }
            // Mismatch: let the last star swallow one more character.
            let Some((star_p, star_rest)) = star else {
                return false;
            };
            let mut chars = star_rest.chars();
            if chars.next().is_none() {
                return false;
            }
            star = Some((star_p, chars.as_str()));
            rest = chars.as_str();
            p = star_p + 1;
        }
    }
}

/// Whether `glob` matches all of `text`; an invalid glob matches nothing.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    Glob::new(glob).is_ok_and(|g| g.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whole_values_with_stars_anywhere() {
        assert!(glob_matches("/cart/*", "/cart/items"));
        assert!(glob_matches("/cart/*", "/cart/"));
        assert!(!glob_matches("/cart/*", "/cart"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*.example.org", "api.example.org"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("a**", "a"));
        assert!(glob_matches("\\*", "*"));
        assert!(!glob_matches("\\*", "x"));
        assert!(glob_matches("é*", "été"));
    }

    #[test]
    fn stars_match_across_slashes_and_nothing_else_is_special() {
        assert!(glob_matches("/a/*", "/a/b/c"));
        assert!(glob_matches("*/c", "/a/b/c"));
        assert!(glob_matches("/a?b", "/a?b"));
        assert!(!glob_matches("/a?b", "/axb"));
        assert!(glob_matches("[a]", "[a]"));
        assert!(glob_matches("\\\\", "\\"));
        assert!(glob_matches("a\\\\*", "a\\xyz"));
        assert!(glob_matches("*a*a*a", "aaaaaaaa"));
        assert!(!glob_matches("*a*a*b", "aaaaaaaa"));
        assert!(!glob_matches("", "x"));
        assert!(glob_matches("", ""));
    }

    #[test]
    fn invalid_escapes_match_nothing() {
        // The compiler's lints had a copy that read `\d` as `d` and a trailing `\` as
        // a backslash, while the agent refused both; now both refuse.
        assert!(!glob_matches("\\d", "d"));
        assert!(!glob_matches("\\d", "\\d"));
        assert!(!glob_matches("a\\", "a\\"));
    }

    #[test]
    fn literal_prefixes_stop_at_the_first_star() {
        let prefix = |g: &str| Glob::new(g).map(|g| g.literal_prefix());
        assert_eq!(prefix("/cart/*/x"), Ok("/cart/".to_string()));
        assert_eq!(prefix("/a\\*b*"), Ok("/a*b".to_string()));
        assert_eq!(prefix("*"), Ok(String::new()));
        assert_eq!(prefix("/exact"), Ok("/exact".to_string()));
    }

    #[test]
    fn only_star_and_backslash_escape() {
        assert_eq!(Glob::new("/a\\d"), Err(GlobError { start: 2, end: 4 }));
        assert_eq!(Glob::new("/a\\"), Err(GlobError { start: 2, end: 3 }));
        assert!(Glob::new("\\*\\\\").is_ok());
    }
}
