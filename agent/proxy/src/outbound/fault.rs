//! Fault injection (a route's `fault`): delays a share of requests and aborts a share
//! with a status, as Istio's and Linkerd's chaos features do, to test how callers cope.

use std::time::Duration;

use http::StatusCode;
use mesh_config::schema::FULL_WEIGHT;
use tower::Service;

use crate::error::ProxyError;
use crate::outbound::call::Call;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack, take};

/// Injects the matched rule's faults before `inner`.
#[derive(Clone)]
pub struct Fault<S> {
    inner: S,
}

impl<S> Fault<S> {
    /// The layer over `inner`.
    pub fn new(inner: S) -> Fault<S> {
        Fault { inner }
    }
}

impl<S: Stack<Call>> Service<Call> for Fault<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, call: Call) -> Self::Future {
        let Some((delay, abort)) = call
            .rule()
            .and_then(|r| r.fault.as_ref())
            .map(|f| (f.delay, f.abort))
        else {
            return Box::pin(self.inner.call(call));
        };
        // The inner call happens after a delay: the future owns its service.
        let mut inner = take(&mut self.inner);
        Box::pin(async move {
            if let Some(delay) = delay
                && fastrand::u32(..FULL_WEIGHT) < delay.percent_milli
            {
                tokio::time::sleep(Duration::from_micros(delay.delay_us)).await;
            }
            if let Some(abort) = abort
                && fastrand::u32(..FULL_WEIGHT) < abort.percent_milli
            {
                let status =
                    StatusCode::from_u16(abort.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return Err(ProxyError::FaultInjected(status));
            }
            inner.call(call).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::{self, Seen};
    use serde_json::json;
    use tower::ServiceExt;

    fn request() -> http::Request<&'static str> {
        http::Request::builder().uri("/").body("").unwrap()
    }

    #[tokio::test]
    async fn an_abort_for_every_request_never_reaches_the_backend() {
        let fault = json!({"fault": {"delay": null, "abort": {"status": 418, "percent_milli": FULL_WEIGHT}}});
        let snapshot = testing::snapshot(testing::config(json!([testing::rule("r", fault)])));
        let seen = Seen::default();
        let error = Fault::new(seen.service())
            .oneshot(testing::call(&snapshot, request()))
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::FaultInjected(s) if s == 418));
        assert!(seen.all().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_for_every_request_waits_then_forwards() {
        let fault = json!({"fault": {"delay": {"delay_us": 2_000_000, "percent_milli": FULL_WEIGHT}, "abort": null}});
        let snapshot = testing::snapshot(testing::config(json!([testing::rule("r", fault)])));
        let seen = Seen::default();
        let started = tokio::time::Instant::now();
        let response = Fault::new(seen.service())
            .oneshot(testing::call(&snapshot, request()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(seen.all().len(), 1);
    }

    #[tokio::test]
    async fn without_a_fault_requests_pass() {
        let snapshot = testing::snapshot(testing::config(json!([])));
        let seen = Seen::default();
        Fault::new(seen.service())
            .oneshot(testing::call(&snapshot, request()))
            .await
            .unwrap();
        assert_eq!(seen.all().len(), 1);
    }
}
