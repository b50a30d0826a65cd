//! Retries (a route's or service's retry profile): a try that fails the way the profile
//! names — a status, a reset, a refused connection, its per-try timeout — is sent again,
//! to another endpoint when there is one, after a jittered back-off, as long as the
//! service's retry budget allows ([`retry_policy`](crate::outbound::retry_policy)).
//! Only buffered bodies are retried.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::Service;

use crate::error::ProxyError;
use crate::metrics::ServiceLabels;
use crate::outbound::call::{Call, CallBody};
use crate::outbound::retry_policy::{self, Budgets, Outcome};
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack, take};

/// Retries `inner`'s failed tries.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    budgets: Arc<Budgets>,
    retries: Family<ServiceLabels, Counter>,
    exhausted: Family<ServiceLabels, Counter>,
}

impl<S> Retry<S> {
    /// The layer over `inner`, with the agent's budgets, counting retries sent and those
    /// the budget refused.
    pub fn new(
        inner: S,
        budgets: Arc<Budgets>,
        retries: Family<ServiceLabels, Counter>,
        exhausted: Family<ServiceLabels, Counter>,
    ) -> Retry<S> {
        Retry {
            inner,
            budgets,
            retries,
            exhausted,
        }
    }
}

/// How a try ended, for the retry policy; `None` for an answer no retry can change.
fn outcome(answer: &Answer) -> Option<Outcome> {
    match answer {
        Ok(response) => Some(Outcome::Status(response.status().as_u16())),
        Err(ProxyError::Connect { .. }) => Some(Outcome::ConnectFailure),
        Err(ProxyError::Reset { .. }) => Some(Outcome::Reset),
        Err(ProxyError::PerTryTimeout { .. }) => Some(Outcome::PerTryTimeout),
        Err(_) => None,
    }
}

impl<S: Stack<Call>> Service<Call> for Retry<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, call: Call) -> Self::Future {
        let retried = matches!(call.body, CallBody::Buffered(_))
            && call.decision().is_ok_and(|d| d.retry.is_some());
        if !retried {
            return Box::pin(self.inner.call(call));
        }
        // Tries are sent later, one after another: the future owns its service.
        let mut inner = take(&mut self.inner);
        let snapshot = Arc::clone(&call.snapshot);
        let (budgets, retries, exhausted) = (
            Arc::clone(&self.budgets),
            self.retries.clone(),
            self.exhausted.clone(),
        );
        Box::pin(async move {
            // The profile is read from the snapshot the request holds, not copied.
            let Some(decision) = snapshot.config.config.resolve(call.route) else {
                return Err(ProxyError::Internal("route lookup failed"));
            };
            let Some(profile) = decision.retry else {
                return inner.call(call).await;
            };
            let service = decision.service.service.as_str();
            let labels = || ServiceLabels {
                service: service.to_string(),
            };
            let budget = budgets.get(service, profile);
            retry_policy::deposit(budget.as_ref());
            let attempts = profile.attempts.max(1);
            let per_try = profile.per_try_timeout_us.map(Duration::from_micros);
            let mut call = Some(call);
            let mut last = None;
            for attempt in 1..=attempts {
                if attempt > 1 {
                    if !retry_policy::withdraw(budget.as_ref()) {
                        exhausted.get_or_create(&labels()).inc();
                        break;
                    }
                    retries.get_or_create(&labels()).inc();
                    tokio::time::sleep(retry_policy::backoff(profile, attempt - 1)).await;
                }
                let this_try = match (attempt < attempts, call.as_ref()) {
                    (true, Some(original)) => original.copy(),
                    _ => call.take(),
                };
                let Some(this_try) = this_try else { break };
                let sent = inner.call(this_try);
                let answer = match per_try {
                    Some(limit) => tokio::time::timeout(limit, sent).await.unwrap_or_else(|_| {
                        Err(ProxyError::PerTryTimeout {
                            service: service.to_string(),
                        })
                    }),
                    None => sent.await,
                };
                let again = attempt < attempts
                    && outcome(&answer).is_some_and(|o| retry_policy::retries(profile, o));
                if !again {
                    return answer;
                }
                last = Some(answer);
            }
            last.unwrap_or(Err(ProxyError::Internal("no try was sent")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::{self, Seen};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn profile(extra: Value) -> Value {
        let mut retry = json!({
            "profile": "p", "attempts": 3, "per_try_timeout_us": null,
            "on_status": [], "on_class": [5], "on_reset": true, "on_connect_failure": true,
            "on_refused_stream": false, "backoff": null, "budget": null
        });
        if let (Some(r), Value::Object(extra)) = (retry.as_object_mut(), extra) {
            r.extend(extra);
        }
        retry
    }

    fn retrying(
        seen: &Seen,
        extra: Value,
    ) -> (
        Retry<impl Stack<Call>>,
        Call,
        Family<ServiceLabels, Counter>,
    ) {
        let rule = testing::rule("r", json!({"retry": profile(extra)}));
        let snapshot = testing::snapshot(testing::config(json!([rule])));
        let retries = Family::default();
        let layer = Retry::new(
            seen.service(),
            Arc::default(),
            retries.clone(),
            Family::default(),
        );
        (
            layer,
            testing::call(&snapshot, http::Request::new("body")),
            retries,
        )
    }

    #[tokio::test]
    async fn a_5xx_then_a_reset_are_retried_until_a_success() {
        let seen = Seen::answering(|n| match n {
            0 => Ok(503),
            1 => Err(|| ProxyError::Reset {
                target: "x".into(),
                error: "reset".into(),
            }),
            _ => Ok(200),
        });
        let (layer, call, retries) = retrying(&seen, json!({}));
        assert_eq!(layer.oneshot(call).await.unwrap().status(), 200);
        assert_eq!(seen.all().len(), 3);
        let labels = ServiceLabels {
            service: "ns/reviews".into(),
        };
        assert_eq!(retries.get_or_create(&labels).get(), 2);
    }

    #[tokio::test]
    async fn the_last_answer_is_returned_when_tries_run_out_and_4xx_is_not_retried() {
        let seen = Seen::answering(|_| Ok(502));
        let (layer, call, _) = retrying(&seen, json!({}));
        assert_eq!(layer.oneshot(call).await.unwrap().status(), 502);
        assert_eq!(seen.all().len(), 3);

        let seen = Seen::answering(|_| Ok(404));
        let (layer, call, _) = retrying(&seen, json!({}));
        assert_eq!(layer.oneshot(call).await.unwrap().status(), 404);
        assert_eq!(seen.all().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_past_its_per_try_timeout_is_retried() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let slow_then_fast = tower::service_fn(move |_: Call| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok(http::Response::new(crate::http::full("")))
            }) as BoxFuture<Answer>
        });
        let rule = testing::rule(
            "r",
            json!({"retry": profile(json!({"per_try_timeout_us": 100_000}))}),
        );
        let snapshot = testing::snapshot(testing::config(json!([rule])));
        let layer = Retry::new(
            slow_then_fast,
            Arc::default(),
            Family::default(),
            Family::default(),
        );
        let started = tokio::time::Instant::now();
        let response = layer
            .oneshot(testing::call(&snapshot, http::Request::new("")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn an_empty_budget_stops_retries() {
        let seen = Seen::answering(|_| Ok(503));
        let budget = json!({"budget": {"ratio_milli": 0, "min_per_second": 0.0}});
        let (layer, call, _) = retrying(&seen, budget);
        assert_eq!(layer.oneshot(call).await.unwrap().status(), 503);
        assert_eq!(seen.all().len(), 1, "no retry without budget");
    }
}
