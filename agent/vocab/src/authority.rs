//! Authorities and hosts: how a request's target (`reviews`, `reviews:9080`,
//! `reviews.bookinfo.svc.cluster.local`, `[::1]:80`) names a host.
//!
//! The agent routes by the host of the absolute-form URI or the `Host` header, `host`
//! conditions and policies compare against it, `meshc test` and `meshc explain` build
//! their requests with it, and `mesh_config::Config::new` holds a config's authorities
//! to it: a service's authority is a host, because that is all a lookup ever compares.

use std::borrow::Cow;

/// The host of an authority, as written: `host:port` → `host`; `[::1]:80` → `[::1]`;
/// `user@host:port` → `host` (user information is never part of the host).
pub fn strip_port(authority: &str) -> &str {
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.starts_with('[') {
        return authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// The host of an authority, lower-cased (host names are case-insensitive): what
/// routing looks services up by and what `host` conditions see. Borrows when the host is
/// already lower case.
pub fn host(authority: &str) -> Cow<'_, str> {
    let host = strip_port(authority);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Whether `authority` is already a bare host, as a config's service authorities must be:
/// not empty, and with no port or user information for a lookup to strip.
pub fn is_host(authority: &str) -> bool {
    !authority.is_empty() && strip_port(authority) == authority
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_go_and_brackets_stay() {
        assert_eq!(strip_port("reviews:9080"), "reviews");
        assert_eq!(strip_port("reviews"), "reviews");
        assert_eq!(strip_port("reviews:"), "reviews");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("[::1"), "[::1");
        assert_eq!(strip_port("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(strip_port(""), "");
    }

    #[test]
    fn user_information_is_not_the_host() {
        // The copy in mesh-config read `user:pw@reviews:9080` as host `user`.
        assert_eq!(strip_port("user:pw@reviews:9080"), "reviews");
        assert_eq!(strip_port("user@[::1]:80"), "[::1]");
        assert_eq!(strip_port("user@reviews"), "reviews");
    }

    #[test]
    fn hosts_are_lower_cased_and_borrowed_when_they_already_are() {
        assert_eq!(host("Cart:80"), "cart");
        assert!(matches!(host("Cart:80"), Cow::Owned(_)));
        assert!(matches!(host("cart:80"), Cow::Borrowed("cart")));
        assert_eq!(host("REVIEWS.bookinfo.svc"), "reviews.bookinfo.svc");
    }

    #[test]
    fn a_config_authority_is_a_bare_host() {
        assert!(is_host("reviews"));
        assert!(is_host("reviews.bookinfo.svc.cluster.local"));
        assert!(is_host("Reviews"));
        assert!(is_host("[::1]"));
        assert!(!is_host(""));
        assert!(!is_host("reviews:9080"));
        assert!(!is_host("user@reviews"));
    }
}
