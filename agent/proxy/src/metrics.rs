//! The agent's Prometheus metrics, served on the admin listener's `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label value that is shared, not copied: the request labels are made once per
/// routing decision (see [`crate::state::Snapshot::request_labels`]) and cloned per
/// request, which for a `Name` is at most an atomic increment where a `String` would be
/// an allocation.
#[derive(Clone, Debug)]
pub enum Name {
    /// A constant.
    Static(&'static str),
    /// A name from the config.
    Shared(Arc<str>),
}

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Shared(name) => name,
        }
    }
}

impl From<&str> for Name {
    fn from(name: &str) -> Name {
        Name::Shared(name.into())
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// Labels of a proxied request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `namespace/name` of the called service (`passthrough` for unknown authorities).
    pub service: Name,
    /// The subset, or empty.
    pub subset: Name,
    /// The route rule, or empty.
    pub rule: Name,
    /// The response status.
    pub status: u16,
}

impl RequestLabels {
    /// The labels of requests for `service`, `subset` and `rule` (empty: none).
    pub fn new(direction: &'static str, service: &str, subset: &str, rule: &str) -> Self {
        let name = |text: &str| {
            if text.is_empty() {
                Name::Static("")
            } else {
                Name::from(text)
            }
        };
        RequestLabels {
            direction,
            service: name(service),
            subset: name(subset),
            rule: name(rule),
            status: 0,
        }
    }
}

/// Labels naming a service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// `namespace/name`.
    pub service: String,
}

/// Labels of a direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
}

/// Labels of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `config`, `endpoints` or `identity`.
    pub kind: &'static str,
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// Labels of the active config.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    /// SHA-256 of the config bytes.
    pub hash: String,
}

/// Labels of a discovery watch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// The resource watched (`endpointslices`, `pods`, `services`).
    pub resource: &'static str,
}

/// Labels of an authorization decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthzLabels {
    /// `allow`, `deny`, or `error` (denied because a policy failed to evaluate).
    pub decision: &'static str,
    /// `enforce`, or `audit` when a deny was only logged.
    pub mode: &'static str,
    /// The `@id` of a deciding policy, or empty when nothing allowed.
    pub policy: String,
}

/// Labels of an opaque TCP connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Inbound: this workload's service; outbound: the called service (`passthrough` for
    /// destinations outside the mesh).
    pub service: String,
    /// The other agent's SPIFFE id: inbound the caller's (`anonymous` without one),
    /// outbound the identity the callee must present (empty in plaintext).
    pub peer: String,
    /// `mtls` or `plaintext`.
    pub tls: &'static str,
    /// What happened: `allow`, `deny`, `audit` (denied, let through), `refused`
    /// (plaintext under strict mTLS), `no-endpoints`, `connect-failed`, `app-unavailable`,
    /// `egress-denied`, `opened`, `not-meshed` (an endpoint without an agent under strict
    /// mTLS), `overloaded` (the service's `max_connections` were open).
    pub result: &'static str,
}

/// Labels of a gateway listener's TLS handshake.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// The listener's config port.
    pub port: u16,
    /// `ok`, `failed` (including no certificate for the client's SNI name) or `timeout`.
    pub result: &'static str,
}

/// Labels of a limit that fired ([`crate::limits`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `outbound`, `inbound`, `gateway` or `admin`.
    pub listener: &'static str,
    /// `max_connections` (accepting paused), `header_read_timeout`, `idle_timeout`,
    /// `header_size` (431), `malformed_request` (400), `h2_abuse` (GOAWAY
    /// ENHANCE_YOUR_CALM: rapid reset, CONTINUATION flood, too many error resets).
    pub limit: &'static str,
}

/// Labels of an inbound rate limit's decision ([`crate::inbound::rate_limit`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// The limit's name.
    pub limit: Name,
    /// `allowed`, `limited` (refused: `429`) or `audit` (over the limit, let through
    /// under `mode audit`).
    pub result: &'static str,
}

/// Labels of a request refused by an outbound circuit breaker
/// ([`crate::outbound::breaker`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverloadLabels {
    /// The called service.
    pub service: Name,
    /// `max_requests`, `max_pending` or `max_connections`.
    pub limit: &'static str,
}

/// Labels of spare mTLS connections for opaque TCP ([`crate::spare`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpareLabels {
    /// `used` (a connection took it), `expired` (dropped unused), `closed` (the callee
    /// had closed it), `failed` (its handshake failed).
    pub result: &'static str,
}

/// Labels of the bytes of opaque TCP connections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpBytesLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// As in [`TcpLabels`].
    pub service: String,
    /// As in [`TcpLabels`].
    pub peer: String,
    /// `sent` (client to server) or `received` (server to client).
    pub way: &'static str,
}

/// Every metric of the agent.
pub struct Metrics {
    registry: Registry,
    /// Requests by direction, service, subset, rule and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by direction.
    pub latency: Family<DirectionLabels, Histogram>,
    /// Retries sent.
    pub retries: Family<ServiceLabels, Counter>,
    /// Retries refused by the budget.
    pub budget_exhausted: Family<ServiceLabels, Counter>,
    /// Endpoints ejected after connect failures.
    pub ejections: Family<ServiceLabels, Counter>,
    /// Mirrored requests sent.
    pub mirrored: Family<ServiceLabels, Counter>,
    /// Config and endpoint reloads.
    pub reloads: Family<ReloadLabels, Counter>,
    /// 1 for the active config's hash.
    pub config_info: Family<ConfigLabels, Gauge>,
    /// Inbound authorization decisions, by deciding policy.
    pub authz: Family<AuthzLabels, Counter>,
    /// Seconds until the loaded workload certificate expires (negative: expired).
    pub identity_expires_in: Gauge,
    /// Kubernetes discovery: 1 while a watch is synced and streaming, 0 after it failed
    /// (the last known endpoints stay in force meanwhile).
    pub watch_up: Family<WatchLabels, Gauge>,
    /// Kubernetes discovery: watch failures.
    pub watch_errors: Family<WatchLabels, Counter>,
    /// Opaque TCP connections by outcome.
    pub tcp_connections: Family<TcpLabels, Counter>,
    /// Bytes relayed over opaque TCP connections.
    pub tcp_bytes: Family<TcpBytesLabels, Counter>,
    /// How long opaque TCP connections lasted, by direction.
    pub tcp_duration: Family<DirectionLabels, Histogram>,
    /// Connections that protocol detection sent to the HTTP or the opaque TCP path.
    pub detected: Family<DetectedLabels, Counter>,
    /// What became of spare mTLS connections for opaque TCP.
    pub tcp_spares: Family<SpareLabels, Counter>,
    /// Limits that fired, by listener.
    pub limits: Family<LimitLabels, Counter>,
    /// Inbound rate limit decisions, by limit.
    pub rate_limits: Family<RateLimitLabels, Counter>,
    /// Outbound requests and connections refused by a service's circuit breaker.
    pub overloaded: Family<OverloadLabels, Counter>,
    /// Endpoints ejected by outlier detection.
    pub outlier_ejections: Family<ServiceLabels, Counter>,
    /// Access-log lines dropped because standard output could not keep up.
    pub access_log_dropped: Counter,
    /// Tap entries dropped because a tap's client did not keep up.
    pub tap_dropped: Counter,
    /// Inbound requests that arrived over mTLS (`mesh_inbound_tls_requests_total{tls="mtls"}`).
    pub inbound_mtls: Counter,
    /// Inbound requests that arrived in plaintext (permissive mTLS).
    pub inbound_plaintext: Counter,
    /// Trace spans dropped, exported, and failed exports ([`crate::trace::export`]).
    pub traces: crate::trace::export::Counters,
    /// TLS handshakes on gateway listeners, by listener and result.
    pub gateway_handshakes: Family<HandshakeLabels, Counter>,
}

/// Labels of how an inbound request arrived.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    /// `mtls` or `plaintext`.
    pub tls: &'static str,
}

/// Labels of a protocol detection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DetectedLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `http` or `opaque`.
    pub protocol: &'static str,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("mesh");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<DirectionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        let retries = Family::<ServiceLabels, Counter>::default();
        let budget_exhausted = Family::<ServiceLabels, Counter>::default();
        let ejections = Family::<ServiceLabels, Counter>::default();
        let mirrored = Family::<ServiceLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let config_info = Family::<ConfigLabels, Gauge>::default();
        let authz = Family::<AuthzLabels, Counter>::default();
        let identity_expires_in = Gauge::default();
        registry.register("requests", "Proxied requests", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time to response headers",
            latency.clone(),
        );
        registry.register("retries", "Retries sent", retries.clone());
        registry.register(
            "retry_budget_exhausted",
            "Retries refused by the retry budget",
            budget_exhausted.clone(),
        );
        registry.register(
            "endpoint_ejections",
            "Endpoints taken out after connect failures",
            ejections.clone(),
        );
        registry.register(
            "mirrored_requests",
            "Mirrored requests sent",
            mirrored.clone(),
        );
        registry.register("reloads", "Config and endpoint reloads", reloads.clone());
        registry.register("config_info", "The active config", config_info.clone());
        registry.register(
            "authz_decisions",
            "Inbound authorization decisions by deciding policy",
            authz.clone(),
        );
        registry.register(
            "identity_expires_in_seconds",
            "Seconds until the workload certificate expires",
            identity_expires_in.clone(),
        );
        let watch_up = Family::<WatchLabels, Gauge>::default();
        let watch_errors = Family::<WatchLabels, Counter>::default();
        registry.register(
            "discovery_watch_up",
            "Kubernetes discovery watch state: 1 synced and streaming, 0 failed (last known endpoints kept)",
            watch_up.clone(),
        );
        registry.register(
            "discovery_watch_errors",
            "Kubernetes discovery watch failures",
            watch_errors.clone(),
        );
        let tcp_connections = Family::<TcpLabels, Counter>::default();
        let tcp_bytes = Family::<TcpBytesLabels, Counter>::default();
        let tcp_duration = Family::<DirectionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0])
        });
        let detected = Family::<DetectedLabels, Counter>::default();
        registry.register(
            "tcp_connections",
            "Opaque TCP connections by direction, service, peer identity, TLS and outcome",
            tcp_connections.clone(),
        );
        registry.register(
            "tcp_bytes",
            "Bytes relayed over opaque TCP connections",
            tcp_bytes.clone(),
        );
        registry.register(
            "tcp_connection_duration_seconds",
            "How long opaque TCP connections lasted",
            tcp_duration.clone(),
        );
        registry.register(
            "protocol_detections",
            "Captured connections by detected protocol",
            detected.clone(),
        );
        let tcp_spares = Family::<SpareLabels, Counter>::default();
        registry.register(
            "tcp_spare_connections",
            "Spare mTLS connections to peer agents for opaque TCP, by what became of them",
            tcp_spares.clone(),
        );
        let limits = Family::<LimitLabels, Counter>::default();
        registry.register(
            "limits",
            "Times a listener's limit fired (connections cut off, requests refused, accepting paused)",
            limits.clone(),
        );
        let rate_limits = Family::<RateLimitLabels, Counter>::default();
        registry.register(
            "rate_limit",
            "Inbound rate limit decisions by limit: allowed, limited (429) or audit (over the limit, let through)",
            rate_limits.clone(),
        );
        let overloaded = Family::<OverloadLabels, Counter>::default();
        registry.register(
            "overloaded",
            "Outbound tries and connections refused at once (503 overloaded) by a service's circuit breaker, by limit",
            overloaded.clone(),
        );
        let outlier_ejections = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "outlier_ejections",
            "Endpoints ejected by outlier detection after consecutive 5xx answers or failed connections",
            outlier_ejections.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because standard output did not keep up (the request path never waits for it)",
            access_log_dropped.clone(),
        );
        let tap_dropped = Counter::default();
        registry.register(
            "tap_events_dropped",
            "Tap entries a tap's client lost because it did not keep up (the request path never waits for it)",
            tap_dropped.clone(),
        );
        let inbound_tls = Family::<TlsLabels, Counter>::default();
        registry.register(
            "inbound_tls_requests",
            "Inbound requests by how they arrived: over mTLS from another agent, or in plaintext (permissive mTLS)",
            inbound_tls.clone(),
        );
        let inbound_mtls = inbound_tls
            .get_or_create(&TlsLabels { tls: "mtls" })
            .clone();
        let inbound_plaintext = inbound_tls
            .get_or_create(&TlsLabels { tls: "plaintext" })
            .clone();
        let traces = crate::trace::export::Counters::default();
        registry.register(
            "trace_spans_dropped",
            "Trace spans dropped because the OTLP exporter did not keep up (the request path never waits for it)",
            traces.dropped.clone(),
        );
        registry.register(
            "trace_spans_exported",
            "Trace spans the OTLP collector accepted",
            traces.exported.clone(),
        );
        registry.register(
            "trace_exports_failed",
            "OTLP span exports that failed (refused, unreachable, timed out); their spans are lost",
            traces.failed.clone(),
        );
        let gateway_handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "gateway_tls_handshakes",
            "TLS handshakes on a gateway's listeners, by config port and result (ok, failed, timeout)",
            gateway_handshakes.clone(),
        );
        Metrics {
            gateway_handshakes,
            access_log_dropped,
            tap_dropped,
            inbound_mtls,
            inbound_plaintext,
            traces,
            overloaded,
            outlier_ejections,
            rate_limits,
            limits,
            tcp_spares,
            tcp_connections,
            tcp_bytes,
            tcp_duration,
            detected,
            watch_up,
            watch_errors,
            registry,
            requests,
            latency,
            retries,
            budget_exhausted,
            ejections,
            mirrored,
            reloads,
            config_info,
            authz,
            identity_expires_in,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts an authorization decision once per deciding policy.
    pub fn authz(&self, decision: &mesh_config::AuthzDecision) {
        let labels = |policy: &str| AuthzLabels {
            decision: match decision.decision {
                mesh_config::Verdict::Allow => "allow",
                mesh_config::Verdict::Deny if decision.policy_error => "error",
                mesh_config::Verdict::Deny => "deny",
            },
            mode: if decision.enforced {
                "enforce"
            } else {
                "audit"
            },
            policy: policy.to_string(),
        };
        if decision.policies.is_empty() {
            self.authz.get_or_create(&labels("")).inc();
        }
        for policy in &decision.policies {
            self.authz.get_or_create(&labels(policy)).inc();
        }
    }

    /// Counts `count` spare connections that ended as `result`.
    pub fn spares(&self, result: &'static str, count: usize) {
        if count > 0 {
            self.tcp_spares
                .get_or_create(&SpareLabels { result })
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// Counts an opaque TCP connection's outcome.
    pub fn tcp(&self, labels: TcpLabels) {
        self.tcp_connections.get_or_create(&labels).inc();
    }

    /// Counts a relayed connection's bytes and duration.
    pub fn tcp_done(
        &self,
        labels: &TcpLabels,
        transferred: crate::relay::Transferred,
        seconds: f64,
    ) {
        for (way, bytes) in [
            ("sent", transferred.sent),
            ("received", transferred.received),
        ] {
            self.tcp_bytes
                .get_or_create(&TcpBytesLabels {
                    direction: labels.direction,
                    service: labels.service.clone(),
                    peer: labels.peer.clone(),
                    way,
                })
                .inc_by(bytes);
        }
        self.tcp_duration
            .get_or_create(&DirectionLabels {
                direction: labels.direction,
            })
            .observe(seconds);
    }

    /// Counts a reload.
    pub fn reload(&self, kind: &'static str, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                kind,
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }
}
