//! A gateway's request handling: the client's host (`:authority` for HTTP/2, `Host` for
//! HTTP/1.1) picks the gateway's host entry, the entry's first matching rule picks the
//! backend, and the request goes down the same routed outbound layers as a sidecar's
//! (split, timeout, retries, faults, mirrors, header edits, rewrite, breaker, balance,
//! mTLS to the endpoint as the gateway's identity). The client's `Host` is kept, its IP
//! appended to `x-forwarded-for` and the scheme it used set as `x-forwarded-proto`.
//! A request naming no host is a `400` (`mesh-error: no-authority`); an unknown host or
//! one whose rules all miss is a `404` (`mesh-error: no-route`).

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use mesh_config::schema::FULL_WEIGHT;
use tower::ServiceExt;

use crate::access_log::{self, Writer};
use crate::caller::Caller;
use crate::client::Clients;
use crate::error::ProxyError;
use crate::http::{Body, View, authority, boxed};
use crate::metrics::{Metrics, RequestLabels};
use crate::outbound::call::Call;
use crate::outbound::route::routed_call;
use crate::outbound::{Routed, routed};
use crate::state::{Shared, Snapshots};
use crate::trace::span::Kind;
use crate::trace::{HopOf, Tracer};

/// `x-forwarded-for`: the clients a request passed through, the latest last.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `x-forwarded-proto`: the scheme the client used to reach the gateway.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Routes a gateway's requests; cheap to clone (one per request).
#[derive(Clone)]
pub struct GatewayRoutes {
    access_log: Arc<Writer>,
    snapshots: Snapshots,
    routed: Routed,
    metrics: Arc<Metrics>,
    tracer: Arc<Tracer>,
}

impl GatewayRoutes {
    /// The router over the agent's state, calling through `clients`.
    pub fn new(shared: &Shared, clients: Clients) -> GatewayRoutes {
        GatewayRoutes {
            access_log: Arc::clone(&shared.access_log),
            snapshots: shared.snapshots(),
            routed: routed(shared, clients),
            metrics: Arc::clone(&shared.metrics),
            tracer: Arc::clone(&shared.tracer),
        }
    }

    /// Handles one request that arrived on the listener of config port `port`.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        port: u16,
        caller: &Caller,
    ) -> Response<Body> {
        let snapshot = self.snapshots.borrow().clone();
        let sinks = self.access_log.sinks(snapshot.as_deref());
        let mut request = request.map(boxed);
        let hop = HopOf {
            kind: Kind::Server,
            direction: "gateway",
            peer: None,
        };
        let span = self.tracer.begin(snapshot.as_deref(), &hop, &mut request);
        drop(snapshot);
        let response = access_log::exchange(
            &self.access_log,
            sinks,
            "gateway",
            request,
            caller.remote(),
            None,
            |request| async move {
                let call = match self.route(request, port, caller) {
                    Ok(call) => call,
                    Err(error) => {
                        // Routed requests are counted by the stack's observe layer.
                        let (status, _) = error.status_and_cause();
                        self.metrics
                            .requests
                            .get_or_create(&RequestLabels {
                                status: status.as_u16(),
                                ..RequestLabels::new("gateway", "", "", "")
                            })
                            .inc();
                        return Err(error);
                    }
                };
                self.routed.clone().oneshot(call).await
            },
            |error| error.respond(&self.metrics, "gateway"),
        )
        .await;
        crate::trace::finish(span, response)
    }

    /// The routed call for `request`, or why the gateway answers it itself.
    pub fn route(
        &self,
        request: Request<Body>,
        port: u16,
        caller: &Caller,
    ) -> Result<Call, ProxyError> {
        let snapshot = self
            .snapshots
            .borrow()
            .clone()
            .ok_or(ProxyError::NotReady)?;
        let config = &snapshot.config.config;
        let host = authority(&request)
            .filter(|a| !a.is_empty())
            .ok_or(ProxyError::NoAuthority)?;
        let entry = config.gateway_host(host).ok_or_else(|| {
            ProxyError::NoGatewayRoute(format!("no gateway host serves `{host}`"))
        })?;
        let draw = fastrand::u32(..FULL_WEIGHT);
        let key = config
            .gateway_route(entry, &View::new(&request, host, port), draw)
            .map(|decision| decision.key)
            .ok_or_else(|| {
                ProxyError::NoGatewayRoute(format!("no rule of gateway host `{host}` matches"))
            })?;
        let missing_host =
            (!request.headers().contains_key(header::HOST)).then(|| host.to_string());
        let mut call = routed_call(Arc::clone(&snapshot), key, request, missing_host);
        forwarded(&mut call.head.headers, caller);
        Ok(call)
    }
}

/// Appends the client's IP to `x-forwarded-for` and sets `x-forwarded-proto`.
fn forwarded(headers: &mut http::HeaderMap, caller: &Caller) {
    if let Some(remote) = caller.remote() {
        let ip = remote.ip().to_canonical().to_string();
        let previous: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = if previous.is_empty() {
            ip
        } else {
            format!("{}, {ip}", previous.join(", "))
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    let proto = if caller.tls() { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing;
    use serde_json::json;

    /// A gateway over `ns/reviews`: `shop.example.com` routes POSTs to v2 and nothing
    /// else; `*.example.com` routes everything to v1.
    fn routes() -> GatewayRoutes {
        let mut config = testing::config(json!([]));
        let mut post = testing::rule(
            "post",
            json!({
                "when": {"method": {"methods": ["POST"], "negated": false}}
            }),
        );
        post["backends"][0]["subset"] = json!("v2");
        config["gateway"] = json!({
            "name": "public",
            "listeners": [{"port": 8080, "tls": null}],
            "hosts": [
                {"host": "shop.example.com", "rules": [post]},
                {"host": "*.example.com", "rules": [testing::rule("all", json!({}))]}
            ]
        });
        let shared = Shared::new(false);
        GatewayRoutes {
            access_log: Arc::clone(&shared.access_log),
            snapshots: testing::snapshots(config).0,
            routed: routed(&shared, Clients::default()),
            metrics: Arc::clone(&shared.metrics),
            tracer: Arc::clone(&shared.tracer),
        }
    }

    fn request(uri: &str, host: Option<&str>, method: &str) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(crate::http::full("")).unwrap()
    }

    #[test]
    fn hosts_and_rules_pick_the_backend_and_the_rest_is_answered_here() {
        let routes = routes();
        let caller = Caller::new(None).connected("10.0.0.1:4000".parse().unwrap(), false);
        let routed = |request| {
            routes.route(request, 8080, &caller).map(|call| {
                (
                    call.backend()
                        .map(crate::outbound::call::backend_name)
                        .unwrap(),
                    call,
                )
            })
        };

        let (backend, call) = routed(request("/a?b", Some("shop.example.com"), "POST")).unwrap();
        assert_eq!(backend, "ns/reviews.v2");
        assert_eq!(call.route.host, Some(0));
        assert_eq!(call.head.uri, "/a?b");
        assert_eq!(call.head.headers["host"], "shop.example.com");
        assert_eq!(call.head.headers[X_FORWARDED_FOR], "10.0.0.1");

        // HTTP/2: the :authority names the host, and becomes the Host header.
        let (backend, call) = routed(request("https://api.example.com/x", None, "GET")).unwrap();
        assert_eq!(backend, "ns/reviews.v1");
        assert_eq!(call.route.host, Some(1));
        assert_eq!(call.head.headers["host"], "api.example.com");

        let cause = |request| match routed(request) {
            Ok(_) => "routed",
            Err(error) => error.status_and_cause().1,
        };
        // No rule of the host matches; no host serves it; no host at all.
        assert_eq!(
            cause(request("/", Some("shop.example.com"), "GET")),
            "no-route"
        );
        assert_eq!(cause(request("/", Some("example.org"), "GET")), "no-route");
        assert_eq!(cause(request("/", None, "GET")), "no-authority");
        assert_eq!(cause(request("/", Some(""), "GET")), "no-authority");
        let status = ProxyError::NoGatewayRoute(String::new())
            .status_and_cause()
            .0;
        assert_eq!(status, http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_client_ip_is_appended_and_the_scheme_set() {
        let caller = Caller::new(None).connected("[::ffff:10.0.0.7]:5000".parse().unwrap(), true);
        let mut headers = http::HeaderMap::new();
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        headers.append(X_FORWARDED_PROTO, HeaderValue::from_static("ftp"));
        forwarded(&mut headers, &caller);
        assert_eq!(headers[X_FORWARDED_FOR], "1.2.3.4, 10.0.0.7");
        assert_eq!(headers[X_FORWARDED_PROTO], "https");

        let mut headers = http::HeaderMap::new();
        forwarded(
            &mut headers,
            &Caller::new(None).connected("127.0.0.1:1".parse().unwrap(), false),
        );
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
    }
}
