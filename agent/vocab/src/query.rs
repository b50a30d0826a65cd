//! Query strings as `query("name")` conditions, policies' `context.query` and `meshc test`
//! read them: `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte, invalid
//! escapes are kept as written, empty pairs are skipped, a name without `=` has the value
//! `""`), decoded by the `form_urlencoded` crate so that the agent (one parameter at a
//! time, from the raw query) and `SimpleRequest` (all pairs up front) read the same thing.

use std::borrow::Cow;

/// The decoded `(name, value)` pairs of a raw query string (without the `?`), in order.
pub fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.as_bytes())
}

/// The decoded value of the first parameter called `name`, if any.
pub fn param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    pairs(query).find_map(|(k, v)| (k == name).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(query: &str) -> Vec<(String, String)> {
        pairs(query)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_found_and_decoded() {
        assert_eq!(
            param("a=1&debug=yes%21&b", "debug").as_deref(),
            Some("yes!")
        );
        assert_eq!(param("a=1&b", "b").as_deref(), Some(""));
        assert_eq!(param("a=1", "c"), None);
        assert_eq!(param("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(param("x%20y=1", "x y").as_deref(), Some("1"));
        assert_eq!(param("q=a+b%2Fc%zz", "q").as_deref(), Some("a b/c%zz"));
        assert_eq!(param("q=%2B", "q").as_deref(), Some("+"));
        assert_eq!(param("q=a=b", "q").as_deref(), Some("a=b"));
        assert_eq!(param("q=%", "q").as_deref(), Some("%"));
        assert_eq!(param("q=%e9", "q").as_deref(), Some("\u{fffd}"));
        assert!(matches!(
            param("q=plain", "q"),
            Some(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn all_pairs_in_order_without_empty_ones() {
        assert_eq!(
            all("a=1&&b&=x&c=%41"),
            [("a", "1"), ("b", ""), ("", "x"), ("c", "A")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(all("").is_empty());
        assert!(all("&&").is_empty());
    }

    #[test]
    fn both_ways_of_reading_agree_where_the_copies_did_not() {
        // The old one-parameter reader found the empty pair of `a&&b` under the name ""
        // while the all-pairs reader skipped it, and both read `%+1` as byte 1 (a signed
        // hex number); now there is one reader.
        assert_eq!(param("a&&b", ""), None);
        assert_eq!(param("q=%+1", "q").as_deref(), Some("% 1"));
        for query in ["a&&b", "=x", "q=%+1", "k=v&k=w", "%zz=1"] {
            for (name, value) in all(query) {
                let first = all(query).into_iter().find(|(k, _)| *k == name);
                assert_eq!(
                    param(query, &name).map(Cow::into_owned),
                    first.map(|(_, v)| v),
                    "{query} {name} {value}"
                );
            }
        }
    }
}
