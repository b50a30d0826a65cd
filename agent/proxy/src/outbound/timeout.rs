//! The route timeout: the whole request, retries and back-off included, must be answered
//! within it, or the client gets 504 (Istio's `timeout`, Linkerd's `timeout.request`).
//! Upgrades are exempt: their handshake opens a long-lived connection.

use std::time::Duration;

use tower::Service;

use crate::error::ProxyError;
use crate::outbound::call::Call;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

/// Bounds `inner` by the route's timeout.
#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
}

impl<S> Timeout<S> {
    /// The layer over `inner`.
    pub fn new(inner: S) -> Timeout<S> {
        Timeout { inner }
    }
}

impl<S: Stack<Call>> Service<Call> for Timeout<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, call: Call) -> Self::Future {
        let timeout = call
            .decision()
            .ok()
            .and_then(|d| d.timeout_us)
            .map(Duration::from_micros)
            .filter(|_| call.upgrade.is_none());
        let service = call.service_ref();
        let sent = self.inner.call(call);
        match timeout {
            None => Box::pin(sent),
            Some(timeout) => Box::pin(async move {
                tokio::time::timeout(timeout, sent)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ProxyError::Timeout {
                            service: service.name(),
                            timeout,
                        })
                    })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing;
    use serde_json::json;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_becomes_a_504_after_the_route_timeout() {
        let rule = testing::rule("r", json!({"timeout_us": 1_000_000}));
        let snapshot = testing::snapshot(testing::config(json!([rule])));
        let slow = tower::service_fn(|_: Call| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(http::Response::new(crate::http::full("")))
            }) as BoxFuture<Answer>
        });
        let started = tokio::time::Instant::now();
        let error = Timeout::new(slow)
            .oneshot(testing::call(&snapshot, http::Request::new("")))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProxyError::Timeout { timeout, .. } if timeout == Duration::from_secs(1))
        );
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
