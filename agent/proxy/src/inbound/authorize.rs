//! Authorization: every inbound request is decided by the workload's Cedar policies
//! (`mesh-config`'s [`Config::authorize`](mesh_config::Config::authorize), the code
//! `meshc test` runs) before it reaches the app. A deny is a 403 naming the decision (and
//! one because a policy failed to evaluate has its own cause, `policy-error`: the agent
//! fails closed); in audit mode it is logged and counted and the request goes through.

use std::sync::Arc;

use mesh_config::Verdict;
use mesh_config::schema::Protocol;
use tower::Service;

use crate::error::ProxyError;
use crate::http::{View, authority};
use crate::inbound::Arrived;
use crate::metrics::Metrics;
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack};

/// The port a request arrived for: the one the caller connected to when captured, else
/// the workload's first HTTP port.
pub fn request_port(arrived: &Arrived) -> u16 {
    arrived.caller.original_dst().map_or_else(
        || {
            arrived
                .snapshot
                .config
                .config
                .source()
                .workload
                .ports
                .iter()
                .find(|p| p.protocol != Protocol::Tcp)
                .map_or(0, |p| p.number)
        },
        |dst| dst.port(),
    )
}

/// Lets through to `inner` only what the policies allow.
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Authorize<S> {
    /// The layer over `inner`, counting decisions in `metrics`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Authorize<S> {
        Authorize { inner, metrics }
    }

    /// `None` when `arrived` may go on; else why not.
    fn refusal(&self, arrived: &Arrived) -> Option<ProxyError> {
        let config = &arrived.snapshot.config.config;
        let request = &arrived.request;
        let caller = arrived.caller.peer(&config.source().mesh.trust_domain);
        let view = View::new(
            request,
            authority(request).unwrap_or(""),
            request_port(arrived),
        );
        let decision = config.authorize(&view, &caller);
        self.metrics.authz(&decision);
        if let Some(note) = crate::access_log::note(request.extensions()) {
            note.decided(&decision);
        }
        let who = caller.identity.as_deref().unwrap_or("anonymous");
        match (decision.decision, decision.enforced) {
            (Verdict::Allow, _) => None,
            (Verdict::Deny, false) => {
                tracing::warn!(peer = who, method = %request.method(), path = request.uri().path(), reason = %decision.reason(), errors = ?decision.errors, "audit: request would be denied");
                None
            }
            (Verdict::Deny, true) if decision.policy_error => {
                tracing::warn!(peer = who, method = %request.method(), path = request.uri().path(), reason = %decision.reason(), errors = ?decision.errors, "request denied: a policy failed to evaluate");
                Some(ProxyError::PolicyError(decision.reason()))
            }
            (Verdict::Deny, true) => {
                tracing::info!(peer = who, method = %request.method(), path = request.uri().path(), reason = %decision.reason(), "request denied");
                Some(ProxyError::Denied(decision.reason()))
            }
        }
    }
}

impl<S: Stack<Arrived>> Service<Arrived> for Authorize<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, arrived: Arrived) -> Self::Future {
        match self.refusal(&arrived) {
            Some(refusal) => Box::pin(async { Err(refusal) }),
            None => Box::pin(self.inner.call(arrived)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::testing;
    use serde_json::json;
    use tower::ServiceExt;

    fn policies(mode: &str) -> serde_json::Value {
        json!({"kind": "cedar", "mode": mode, "headers": [], "query": [], "patterns": [], "policies": r#"
            @id("reviewers")
            permit (principal == Mesh::Service::"ns/productpage", action == Mesh::Action::"GET", resource);
        "#})
    }

    fn get() -> http::Request<crate::http::Body> {
        http::Request::builder()
            .uri("/r")
            .body(crate::http::full(""))
            .unwrap()
    }

    #[tokio::test]
    async fn the_permitted_caller_passes_and_others_get_a_deny_with_its_reason() {
        let metrics = Arc::new(Metrics::default());
        let authorize = Authorize::new(testing::echo_xfcc(), Arc::clone(&metrics));
        let allowed = testing::arrived(
            testing::config(policies("enforce")),
            Some("spiffe://cluster.local/ns/ns/sa/productpage"),
            get(),
        );
        assert_eq!(
            authorize.clone().oneshot(allowed).await.unwrap().status(),
            200
        );
        let stranger = testing::arrived(
            testing::config(policies("enforce")),
            Some("spiffe://cluster.local/ns/ns/sa/ratings"),
            get(),
        );
        let error = authorize.oneshot(stranger).await.unwrap_err();
        assert!(matches!(error, ProxyError::Denied(_)), "{error}");
        let text = metrics.encode();
        assert!(
            text.contains(r#"decision="allow""#) && text.contains(r#"decision="deny""#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn in_audit_mode_a_deny_goes_through() {
        let authorize = Authorize::new(testing::echo_xfcc(), Arc::default());
        let anonymous = testing::arrived(testing::config(policies("audit")), None, get());
        assert_eq!(authorize.oneshot(anonymous).await.unwrap().status(), 200);
    }
}
