//! HTTP plumbing shared by the listeners: the body type, the agent's own error responses
//! (a status, a short plain-text reason and a `mesh-error` header naming the cause),
//! hop-by-hop header handling (RFC 9110 §7.6.1), and the view of a request that
//! `mesh-config`'s routing reads.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use mesh_config::RequestView;

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the agent sends and returns.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The header naming why the agent, not the upstream, answered.
pub const MESH_ERROR: &str = "mesh-error";

/// A body of fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Any body, boxed.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// The agent's own answer: `status`, a `mesh-error: cause` header and `message` as text.
pub fn error_response(status: StatusCode, cause: &'static str, message: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{message}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(MESH_ERROR, HeaderValue::from_static(cause));
    response
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header names. `TE` is
/// kept only as `trailers` (gRPC needs it); `Upgrade` is dropped.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    let te_trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The authority a request is for: the absolute-form URI's, else the `Host` header's.
pub fn authority<B>(request: &Request<B>) -> Option<&str> {
    request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// A request as routing sees it: method, path, lower-case host, headers, query, port.
pub struct View<'r> {
    port: u16,
    method: &'r str,
    path: &'r str,
    query: &'r str,
    host: Cow<'r, str>,
    headers: &'r HeaderMap,
}

impl<'r> View<'r> {
    /// A view of `request` sent to `authority` for destination `port` (0: unknown).
    pub fn new<B>(request: &'r Request<B>, authority: &'r str, port: u16) -> View<'r> {
        let host = mesh_config::vocab::authority::host(authority);
        View {
            port,
            method: request.method().as_str(),
            path: request.uri().path(),
            query: request.uri().query().unwrap_or(""),
            host,
            headers: request.headers(),
        }
    }
}

impl RequestView for View<'_> {
    fn method(&self) -> &str {
        self.method
    }

    fn path(&self) -> &str {
        self.path
    }

    fn host(&self) -> &str {
        &self.host
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        mesh_config::request::query_param(self.query, name)
    }

    fn port(&self) -> u16 {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_te_trailers_stays() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers, deflate"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "yes"),
        ] {
            headers.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-kept"]);
        assert_eq!(
            headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
    }
}
