//! The outbound side: the app's requests to other services. Each request is mapped from
//! its authority to an outbound service of the config, routed with `mesh-config`'s
//! [`Config::route`](mesh_config::Config::route) (rule, split draw, timeout, retry), then
//! gets the rule's fault, header edits, rewrite and mirrors, and is sent to an endpoint of
//! the chosen backend with per-try and total timeouts, retries with back-off and a budget.
//! Unknown authorities pass through, or get 403 when egress is denied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use mesh_config::schema::{Backend, Egress, FULL_WEIGHT, Retry, RouteRule};

use crate::client::{Clients, SendError, send_on};
use crate::client_body::{BodyFailed, ClientBody, bad_request_body};
use crate::http::{Body, View, authority, boxed, error_response, full, strip_hop_by_hop};
use crate::metrics::{DirectionLabels, RequestLabels, ServiceLabels};
use crate::retry::{self, Outcome};
use crate::state::{Shared, Snapshot};
use crate::tls::MtlsClient;
use crate::upgrade;

/// Requests with bodies up to this size are buffered, so they can be retried and mirrored.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// The outbound request handler.
#[derive(Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
    clients: Clients,
    /// The outbound listener's own address: passing a request through to it would loop.
    listening: SocketAddr,
}

/// A request body: buffered (retryable) or streamed once.
enum RequestBody {
    Buffered(Bytes),
    Streaming(Incoming),
}

impl Outbound {
    /// A handler over the agent's shared state.
    pub fn new(shared: Arc<Shared>, clients: Clients, listening: SocketAddr) -> Outbound {
        Outbound {
            shared,
            clients,
            listening,
        }
    }

    /// The transport to a service whose endpoints present `identity`: mTLS once the agent
    /// has an identity, plaintext before.
    /// The error is the 502 to answer.
    fn transport(&self, identity: &str) -> Result<Transport, Box<Response<Body>>> {
        match self.shared.tls() {
            None => Ok(Transport::Plain),
            Some(tls) => tls.client(identity).map(Transport::Mtls).map_err(|error| {
                Box::new(error_response(
                    StatusCode::BAD_GATEWAY,
                    "bad-identity",
                    &format!("cannot set up mTLS to {identity}: {error}"),
                ))
            }),
        }
    }

    /// Whether `authority` names this listener (a request the agent would send to itself).
    fn is_self(&self, authority: &str) -> bool {
        authority.parse::<SocketAddr>().is_ok_and(|addr| {
            addr.port() == self.listening.port()
                && (addr.ip() == self.listening.ip()
                    || (addr.ip().is_loopback() && self.listening.ip().is_unspecified()))
        })
    }

    /// Handles one request from the app; `original_dst` is where the app was connecting
    /// when capture rules redirected its connection here (`None`: sent to the proxy).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        original_dst: Option<SocketAddr>,
    ) -> Response<Body> {
        let started = Instant::now();
        let Some(snapshot) = self.shared.snapshot() else {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "the mesh agent has no config or endpoints yet",
            );
        };
        let Some(authority) = authority(&request)
            .map(str::to_string)
            .or_else(|| original_dst.map(|dst| dst.to_string()))
        else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "no-authority",
                "the request names no host (absolute URI or Host header)",
            );
        };
        let config = &snapshot.config.config;
        // A captured connection's destination names its service; the authority is the
        // app's business (an IP, a name the mesh does not know, a Host of its choosing).
        let index = original_dst
            .and_then(|dst| snapshot.service_at(dst))
            .map(|(index, _)| index)
            .or_else(|| config.service_for_authority(&authority));
        let Some(index) = index else {
            return self
                .passthrough(&snapshot, request, &authority, original_dst)
                .await;
        };
        let draw = fastrand::u32(..FULL_WEIGHT);
        let view = View::new(&request, &authority, 0);
        let Some(decision) = config.route(index, &view, draw) else {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "route lookup failed",
            );
        };
        let labels = RequestLabels {
            direction: "outbound",
            service: decision.backend.service.clone(),
            subset: decision.backend.subset.clone().unwrap_or_default(),
            rule: decision.rule.map(|r| r.name.clone()).unwrap_or_default(),
            status: 0,
        };
        let plan = Plan {
            service: &decision.service.service,
            rule: decision.rule,
            backend: decision.backend,
            timeout: decision.timeout_us.map(Duration::from_micros),
            retry: decision.retry,
        };
        let response = self.routed(&snapshot, request, &authority, plan).await;
        self.record(labels, response.status(), started);
        response
    }

    fn record(&self, mut labels: RequestLabels, status: StatusCode, started: Instant) {
        labels.status = status.as_u16();
        let metrics = &self.shared.metrics;
        metrics.requests.get_or_create(&labels).inc();
        metrics
            .latency
            .get_or_create(&DirectionLabels {
                direction: "outbound",
            })
            .observe(started.elapsed().as_secs_f64());
    }

    async fn routed(
        &self,
        snapshot: &Snapshot,
        mut request: Request<Incoming>,
        authority: &str,
        plan: Plan<'_>,
    ) -> Response<Body> {
        if let Some(fault) = plan.rule.and_then(|r| r.fault.as_ref()) {
            if let Some(delay) = fault.delay
                && fastrand::u32(..FULL_WEIGHT) < delay.percent_milli
            {
                tokio::time::sleep(Duration::from_micros(delay.delay_us)).await;
            }
            if let Some(abort) = fault.abort
                && fastrand::u32(..FULL_WEIGHT) < abort.percent_milli
            {
                let status =
                    StatusCode::from_u16(abort.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return error_response(status, "fault-injected", "fault injected by the route");
            }
        }
        let upgrade = upgrade::take(&mut request);
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority)
        {
            parts.headers.insert(header::HOST, host);
        }
        let mut path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        if let Some(rule) = plan.rule {
            edit(rule, &mut parts.headers, &mut path_and_query);
        }
        let try_request = TryRequest {
            parts: &parts,
            path_and_query: &path_and_query,
        };
        if let Some(upgrade) = upgrade {
            return self
                .upgraded(snapshot, plan.backend, try_request, body, upgrade)
                .await;
        }
        let body = match buffer(body).await {
            Ok(body) => body,
            Err(error) => return bad_request_body(&self.shared.metrics, "outbound", &error),
        };
        if let (Some(rule), RequestBody::Buffered(bytes)) = (plan.rule, &body) {
            for mirror in &rule.mirrors {
                if fastrand::u32(..FULL_WEIGHT) < mirror.percent_milli {
                    self.mirror(
                        snapshot,
                        &mirror.backend,
                        &parts,
                        &path_and_query,
                        bytes.clone(),
                    );
                }
            }
        }
        let send = self.with_retries(snapshot, &plan, try_request, body);
        match plan.timeout {
            Some(timeout) => match tokio::time::timeout(timeout, send).await {
                Ok(response) => response,
                Err(_) => error_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    &format!(
                        "{} did not answer within the route timeout of {timeout:?}",
                        plan.service
                    ),
                ),
            },
            None => send.await,
        }
    }

    async fn with_retries(
        &self,
        snapshot: &Snapshot,
        plan: &Plan<'_>,
        request: TryRequest<'_>,
        body: RequestBody,
    ) -> Response<Body> {
        let Some((pool, service)) =
            snapshot.pool(&plan.backend.service, plan.backend.subset.as_deref())
        else {
            return no_route(plan.backend);
        };
        let transport = match self.transport(&service.identity) {
            Ok(transport) => transport,
            Err(response) => return *response,
        };
        let (attempts, retry) = match (plan.retry, &body) {
            (Some(retry), RequestBody::Buffered(_)) => (retry.attempts.max(1), Some(retry)),
            _ => (1, None),
        };
        let budget = retry.and_then(|r| self.shared.budgets.get(plan.service, r));
        retry::deposit(budget.as_ref());
        let service_labels = || ServiceLabels {
            service: plan.service.to_string(),
        };
        let (buffered, mut streaming) = match body {
            RequestBody::Buffered(bytes) => (Some(bytes), None),
            RequestBody::Streaming(incoming) => (None, Some(ClientBody::new(incoming))),
        };
        let mut body_failed = None;
        let mut avoid = None;
        let mut last: Option<Response<Body>> = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                let Some(retry) = retry else { break };
                if !retry::withdraw(budget.as_ref()) {
                    self.shared
                        .metrics
                        .budget_exhausted
                        .get_or_create(&service_labels())
                        .inc();
                    break;
                }
                self.shared
                    .metrics
                    .retries
                    .get_or_create(&service_labels())
                    .inc();
                tokio::time::sleep(retry::backoff(retry, attempt - 1)).await;
            }
            let Some(endpoint) = pool.pick(avoid) else {
                return no_endpoints(plan.backend);
            };
            let endpoint = Arc::clone(endpoint);
            avoid = Some(endpoint.addr);
            let transport = match snapshot.endpoint_access(endpoint.addr) {
                Ok(true) => transport.clone(),
                Ok(false) => Transport::Plain,
                Err(why) => {
                    return error_response(StatusCode::BAD_GATEWAY, "not-meshed", &why);
                }
            };
            let body = match (&buffered, streaming.take()) {
                (Some(bytes), _) => full(bytes.clone()),
                (None, Some((incoming, failed))) => {
                    body_failed = Some(failed);
                    boxed(incoming)
                }
                (None, None) => full(Bytes::new()),
            };
            let upstream = match request.build(transport.scheme(), endpoint.addr, body) {
                Ok(upstream) => upstream,
                Err(error) => return cannot_forward(&error),
            };
            let in_flight = endpoint.start();
            let per_try = retry
                .and_then(|r| r.per_try_timeout_us)
                .map(Duration::from_micros);
            let sent = transport.send(&self.clients, upstream, service.http2);
            let result = match per_try {
                Some(limit) => tokio::time::timeout(limit, sent).await.ok(),
                None => Some(sent.await),
            };
            drop(in_flight);
            let (outcome, response) = match result {
                None => (
                    Outcome::PerTryTimeout,
                    error_response(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        &format!("{} did not answer within the per-try timeout", plan.service),
                    ),
                ),
                Some(Ok(response)) => {
                    endpoint.connected();
                    let status = response.status().as_u16();
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    (
                        Outcome::Status(status),
                        Response::from_parts(parts, boxed(body)),
                    )
                }
                Some(Err(SendError::Connect(error))) => {
                    if endpoint.connect_failed() {
                        self.shared
                            .metrics
                            .ejections
                            .get_or_create(&service_labels())
                            .inc();
                        tracing::warn!(endpoint = %endpoint.addr, service = %plan.service, %error, "endpoint ejected after a connect failure");
                    }
                    (
                        Outcome::ConnectFailure,
                        error_response(
                            StatusCode::BAD_GATEWAY,
                            "connect-failed",
                            &format!(
                                "cannot connect to {} at {}: {error}",
                                plan.service, endpoint.addr
                            ),
                        ),
                    )
                }
                Some(Err(SendError::Reset(error)))
                    if body_failed.as_ref().is_some_and(BodyFailed::get) =>
                {
                    return bad_request_body(&self.shared.metrics, "outbound", &error.to_string());
                }
                Some(Err(SendError::Reset(error))) => (
                    Outcome::Reset,
                    error_response(
                        StatusCode::BAD_GATEWAY,
                        "upstream-reset",
                        &format!("{} at {} failed: {error}", plan.service, endpoint.addr),
                    ),
                ),
            };
            let again = attempt < attempts && retry.is_some_and(|r| retry::retries(r, outcome));
            if !again {
                return response;
            }
            last = Some(response);
        }
        last.unwrap_or_else(|| {
            error_response(
                StatusCode::BAD_GATEWAY,
                "no-response",
                "no try got a response",
            )
        })
    }

    /// Forwards an upgrade handshake to one endpoint of `backend` and, on `101`, joins
    /// the connections (see [`upgrade`]). No retries, mirrors or route timeout apply.
    async fn upgraded(
        &self,
        snapshot: &Snapshot,
        backend: &Backend,
        request: TryRequest<'_>,
        body: Incoming,
        upgrade: upgrade::Requested,
    ) -> Response<Body> {
        let Some((pool, service)) = snapshot.pool(&backend.service, backend.subset.as_deref())
        else {
            return no_route(backend);
        };
        let transport = match self.transport(&service.identity) {
            Ok(transport) => transport,
            Err(response) => return *response,
        };
        let Some(endpoint) = pool.pick(None) else {
            return no_endpoints(backend);
        };
        let mut upstream = match request.build(transport.scheme(), endpoint.addr, boxed(body)) {
            Ok(upstream) => upstream,
            Err(error) => return cannot_forward(&error),
        };
        upgrade.prepare(&mut upstream);
        match transport.send(&self.clients, upstream, false).await {
            Ok(response) => upgrade.finish(response),
            Err(error) => send_failed(
                &error,
                &format!("{} at {}", backend_name(backend), endpoint.addr),
            ),
        }
    }

    fn mirror(
        &self,
        snapshot: &Snapshot,
        backend: &Backend,
        parts: &http::request::Parts,
        path_and_query: &str,
        body: Bytes,
    ) {
        let Some((pool, service)) = snapshot.pool(&backend.service, backend.subset.as_deref())
        else {
            return;
        };
        let (Ok(transport), Some(endpoint)) = (self.transport(&service.identity), pool.pick(None))
        else {
            return;
        };
        let request = TryRequest {
            parts,
            path_and_query,
        };
        let Ok(request) = request.build(transport.scheme(), endpoint.addr, full(body)) else {
            return;
        };
        let http2 = service.http2;
        self.shared
            .metrics
            .mirrored
            .get_or_create(&ServiceLabels {
                service: backend.service.clone(),
            })
            .inc();
        let clients = self.clients.clone();
        tokio::spawn(async move {
            // Fire and forget: the response is read and dropped, errors are ignored.
            let sent = transport.send(&clients, request, http2);
            if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(10), sent).await {
                let _ = response.into_body().collect().await;
            }
        });
    }

    /// Sends a request for a destination outside the mesh on: to `original_dst` for a
    /// captured connection, else to its authority.
    async fn passthrough(
        &self,
        snapshot: &Snapshot,
        mut request: Request<Incoming>,
        authority: &str,
        original_dst: Option<SocketAddr>,
    ) -> Response<Body> {
        let started = Instant::now();
        let upgrade = upgrade::take(&mut request);
        let egress = snapshot.config.config.source().outbound.egress;
        // Only reached when the destination names no service this workload may call.
        let forbidden = original_dst.and_then(|dst| snapshot.mesh_service_at(dst));
        let response = if let Some(service) = forbidden {
            error_response(
                StatusCode::FORBIDDEN,
                "denied",
                &format!(
                    "{service} is a service of the mesh that {} may not call: no policy allows it",
                    snapshot.config.config.source().workload.service
                ),
            )
        } else if self.is_self(authority) {
            error_response(
                StatusCode::LOOP_DETECTED,
                "loop",
                &format!("`{authority}` is the agent's own outbound listener"),
            )
        } else if let Some(namespace) = snapshot.config.config.forbidden_mesh_namespace(authority) {
            error_response(
                StatusCode::FORBIDDEN,
                "denied",
                &format!(
                    "`{authority}` is a service of the mesh's namespace `{namespace}` that {} \
                     may not call: no policy allows it",
                    snapshot.config.config.source().workload.service
                ),
            )
        } else if egress == Egress::Deny {
            error_response(
                StatusCode::FORBIDDEN,
                "egress-denied",
                &format!("`{authority}` is not a service of the mesh and egress is denied"),
            )
        } else {
            let (mut parts, body) = request.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let target = original_dst.map_or_else(|| authority.to_string(), |d| d.to_string());
            match Uri::try_from(format!("http://{target}{path}")) {
                Ok(uri) => {
                    parts.uri = uri;
                    let request = Request::from_parts(parts, boxed(body));
                    match self.clients.forward(request, false, upgrade).await {
                        Ok(response) => response,
                        Err(error) => send_failed(&error, authority),
                    }
                }
                Err(_) => error_response(
                    StatusCode::BAD_REQUEST,
                    "bad-authority",
                    &format!("`{authority}` is not a valid authority"),
                ),
            }
        };
        self.record(
            RequestLabels {
                direction: "outbound",
                service: "passthrough".into(),
                subset: String::new(),
                rule: String::new(),
                status: 0,
            },
            response.status(),
            started,
        );
        response
    }
}

/// How requests reach a mesh service's endpoints.
#[derive(Clone)]
enum Transport {
    /// Plaintext (the shared clients), when the agent has no identity.
    Plain,
    /// mTLS that accepts only the callee's SPIFFE id.
    Mtls(Arc<MtlsClient>),
}

impl Transport {
    fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Mtls(_) => "https",
        }
    }

    /// Sends `request`; over mTLS the HTTP version is what ALPN negotiated.
    async fn send(
        &self,
        clients: &Clients,
        request: Request<Body>,
        http2: bool,
    ) -> Result<Response<Incoming>, SendError> {
        match self {
            Transport::Plain => clients.send(request, http2).await,
            Transport::Mtls(client) => send_on(client, request).await,
        }
    }
}

/// What routing decided, borrowed from the snapshot.
struct Plan<'c> {
    service: &'c str,
    rule: Option<&'c RouteRule>,
    backend: &'c Backend,
    timeout: Option<Duration>,
    retry: Option<&'c Retry>,
}

/// The parts of a request every try sends.
#[derive(Clone, Copy)]
struct TryRequest<'a> {
    parts: &'a http::request::Parts,
    path_and_query: &'a str,
}

impl TryRequest<'_> {
    fn build(
        &self,
        scheme: &str,
        addr: SocketAddr,
        body: Body,
    ) -> Result<Request<Body>, http::Error> {
        let mut request = Request::builder()
            .method(self.parts.method.clone())
            .uri(format!("{scheme}://{addr}{}", self.path_and_query))
            .body(body)?;
        *request.headers_mut() = self.parts.headers.clone();
        Ok(request)
    }
}

/// Applies a rule's header edits and prefix rewrite.
fn edit(rule: &RouteRule, headers: &mut http::HeaderMap, path_and_query: &mut String) {
    for name in &rule.remove_headers {
        headers.remove(name.as_str());
    }
    for set in &rule.set_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(set.name.as_bytes()),
            HeaderValue::from_str(&set.value),
        ) {
            headers.insert(name, value);
        }
    }
    if let Some(rewrite) = &rule.rewrite_prefix
        && let Some(rest) = path_and_query.strip_prefix(rewrite.from.as_str())
    {
        *path_and_query = format!("{}{rest}", rewrite.to);
    }
}

/// Buffers bodies that are empty or declare a length within [`MAX_BUFFERED_BODY`];
/// others are streamed (and not retried).
async fn buffer(body: Incoming) -> Result<RequestBody, String> {
    if body.is_end_stream() {
        return Ok(RequestBody::Buffered(Bytes::new()));
    }
    let small = body
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_BUFFERED_BODY as u64);
    if !small {
        return Ok(RequestBody::Streaming(body));
    }
    Limited::new(body, MAX_BUFFERED_BODY)
        .collect()
        .await
        .map(|collected| RequestBody::Buffered(collected.to_bytes()))
        .map_err(|e| e.to_string())
}

fn no_route(backend: &Backend) -> Response<Body> {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "no-route",
        &format!(
            "{} is not a service this workload may call",
            backend_name(backend)
        ),
    )
}

fn no_endpoints(backend: &Backend) -> Response<Body> {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "no-endpoints",
        &format!("{} has no endpoints", backend_name(backend)),
    )
}

fn cannot_forward(error: &http::Error) -> Response<Body> {
    error_response(
        StatusCode::BAD_REQUEST,
        "bad-request",
        &format!("cannot forward the request: {error}"),
    )
}

/// The 502 for a try that got no response from `target`.
fn send_failed(error: &SendError, target: &str) -> Response<Body> {
    match error {
        SendError::Connect(e) => error_response(
            StatusCode::BAD_GATEWAY,
            "connect-failed",
            &format!("cannot connect to {target}: {e}"),
        ),
        SendError::Reset(e) => error_response(
            StatusCode::BAD_GATEWAY,
            "upstream-reset",
            &format!("{target} failed: {e}"),
        ),
    }
}

fn backend_name(backend: &Backend) -> String {
    match &backend.subset {
        Some(subset) => format!("{}.{subset}", backend.service),
        None => backend.service.clone(),
    }
}
