//! A route's request edits: headers set and removed, and a path prefix rewritten
//! (Istio's `headers` and `rewrite.uri`), applied once before the request is buffered,
//! mirrored and tried.

use http::Uri;
use http::header::{HeaderName, HeaderValue};
use mesh_config::schema::RouteRule;
use tower::Service;

use crate::error::ProxyError;
use crate::outbound::call::Call;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

/// Applies the matched rule's edits before `inner`.
#[derive(Clone)]
pub struct Rewrite<S> {
    inner: S,
}

impl<S> Rewrite<S> {
    /// The layer over `inner`.
    pub fn new(inner: S) -> Rewrite<S> {
        Rewrite { inner }
    }
}

impl<S: Stack<Call>> Service<Call> for Rewrite<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, mut call: Call) -> Self::Future {
        let snapshot = std::sync::Arc::clone(&call.snapshot);
        let rule = snapshot
            .config
            .config
            .resolve(call.route)
            .and_then(|d| d.rule);
        if let Some(rule) = rule {
            edit(rule, &mut call.head);
        }
        Box::pin(self.inner.call(call))
    }
}

/// Applies `rule`'s header edits and prefix rewrite to `head`.
fn edit(rule: &RouteRule, head: &mut http::request::Parts) {
    for name in &rule.remove_headers {
        head.headers.remove(name.as_str());
    }
    for set in &rule.set_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(set.name.as_bytes()),
            HeaderValue::from_str(&set.value),
        ) {
            head.headers.insert(name, value);
        }
    }
    if let Some(rewrite) = &rule.rewrite_prefix
        && let Some(path_and_query) = head.uri.path_and_query()
        && let Some(rest) = path_and_query.as_str().strip_prefix(rewrite.from.as_str())
        && let Ok(uri) = Uri::try_from(format!("{}{rest}", rewrite.to))
    {
        head.uri = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::{self, Seen};
    use serde_json::json;
    use tower::ServiceExt;

    #[tokio::test]
    async fn headers_are_set_and_removed_and_the_prefix_rewritten() {
        let edits = json!({
            "set_headers": [{"name": "x-set", "value": "yes"}],
            "remove_headers": ["x-gone"],
            "rewrite_prefix": {"from": "/old", "to": "/new"}
        });
        let snapshot = testing::snapshot(testing::config(json!([testing::rule("r", edits)])));
        let seen = Seen::default();
        let request = http::Request::builder()
            .uri("/old/page?q=1")
            .header("x-gone", "1")
            .header("x-kept", "1")
            .body("")
            .unwrap();
        Rewrite::new(seen.service())
            .oneshot(testing::call(&snapshot, request))
            .await
            .unwrap();
        let (_, uri, headers) = seen.last();
        assert_eq!(uri, "/new/page?q=1");
        assert_eq!(headers["x-set"], "yes");
        assert!(!headers.contains_key("x-gone"));
        assert_eq!(headers["x-kept"], "1");
    }
}
