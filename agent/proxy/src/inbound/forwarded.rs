//! Tells the app who called, as Envoy and Istio do: `x-forwarded-client-cert:
//! By=<this workload's id>;URI=<the caller's verified id>`. Whatever the caller sent under
//! that name is dropped first, so an app can trust the header; plaintext callers get none.

use tower::Service;

use crate::error::ProxyError;
use crate::inbound::Arrived;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

const XFCC: &str = "x-forwarded-client-cert";

/// Sets `x-forwarded-client-cert` before `inner`.
#[derive(Clone)]
pub struct ForwardedClientCert<S> {
    inner: S,
}

impl<S> ForwardedClientCert<S> {
    /// The layer over `inner`.
    pub fn new(inner: S) -> ForwardedClientCert<S> {
        ForwardedClientCert { inner }
    }
}

impl<S: Stack<Arrived>> Service<Arrived> for ForwardedClientCert<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, mut arrived: Arrived) -> Self::Future {
        let own = &arrived.snapshot.config.config.source().workload.identity;
        let value = arrived.caller.forwarded_client_cert(own);
        let headers = arrived.request.headers_mut();
        headers.remove(XFCC);
        if let Some(value) = value {
            headers.insert(XFCC, value);
        }
        Box::pin(self.inner.call(arrived))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::testing;
    use http_body_util::BodyExt;
    use serde_json::json;
    use tower::ServiceExt;

    async fn xfcc(caller: Option<&str>) -> String {
        let request = http::Request::builder()
            .header(XFCC, "By=forged")
            .body(crate::http::full(""))
            .unwrap();
        let config = testing::config(json!({"kind": "allow_all"}));
        let arrived = testing::arrived(config, caller, request);
        let response = ForwardedClientCert::new(testing::echo_xfcc())
            .oneshot(arrived)
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_verified_caller_is_named_and_a_forged_header_dropped() {
        assert_eq!(
            xfcc(Some("spiffe://cluster.local/ns/ns/sa/productpage")).await,
            "By=spiffe://cluster.local/ns/ns/sa/reviews;URI=spiffe://cluster.local/ns/ns/sa/productpage"
        );
        assert_eq!(xfcc(None).await, "", "plaintext callers get none");
    }
}
