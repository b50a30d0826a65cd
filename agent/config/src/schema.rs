//! The per-workload config: what `meshc compile` writes and `mesh-agent` loads, one JSON
//! document per workload. Versioned; the JSON Schema in `workload-config.schema.json` is
//! generated from these types (a test fails when it drifts).
//!
//! Units are in the field names: `_us` microseconds, `_milli` thousandths of a percent
//! (100% = 100000). Service keys are `namespace/name`; identities are SPIFFE ids.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The version this crate reads and writes.
pub const VERSION: u32 = 1;

/// 100% in thousandths of a percent.
pub const FULL_WEIGHT: u32 = 100_000;

/// Everything one workload's agent needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Schema version; must be 1.
    pub version: u32,
    /// The mesh this workload belongs to.
    pub mesh: MeshInfo,
    /// Who this workload is.
    pub workload: Workload,
    /// How requests to this workload are accepted.
    pub inbound: Inbound,
    /// How this workload's requests to others are routed.
    pub outbound: Outbound,
    /// Present when the workload is an ingress gateway (`gateway NAME`): its listeners
    /// take client traffic from outside the mesh and route it by host to the services
    /// of `outbound`, calling them over mTLS as `workload.identity`. Absent for sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
}

/// Mesh-wide settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshInfo {
    /// The mesh's name.
    pub name: String,
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// The namespaces the mesh declares. A host naming a service of one of them
    /// (`NAME.NAMESPACE[.svc[...]]`, or a bare `NAME` in the workload's own namespace) that
    /// is not in the outbound list is a mesh service this workload may not call: the agent
    /// refuses it instead of sending it out of the mesh. Absent in older configs: then
    /// every unknown host is external.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Tracing and access logs (`telemetry` in the `mesh` block). Absent: no new traces
    /// are started (incoming trace context is still propagated) and no access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// What agents record about the traffic they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Share of requests without trace context that start a sampled trace (thousandths of
    /// a percent). Requests that arrive with W3C `traceparent` keep its sampling flag.
    pub tracing_milli: u32,
    /// The access log.
    pub access_log: AccessLog,
}

/// Access-log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLog {
    /// No access log.
    Off,
    /// One JSON object per line on standard output: a line per HTTP request, and a line
    /// per opaque TCP connection.
    Json,
}

/// An ingress gateway: listeners for clients outside the mesh, and per host the rules
/// that route their requests into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Its name: what `mesh-agent --gateway NAME` runs.
    pub name: String,
    /// The ports it listens on, each plain HTTP or TLS; ports are unique.
    pub listeners: Vec<Listener>,
    /// The hosts it serves, in source order. A request's host (without port) picks
    /// the host entry: an exact name first, then the longest matching `*.SUFFIX`
    /// wildcard, then `*`. A host no entry names gets `404`.
    pub hosts: Vec<GatewayHost>,
}

/// A port a gateway listens on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Port number.
    pub port: u16,
    /// Absent: plain HTTP. Present: TLS with this certificate, unless the client's SNI
    /// names a host that has its own.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, as PEM files the agent reads (and reads
/// again when they change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// A host a gateway serves and how its requests are routed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayHost {
    /// A host name (`shop.example.com`), a wildcard (`*.example.com`: one or more
    /// labels before the suffix) or `*` (every host). Unique in the gateway.
    pub host: String,
    /// The certificate presented to TLS clients whose SNI names this host; absent: the
    /// listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Rules, tried in order, as a route's: the first whose condition holds picks the
    /// backends (any services of `outbound`, with their subsets), timeout, retries,
    /// faults, mirrors and header edits. A request matching none gets `404`.
    pub rules: Vec<RouteRule>,
}

/// The workload itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// `namespace/name` of its service.
    pub service: String,
    /// Its SPIFFE id: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    pub identity: String,
    /// The ports its app listens on.
    pub ports: Vec<Port>,
}

/// A port and its protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Application protocol.
    pub protocol: Protocol,
    /// Port number.
    pub number: u16,
}

/// Application protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTP/2.
    Http2,
    /// gRPC.
    Grpc,
    /// Opaque TCP.
    Tcp,
}

/// The inbound side: mTLS and authorization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// Whether plaintext callers are refused.
    pub mtls: Mtls,
    /// Who may call.
    pub authz: Authz,
    /// Rate limits on the requests `authz` allows, in source order. A request takes a
    /// token from every limit whose condition holds; when one of them has none left the
    /// request is refused (`429`). Absent in older configs: no limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
}

/// A token bucket over inbound requests (`rate_limit` in a policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Its name, unique in the config: what metrics, `mesh-error` texts and `meshc test`'s
    /// `expect rate_limit NAME` call it.
    pub name: String,
    /// Tokens added per `period_us` (at least 1).
    pub requests: u32,
    /// The refill period: 1 s for `N/s`, 60 s for `N/m`.
    pub period_us: u64,
    /// The bucket's size: requests allowed at once after a quiet spell (at least 1).
    pub burst: u32,
    /// One bucket per calling identity (anonymous callers share one), instead of one for
    /// all callers together.
    pub per_caller: bool,
    /// Which requests count against it; absent: all. `source` here is the caller.
    pub when: Option<Match>,
}

/// mTLS modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mtls {
    /// Only mutually authenticated TLS.
    Strict,
    /// TLS or plaintext; plaintext callers are anonymous.
    Permissive,
}

/// Authorization of inbound requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Authz {
    /// No policy and `default_policy allow`: everyone.
    AllowAll,
    /// No policy and `default_policy deny`: no one.
    DenyAll,
    /// A Cedar policy set decides.
    Cedar(CedarAuthz),
}

/// A Cedar policy set and what its context needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CedarAuthz {
    /// Enforce decisions, or only log what would be denied.
    pub mode: PolicyMode,
    /// The policies, in Cedar syntax; each carries an `@id` naming its source.
    pub policies: String,
    /// Lower-case header names the policies read (`context.headers`).
    pub headers: Vec<String>,
    /// Query parameters the policies read (`context.query`).
    pub query: Vec<String>,
    /// Regexes the policies test, evaluated by the agent into `context.matched[key]`.
    pub patterns: Vec<Pattern>,
}

/// A regex over a request attribute whose result the Cedar context carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Key in `context.matched`.
    pub key: String,
    /// What it tests.
    pub attr: Attr,
    /// The regex (Rust `regex` syntax).
    pub regex: String,
}

/// Enforce or audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Deny what the policies deny.
    Enforce,
    /// Decide and log, never block.
    Audit,
}

/// The outbound side: the services this workload may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    /// Unknown authorities: passed through, or refused.
    pub egress: Egress,
    /// One entry per service this workload may call.
    pub services: Vec<OutboundService>,
}

/// What happens to requests for authorities the mesh does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Egress {
    /// Forward directly.
    Allow,
    /// Refuse with 403.
    Deny,
}

/// A service this workload calls, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundService {
    /// `namespace/name`.
    pub service: String,
    /// Host names (without port) that mean this service from this workload.
    pub authorities: Vec<String>,
    /// Its ports.
    pub ports: Vec<Port>,
    /// The SPIFFE id its endpoints must present.
    pub identity: String,
    /// Labels selecting its endpoints.
    pub labels: BTreeMap<String, String>,
    /// Its subsets: extra labels each.
    pub subsets: Vec<SubsetDef>,
    /// How to balance over endpoints.
    pub balance: Balance,
    /// Timeout of the whole request, retries included.
    pub timeout_us: Option<u64>,
    /// Retries for rules without their own.
    pub retry: Option<Retry>,
    /// Rules, tried in order; no match goes to the whole service. For an opaque TCP
    /// connection only rules whose condition reads nothing of a request (none, or only
    /// `source`) can match.
    pub rules: Vec<RouteRule>,
    /// How long establishing a connection to an endpoint may take (tcp and http).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_us: Option<u64>,
    /// Opaque TCP connections are closed after this long with no bytes either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_us: Option<u64>,
    /// Circuit breaking: how much of this service one caller agent may use at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Outlier ejection: endpoints that keep failing are taken out of balancing for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<Outlier>,
}

/// Connection and request limits one caller agent keeps towards a service (all its
/// endpoints together), as Envoy's circuit-breaker thresholds. Over a limit a request
/// fails at once with `503` and `mesh-error: overloaded`. Absent `max_connections` or
/// `max_requests`: no limit; absent `max_pending`: nothing waits for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Open connections to the service's endpoints.
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection or a request slot.
    pub max_pending: Option<u32>,
    /// Requests in flight at once (retries included).
    pub max_requests: Option<u32>,
}

/// Outlier ejection of a service's endpoints, decided by each caller agent from the
/// answers it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// This many 5xx answers (or failed connections) in a row from one endpoint eject it.
    pub consecutive_5xx: u32,
    /// Failures further apart than this do not count as in a row.
    pub interval_us: u64,
    /// The first ejection's length; each further ejection of the endpoint lasts one
    /// more multiple of it.
    pub base_ejection_us: u64,
    /// At most this share of the service's endpoints is ejected at once (thousandths of a
    /// percent).
    pub max_ejected_milli: u32,
}

/// A subset and its labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsetDef {
    /// Its name.
    pub name: String,
    /// Labels its endpoints carry, on top of the service's.
    pub labels: BTreeMap<String, String>,
}

/// Load-balancing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each endpoint in turn.
    RoundRobin,
    /// Fewest outstanding requests of two random picks.
    LeastRequest,
    /// Lowest peak-EWMA latency of two random picks.
    Ewma,
    /// Uniformly at random.
    Random,
}

/// One routing rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Its name (in tests, metrics and logs).
    pub name: String,
    /// Its condition; absent matches everything.
    pub when: Option<Match>,
    /// Where matching requests go, with weights adding up to 100%.
    pub backends: Vec<WeightedBackend>,
    /// Overrides the service's timeout.
    pub timeout_us: Option<u64>,
    /// Overrides the service's retries.
    pub retry: Option<Retry>,
    /// Copies of requests.
    pub mirrors: Vec<MirrorDef>,
    /// Injected faults.
    pub fault: Option<FaultDef>,
    /// Headers set on the request.
    pub set_headers: Vec<HeaderValue>,
    /// Headers removed from the request (lower case).
    pub remove_headers: Vec<String>,
    /// Path prefix rewrite.
    pub rewrite_prefix: Option<Rewrite>,
}

/// A backend: a service or one of its subsets.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// `namespace/name`.
    pub service: String,
    /// The subset, if any.
    pub subset: Option<String>,
}

/// A backend with its share of traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedBackend {
    /// The backend.
    #[serde(flatten)]
    pub backend: Backend,
    /// Thousandths of a percent.
    pub weight_milli: u32,
}

/// A mirror target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorDef {
    /// Where copies go.
    #[serde(flatten)]
    pub backend: Backend,
    /// Share of requests copied, thousandths of a percent.
    pub percent_milli: u32,
}

/// Injected faults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultDef {
    /// Delay some requests.
    pub delay: Option<DelayFault>,
    /// Answer some requests with a status.
    pub abort: Option<AbortFault>,
}

/// `delay D PERCENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayFault {
    /// How long.
    pub delay_us: u64,
    /// Share of requests, thousandths of a percent.
    pub percent_milli: u32,
}

/// `abort STATUS PERCENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortFault {
    /// The status to answer with.
    pub status: u16,
    /// Share of requests, thousandths of a percent.
    pub percent_milli: u32,
}

/// A header to set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    /// Lower-case name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `rewrite_prefix FROM TO`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Prefix to replace.
    pub from: String,
    /// Replacement.
    pub to: String,
}

/// A retry policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Where it comes from: a profile name, `inline` or `none`.
    pub profile: String,
    /// Total tries including the first, 1..=10.
    pub attempts: u32,
    /// Timeout of each try.
    pub per_try_timeout_us: Option<u64>,
    /// Status codes retried.
    pub on_status: Vec<u16>,
    /// Status classes retried: 5 for 5xx.
    pub on_class: Vec<u8>,
    /// Retry when the connection was reset.
    pub on_reset: bool,
    /// Retry when the connection could not be made.
    pub on_connect_failure: bool,
    /// Retry on HTTP/2 REFUSED_STREAM.
    pub on_refused_stream: bool,
    /// Exponential back-off with full jitter.
    pub backoff: Option<Backoff>,
    /// The retry budget.
    pub budget: Option<Budget>,
}

/// Back-off bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// First delay bound.
    pub base_us: u64,
    /// Largest delay.
    pub max_us: u64,
}

/// A retry budget: retries may add at most `ratio_milli` of load, but always at least
/// `min_per_second` retries per second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Thousandths of a percent.
    pub ratio_milli: u32,
    /// Retries per second always allowed.
    pub min_per_second: f64,
}

/// A condition over a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Match {
    /// Every one holds.
    All(Vec<Match>),
    /// At least one holds.
    Any(Vec<Match>),
    /// It does not hold.
    Not(Box<Match>),
    /// The method is (not) one of these.
    Method {
        /// Upper-case method names.
        methods: Vec<String>,
        /// Negated.
        negated: bool,
    },
    /// A string attribute compared to a value.
    Text {
        /// The attribute.
        attr: Attr,
        /// The comparison.
        op: TextOp,
        /// The value: text, a regex (`matches`) or a glob (`like`).
        value: String,
    },
    /// A string attribute is one of these values.
    TextIn {
        /// The attribute.
        attr: Attr,
        /// The values.
        values: Vec<String>,
    },
    /// A header or query parameter is present.
    Exists {
        /// The attribute.
        attr: Attr,
    },
    /// The calling workload is (not) one of these services.
    Source {
        /// `namespace/name` keys.
        services: Vec<String>,
        /// Negated.
        negated: bool,
    },
}

/// A string attribute of a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Attr {
    /// The path without the query.
    Path,
    /// The authority without the port.
    Host,
    /// A header, by lower-case name; empty when absent.
    Header(String),
    /// A query parameter; empty when absent.
    Query(String),
}

/// String comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Starts with.
    StartsWith,
    /// Regex search.
    Matches,
    /// Glob match of the whole value (`*` any text).
    Like,
}
