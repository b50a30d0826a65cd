//! Request metrics, for both stacks: each request's outcome (direction, service, subset,
//! rule, status — the agent's own answers included) and latency, recorded when the stack
//! below answers.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tower::Service;

use crate::access_log::{Note, NoteSlot, Routed};
use crate::error::ProxyError;
use crate::metrics::{DirectionLabels, Name, RequestLabels};
use crate::outbound::call::Call;
use crate::outbound::passthrough::Unrouted;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

/// What a request is counted under.
pub trait Labelled {
    /// Its labels (the status is filled in with the answer).
    fn labels(&self) -> RequestLabels;

    /// Its access-log note, when the log is on (then its routing is noted there).
    fn access_note(&self) -> Option<Arc<Note>> {
        None
    }
}

impl Labelled for Call {
    fn access_note(&self) -> Option<Arc<Note>> {
        self.head
            .extensions
            .get::<NoteSlot>()
            .map(|slot| Arc::clone(&slot.0))
    }

    fn labels(&self) -> RequestLabels {
        self.snapshot
            .request_labels(self.route)
            .unwrap_or_else(|| RequestLabels::new("outbound", "", "", ""))
    }
}

impl Labelled for Unrouted {
    fn labels(&self) -> RequestLabels {
        RequestLabels {
            direction: "outbound",
            service: Name::Static("passthrough"),
            subset: Name::Static(""),
            rule: Name::Static(""),
            status: 0,
        }
    }
}

/// Counts and times `inner`'s answers.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    requests: Family<RequestLabels, Counter>,
    latency: Family<DirectionLabels, Histogram>,
}

impl<S> Observe<S> {
    /// The layer over `inner`, recording into `requests` and `latency`.
    pub fn new(
        inner: S,
        requests: Family<RequestLabels, Counter>,
        latency: Family<DirectionLabels, Histogram>,
    ) -> Observe<S> {
        Observe {
            inner,
            requests,
            latency,
        }
    }
}

impl<R: Labelled, S: Stack<R>> Service<R> for Observe<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, request: R) -> Self::Future {
        let started = Instant::now();
        let mut labels = request.labels();
        let note = request.access_note();
        let sent = self.inner.call(request);
        let (requests, latency) = (self.requests.clone(), self.latency.clone());
        Box::pin(async move {
            let answer = sent.await;
            if let Some(note) = note {
                let (service, subset, rule) = (
                    labels.service.as_str(),
                    labels.subset.as_str(),
                    labels.rule.as_str(),
                );
                note.routed(Routed {
                    rule: (!rule.is_empty()).then(|| rule.to_string()),
                    backend: (!service.is_empty()).then(|| match subset {
                        "" => service.to_string(),
                        subset => format!("{service}.{subset}"),
                    }),
                });
            }
            labels.status = match &answer {
                Ok(response) => response.status().as_u16(),
                Err(error) => error.status_and_cause().0.as_u16(),
            };
            requests.get_or_create(&labels).inc();
            latency
                .get_or_create(&DirectionLabels {
                    direction: labels.direction,
                })
                .observe(started.elapsed().as_secs_f64());
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::{self, Seen};
    use serde_json::json;
    use tower::ServiceExt;

    #[tokio::test]
    async fn an_answer_and_an_error_are_counted_by_status() {
        let snapshot = testing::snapshot(testing::config(json!([testing::rule("r", json!({}))])));
        let metrics = crate::metrics::Metrics::default();
        let requests = metrics.requests.clone();
        let failing = Seen::answering(|n| {
            if n == 0 {
                Ok(201)
            } else {
                Err(|| ProxyError::NoEndpoints("x".into()))
            }
        });
        let observe = Observe::new(failing.service(), requests.clone(), metrics.latency.clone());
        observe
            .clone()
            .oneshot(testing::call(&snapshot, http::Request::new("")))
            .await
            .unwrap();
        observe
            .oneshot(testing::call(&snapshot, http::Request::new("")))
            .await
            .unwrap_err();
        let count = |status| {
            requests
                .get_or_create(&RequestLabels {
                    status,
                    ..RequestLabels::new("outbound", "ns/reviews", "v1", "r")
                })
                .get()
        };
        assert_eq!((count(201), count(503)), (1, 1));
    }
}
