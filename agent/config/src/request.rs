//! The view of an HTTP request that routing and authorization read. The agent implements
//! it over its hyper requests without copying; `meshc test` and `meshc explain` use
//! [`SimpleRequest`].

use std::borrow::Cow;

/// What the semantics read from a request.
pub trait RequestView {
    /// The method, upper case.
    fn method(&self) -> &str;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The authority without the port, lower case.
    fn host(&self) -> &str;
    /// A header by lower-case name.
    fn header(&self, name: &str) -> Option<&str>;
    /// A query parameter, decoded.
    fn query_param(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The destination port the request was sent to (the callee's service port): what
    /// `ports [...]` in a policy tests. 0 when unknown, which no `ports` list contains.
    fn port(&self) -> u16;
}

/// A request built from parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimpleRequest {
    /// Upper-case method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Host without the port.
    pub host: String,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Query parameters, decoded.
    pub query: Vec<(String, String)>,
    /// The destination port; 0 when unknown.
    pub port: u16,
}

impl SimpleRequest {
    /// A request with `method` and `path_and_query` (`/a?b=c`) to `host`.
    pub fn new(method: &str, path_and_query: &str, host: &str) -> SimpleRequest {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        SimpleRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            host: strip_port(host).to_ascii_lowercase(),
            headers: Vec::new(),
            query: parse_query(query),
            port: 0,
        }
    }

    /// Sets the destination port.
    pub fn on_port(mut self, port: u16) -> SimpleRequest {
        self.port = port;
        self
    }

    /// Adds a header (the name is lower-cased).
    pub fn header(mut self, name: &str, value: &str) -> SimpleRequest {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

impl RequestView for SimpleRequest {
    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn host(&self) -> &str {
        &self.host
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }

    fn port(&self) -> u16 {
        self.port
    }
}

/// `host:port` → `host`; `[::1]:80` → `[::1]`.
pub fn strip_port(authority: &str) -> &str {
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

/// Splits and decodes a query string.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k).into_owned(), decode(v).into_owned())
        })
        .collect()
}

/// Finds and decodes one parameter of a raw query string.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Percent-decoding with `+` as space; invalid escapes are kept as written.
pub fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_authorities() {
        assert_eq!(strip_port("reviews:9080"), "reviews");
        assert_eq!(strip_port("reviews"), "reviews");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(
            query_param("a=1&debug=yes%21&b", "debug").as_deref(),
            Some("yes!")
        );
        assert_eq!(query_param("a=1&b", "b").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "c"), None);
        assert_eq!(decode("a+b%2Fc%zz"), "a b/c%zz");
        let r = SimpleRequest::new("get", "/x?q=1", "Cart:80");
        assert_eq!((r.method(), r.path(), r.host()), ("GET", "/x", "cart"));
        assert_eq!(r.query_param("q").as_deref(), Some("1"));
    }
}
