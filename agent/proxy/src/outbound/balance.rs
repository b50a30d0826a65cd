//! Load balancing: each try goes to one endpoint of its backend's pool, picked by the
//! service's algorithm ([`Pool::pick`](crate::pool::Pool::pick): round robin, random,
//! least request, peak EWMA), away from the endpoint of the previous try when there is
//! another. The try's in-flight count and latency feed the algorithm; a refused
//! connection feeds passive health (ejection, counted) — or, for a service with an
//! `outlier` block, every answer feeds outlier detection ([`crate::pool`]): 5xx answers,
//! failed connections and resets in a row eject the endpoint (counted in
//! `mesh_outlier_ejections_total`), anything else resets the run.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::Service;

use crate::error::ProxyError;
use crate::metrics::ServiceLabels;
use crate::outbound::call::{Call, backend_name};
use crate::outbound::endpoint::Dispatch;
use crate::pool::EndpointState;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};
use crate::state::ServicePools;
use mesh_config::schema::Outlier;

/// Picks an endpoint for each try, then calls `inner`.
#[derive(Clone)]
pub struct Balance<S> {
    inner: S,
    ejections: Family<ServiceLabels, Counter>,
    outlier_ejections: Family<ServiceLabels, Counter>,
}

impl<S> Balance<S> {
    /// The layer over `inner`, counting passive-health ejections in `ejections` and
    /// outlier ejections in `outlier_ejections`.
    pub fn new(
        inner: S,
        ejections: Family<ServiceLabels, Counter>,
        outlier_ejections: Family<ServiceLabels, Counter>,
    ) -> Balance<S> {
        Balance {
            inner,
            ejections,
            outlier_ejections,
        }
    }
}

/// Outlier detection: records `answer` from `endpoint`; true when it ejected it.
fn outlier_health(
    answer: &Answer,
    endpoint: &EndpointState,
    service: &ServicePools,
    outlier: &Outlier,
) -> bool {
    let failed = match answer {
        Ok(response) => response.status().is_server_error(),
        Err(ProxyError::Connect { .. } | ProxyError::Reset { .. }) => true,
        Err(_) => return false,
    };
    if !failed {
        endpoint.outlier_succeeded();
        return false;
    }
    endpoint.outlier_failed(outlier) && service.eject(endpoint, outlier)
}

impl<S: Stack<Dispatch>> Service<Call> for Balance<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, call: Call) -> Self::Future {
        let picked = pick(&call);
        let (endpoint, service) = match picked {
            Ok(picked) => picked,
            Err(error) => return Box::pin(async { Err(error) }),
        };
        call.trying(endpoint.addr);
        let outlier = service.outlier.map(|o| (o, Arc::clone(&service)));
        let in_flight = endpoint.start();
        let service_ref = call.service_ref();
        let dispatch = Dispatch {
            call,
            addr: endpoint.addr,
            service,
        };
        let sent = self.inner.call(dispatch);
        let ejections = self.ejections.clone();
        let outlier_ejections = self.outlier_ejections.clone();
        Box::pin(async move {
            let answer = sent.await;
            drop(in_flight);
            if let Some((outlier, service)) = outlier {
                if outlier_health(&answer, &endpoint, &service, &outlier) {
                    let name = service_ref.name();
                    outlier_ejections
                        .get_or_create(&ServiceLabels {
                            service: name.clone(),
                        })
                        .inc();
                    tracing::warn!(endpoint = %endpoint.addr, service = %name, "endpoint ejected by outlier detection");
                }
                return answer;
            }
            match &answer {
                Ok(_) => endpoint.connected(),
                Err(ProxyError::Connect { error, .. }) => {
                    if endpoint.connect_failed() {
                        let name = service_ref.name();
                        ejections
                            .get_or_create(&ServiceLabels {
                                service: name.clone(),
                            })
                            .inc();
                        tracing::warn!(endpoint = %endpoint.addr, service = %name, %error, "endpoint ejected after a connect failure");
                    }
                }
                Err(_) => {}
            }
            answer
        })
    }
}

type Picked = (
    Arc<crate::pool::EndpointState>,
    Arc<crate::state::ServicePools>,
);

/// The endpoint and service of `call`'s next try.
fn pick(call: &Call) -> Result<Picked, ProxyError> {
    let backend = call.backend()?;
    let (pool, service) = call
        .snapshot
        .pool(&backend.service, backend.subset.as_deref())
        .ok_or_else(|| ProxyError::NoRoute(backend_name(backend)))?;
    let avoid: Option<SocketAddr> = call.last_tried();
    let endpoint = pool
        .pick(avoid)
        .ok_or_else(|| ProxyError::NoEndpoints(backend_name(backend)))?;
    Ok((Arc::clone(endpoint), Arc::clone(service)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing;
    use serde_json::json;
    use tower::ServiceExt;

    /// Answers with the endpoint's port as the status offset: 201 for :1, 202 for :2;
    /// refuses connections to `refused`.
    fn endpoints(refused: Option<u16>) -> impl Stack<Dispatch> {
        tower::service_fn(move |dispatch: Dispatch| {
            let port = dispatch.addr.port();
            let answer = if Some(port) == refused {
                Err(ProxyError::Connect {
                    target: dispatch.addr.to_string(),
                    error: "refused".into(),
                })
            } else {
                let mut response = http::Response::new(crate::http::full(""));
                *response.status_mut() = http::StatusCode::from_u16(200 + port).unwrap();
                Ok(response)
            };
            Box::pin(async move { answer }) as BoxFuture<Answer>
        })
    }

    fn split() -> serde_json::Value {
        let both = json!({"backends": [{"service": "ns/reviews", "subset": null, "weight_milli": 100_000}]});
        testing::config(json!([testing::rule("all", both)]))
    }

    #[tokio::test]
    async fn the_next_try_avoids_the_last_endpoint() {
        let snapshot = testing::snapshot(split());
        let balance = Balance::new(endpoints(None), Family::default(), Family::default());
        let call = testing::call(&snapshot, http::Request::new(""));
        let retry = call.copy().unwrap();
        let first = balance
            .clone()
            .oneshot(call)
            .await
            .unwrap()
            .status()
            .as_u16();
        let second = balance.oneshot(retry).await.unwrap().status().as_u16();
        assert_ne!(first, second, "the retry went to the other endpoint");
    }

    #[tokio::test]
    async fn a_refused_connection_ejects_the_endpoint_and_is_counted() {
        let snapshot = testing::snapshot(split());
        let ejections = Family::<ServiceLabels, Counter>::default();
        let balance = Balance::new(endpoints(Some(1)), ejections.clone(), Family::default());
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let mut call = testing::call(&snapshot, http::Request::new(""));
            call.tried = None;
            statuses.push(
                balance
                    .clone()
                    .oneshot(call)
                    .await
                    .map(|r| r.status().as_u16()),
            );
        }
        let labels = ServiceLabels {
            service: "ns/reviews".into(),
        };
        assert_eq!(ejections.get_or_create(&labels).get(), 1);
        let after_ejection = statuses.iter().skip_while(|s| s.is_ok()).skip(1);
        assert!(
            after_ejection.clone().all(|s| matches!(s, Ok(202))),
            "after the refusal only :2 is used: {statuses:?}"
        );
    }

    #[tokio::test]
    async fn a_backend_without_endpoints_is_a_503() {
        let config = testing::config(json!([]));
        let mut config_without = config.clone();
        config_without["outbound"]["services"][0]["labels"] = json!({"app": "nobody"});
        let snapshot = testing::snapshot(config_without);
        let error = Balance::new(endpoints(None), Family::default(), Family::default())
            .oneshot(testing::call(&snapshot, http::Request::new("")))
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::NoEndpoints(ref b) if b == "ns/reviews"));
    }
}
