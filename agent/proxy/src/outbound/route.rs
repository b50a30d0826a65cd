//! The top of the outbound stack: maps an app's request to an outbound service of the
//! active snapshot — by the captured connection's original destination, else by the
//! request's authority — and makes the routing decision (`mesh-config`'s
//! [`Config::route`](mesh_config::Config::route): rule, split draw). A routed request goes
//! down the stack as a [`Call`]; one for a destination the config does not know goes to
//! the passthrough service instead.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::header::{self, HeaderValue};
use http::{Request, Uri};
use mesh_config::RouteKey;
use mesh_config::schema::FULL_WEIGHT;
use tower::Service;

use crate::client_body::ClientBody;
use crate::error::ProxyError;
use crate::http::{Body, View, authority, boxed, strip_hop_by_hop};
use crate::outbound::call::{Call, CallBody};
use crate::outbound::passthrough::Unrouted;
use crate::stack::{Answer, BoxFuture, Stack};
use crate::state::{Snapshot, Snapshots};
use crate::upgrade;

/// An app's request as the outbound listener received it.
pub struct Outgoing {
    /// The request.
    pub request: Request<Body>,
    /// Where the app was connecting when capture rules redirected its connection to the
    /// agent (`None`: the app sent it to the proxy).
    pub original_dst: Option<SocketAddr>,
}

/// Routes requests to `routed`, or to `passthrough` for destinations outside the config.
#[derive(Clone)]
pub struct Route<S, P> {
    snapshots: Snapshots,
    routed: S,
    passthrough: P,
}

impl<S, P> Route<S, P> {
    /// Routes on the snapshots `snapshots` publishes.
    pub fn new(snapshots: Snapshots, routed: S, passthrough: P) -> Route<S, P> {
        Route {
            snapshots,
            routed,
            passthrough,
        }
    }
}

impl<S: Stack<Call>, P: Stack<Unrouted>> Service<Outgoing> for Route<S, P> {
    type Response = http::Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ProxyError>> {
        // Either branch may take the request: ready when both are.
        std::task::ready!(self.routed.poll_ready(cx))?;
        self.passthrough.poll_ready(cx)
    }

    fn call(&mut self, outgoing: Outgoing) -> Self::Future {
        let Outgoing {
            request,
            original_dst,
        } = outgoing;
        let Some(snapshot) = self.snapshots.borrow().clone() else {
            return Box::pin(async { Err(ProxyError::NotReady) });
        };
        // The authority is read in place (borrowed from the request) to route; it is
        // copied only for a request the config does not route, or that lacks a Host.
        let owned_authority = |request: &Request<Body>| {
            authority(request)
                .map(str::to_string)
                .or_else(|| original_dst.map(|dst| dst.to_string()))
        };
        let config = &snapshot.config.config;
        let decided = {
            let captured;
            let authority = match authority(&request) {
                Some(authority) => authority,
                None => {
                    captured = original_dst.map(|dst| dst.to_string());
                    match captured.as_deref() {
                        Some(authority) => authority,
                        None => return Box::pin(async { Err(ProxyError::NoAuthority) }),
                    }
                }
            };
            // A captured connection's destination names its service; the authority is
            // the app's business (an IP, a name the mesh does not know, a Host of its
            // choosing).
            let index = original_dst
                .and_then(|dst| snapshot.service_at(dst))
                .map(|(index, _)| index)
                .or_else(|| config.service_for_authority(authority));
            index.map(|index| {
                let draw = fastrand::u32(..FULL_WEIGHT);
                config
                    .route(index, &View::new(&request, authority, 0), draw)
                    .map(|decision| decision.key)
            })
        };
        let route = match decided {
            Some(Some(route)) => route,
            Some(None) => {
                return Box::pin(async { Err(ProxyError::Internal("route lookup failed")) });
            }
            None => {
                let unrouted = Unrouted {
                    snapshot: Arc::clone(&snapshot),
                    authority: owned_authority(&request).unwrap_or_default(),
                    request,
                    original_dst,
                };
                return Box::pin(self.passthrough.call(unrouted));
            }
        };
        let missing_host = (!request.headers().contains_key(header::HOST))
            .then(|| owned_authority(&request))
            .flatten();
        let call = routed_call(snapshot, route, request, missing_host);
        Box::pin(self.routed.call(call))
    }
}

/// The [`Call`] for `request` routed by `route` on `snapshot`: hop-by-hop headers
/// stripped, a `Host` header of `missing_host` added when the request has none, the URI
/// reduced to the path and query (each try names its endpoint), the body streamed (the
/// buffer layer keeps it when a retry or mirror needs it), an upgrade taken aside.
pub fn routed_call(
    snapshot: Arc<Snapshot>,
    route: RouteKey,
    mut request: Request<Body>,
    missing_host: Option<String>,
) -> Call {
    let retried = snapshot
        .config
        .config
        .resolve(route)
        .and_then(|d| d.retry)
        .is_some_and(|r| r.attempts > 1);
    let upgrade = upgrade::take(&mut request);
    let (mut head, body) = request.into_parts();
    strip_hop_by_hop(&mut head.headers);
    if let Some(authority) = missing_host
        && let Ok(host) = HeaderValue::from_str(&authority)
    {
        head.headers.insert(header::HOST, host);
    }
    head.uri = head
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    let (body, failed) = ClientBody::new(body);
    Call {
        snapshot,
        route,
        mirror: None,
        head,
        body: CallBody::Streaming {
            body: boxed(body),
            failed,
        },
        upgrade,
        tried: retried.then(|| Arc::new(Mutex::new(None))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing::{self, Seen};
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_known_authority_is_routed_and_an_unknown_one_passes_through() {
        let (snapshots, _publish) = testing::snapshots(testing::config(serde_json::json!([])));
        let routed = Seen::default();
        let passed = Seen::default();
        let route = Route::new(snapshots, routed.service(), passed.unrouted_service());
        let request = Request::builder()
            .uri("http://reviews:9080/a?b=c")
            .header("connection", "close")
            .body(crate::http::full(""))
            .unwrap();
        let response = route
            .clone()
            .oneshot(Outgoing {
                request,
                original_dst: None,
            })
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let call = routed.last();
        assert_eq!(call.0, "ns/reviews");
        assert_eq!(call.1, "/a?b=c", "the URI keeps only the path and query");
        assert!(!call.2.contains_key("connection"), "hop-by-hop headers go");
        assert_eq!(call.2["host"], "reviews:9080", "a Host header is added");

        let request = Request::builder()
            .uri("http://example.com/")
            .body(crate::http::full(""))
            .unwrap();
        route
            .oneshot(Outgoing {
                request,
                original_dst: None,
            })
            .await
            .unwrap();
        assert_eq!(passed.last().0, "example.com");
    }

    #[tokio::test]
    async fn no_snapshot_means_not_ready() {
        let (snapshots, publish) = testing::snapshots(testing::config(serde_json::json!([])));
        publish.send_replace(None);
        let route = Route::new(
            snapshots,
            Seen::default().service(),
            Seen::default().unrouted_service(),
        );
        let request = Request::builder()
            .uri("http://reviews/")
            .body(crate::http::full(""))
            .unwrap();
        let error = route
            .oneshot(Outgoing {
                request,
                original_dst: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::NotReady));
    }
}
