//! Traffic mirroring (a route's `mirror`): a share of requests is copied to another
//! backend, fire and forget — the copy's answer is read and dropped and never delays
//! or changes the client's (Istio's `mirror`). Only buffered bodies are mirrored.

use std::time::Duration;

use http_body_util::BodyExt;
use mesh_config::schema::FULL_WEIGHT;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::{Service, ServiceExt};

use crate::error::ProxyError;
use crate::metrics::ServiceLabels;
use crate::outbound::call::Call;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

/// How long a mirrored copy may take before it is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies requests to the rule's mirrors through `send`, then calls `inner`.
#[derive(Clone)]
pub struct Mirror<S, M> {
    inner: S,
    send: M,
    mirrored: Family<ServiceLabels, Counter>,
}

impl<S, M> Mirror<S, M> {
    /// The layer over `inner`, sending copies with `send` and counting them in `mirrored`.
    pub fn new(inner: S, send: M, mirrored: Family<ServiceLabels, Counter>) -> Mirror<S, M> {
        Mirror {
            inner,
            send,
            mirrored,
        }
    }
}

impl<S: Stack<Call>, M: Stack<Call>> Service<Call> for Mirror<S, M> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, call: Call) -> Self::Future {
        let mirrors = call.rule().map_or(0, |r| r.mirrors.len());
        for index in 0..mirrors {
            let Some(mirror) = call.rule().and_then(|r| r.mirrors.get(index)) else {
                break;
            };
            if fastrand::u32(..FULL_WEIGHT) >= mirror.percent_milli {
                continue;
            }
            let Some(mut copy) = call.copy() else {
                break;
            };
            copy.mirror = Some(index);
            copy.tried = None;
            self.mirrored
                .get_or_create(&ServiceLabels {
                    service: mirror.backend.service.clone(),
                })
                .inc();
            let send = self.send.clone();
            tokio::spawn(async move {
                let sent = send.oneshot(copy);
                if let Ok(Ok(response)) = tokio::time::timeout(MIRROR_TIMEOUT, sent).await {
                    let _ = response.into_body().collect().await;
                }
            });
        }
        Box::pin(self.inner.call(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::{self, Seen};
    use serde_json::json;

    #[tokio::test]
    async fn every_request_is_copied_to_a_full_mirror_and_answered_by_the_route() {
        let mirror = json!({"mirrors": [{"service": "ns/reviews", "subset": "v2", "percent_milli": FULL_WEIGHT}]});
        let snapshot = testing::snapshot(testing::config(json!([testing::rule("r", mirror)])));
        let (routed, copies) = (Seen::default(), Seen::answering(|_| Ok(500)));
        let family = Family::<ServiceLabels, Counter>::default();
        let mirror = Mirror::new(routed.service(), copies.service(), family.clone());
        let response = mirror
            .oneshot(testing::call(&snapshot, http::Request::new("body")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the mirror's 500 changes nothing");
        assert_eq!(routed.last().0, "ns/reviews.v1");
        for _ in 0..100 {
            if !copies.all().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(copies.last().0, "ns/reviews.v2");
        let labels = ServiceLabels {
            service: "ns/reviews".into(),
        };
        assert_eq!(family.get_or_create(&labels).get(), 1);
    }
}
