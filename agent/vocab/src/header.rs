//! Header names: RFC 9110 tokens. The language's `header("name")` and `set_header`,
//! `meshc explain --header`, and a config's header lists all name headers; requests carry
//! them lower-cased, which the compiler does to what users write and `mesh_config`
//! requires of what a config holds.

/// The characters of an RFC 9110 token besides letters and digits.
const TOKEN_PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";

/// Whether `name` is a header name: a non-empty RFC 9110 token (any case).
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TOKEN_PUNCTUATION.contains(&b))
}

/// Whether `name` is a header name as requests are looked up by: a token in lower case.
pub fn is_lookup_name(name: &str) -> bool {
    is_name(name) && !name.bytes().any(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_any_case_are_names() {
        for good in ["x-request-id", "X-Request-Id", "a", "!#$%&'*+-.^_`|~", "h2"] {
            assert!(is_name(good), "{good}");
        }
        for bad in ["", "x y", "a:b", "é", "a\"b", "(a)", "a/b", "a\tb"] {
            assert!(!is_name(bad), "{bad}");
        }
    }

    #[test]
    fn lookups_need_lower_case() {
        assert!(is_lookup_name("x-request-id"));
        assert!(!is_lookup_name("X-Request-Id"));
        assert!(!is_lookup_name(""));
    }
}
