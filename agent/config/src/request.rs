//! The view of an HTTP request that routing and authorization read. The agent implements
//! it over its hyper requests without copying; `meshc test` and `meshc explain` use
//! [`SimpleRequest`].

use std::borrow::Cow;

use mesh_vocab::{authority, query};

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
            host: authority::host(host).into_owned(),
            headers: Vec::new(),
            query: query::pairs(query)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
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

/// The authority and query helpers of `mesh-vocab`, under the names this module gave
/// them before they moved there.
pub use mesh_vocab::authority::strip_port;
pub use mesh_vocab::query::param as query_param;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_requests_read_hosts_and_queries_as_the_agent_does() {
        let r = SimpleRequest::new("get", "/x?q=1&e=a+b%21&&flag", "Cart:80");
        assert_eq!((r.method(), r.path(), r.host()), ("GET", "/x", "cart"));
        for name in ["q", "e", "flag", "", "missing"] {
            assert_eq!(
                r.query_param(name),
                query_param("q=1&e=a+b%21&&flag", name),
                "{name}"
            );
        }
        assert_eq!(r.query_param("e").as_deref(), Some("a b!"));
        assert_eq!(SimpleRequest::new("GET", "/", "u:p@Cart:80").host, "cart");
    }
}
