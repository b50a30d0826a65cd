//! Globs as the language and Cedar's `like` write them: `*` matches any text (including
//! `/`), `\*` a literal star, `\\` a backslash; a glob matches the whole value.

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
    fn only_star_and_backslash_escape() {
        assert_eq!(Glob::new("/a\\d"), Err(GlobError { start: 2, end: 4 }));
        assert_eq!(Glob::new("/a\\"), Err(GlobError { start: 2, end: 3 }));
        assert!(Glob::new("\\*\\\\").is_ok());
    }
}
