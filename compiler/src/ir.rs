//! The checked mesh: what the `.mesh` files mean once every name is resolved and every
//! value typed. Lints run over it, and later stages (Cedar generation, emission, tests)
//! read it instead of the syntax tree. Nodes that diagnostics point at keep their
//! [`Origin`].

use std::collections::BTreeMap;

use mesh_lang::ast::{Percent, Rate, Span};

use crate::load::FileId;

/// Where something was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file.
    pub file: FileId,
    /// The span in that file.
    pub span: Span,
}

/// A duration in microseconds.
pub type Micros = u64;

/// The whole mesh.
#[derive(Clone, Debug)]
pub struct Mesh {
    /// The mesh's name (`mesh NAME`), `mesh` when none is declared.
    pub name: String,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// mTLS between workloads.
    pub mtls: Mtls,
    /// What happens to services without a policy.
    pub default_policy: Effect,
    /// The user's `mtls` setting, when written (lints point at it).
    pub mtls_origin: Option<Origin>,
    /// Every service, sorted by namespace then name; a [`ServiceId`] indexes this.
    pub services: Vec<Service>,
    /// Every retry profile, sorted by namespace then name.
    pub retries: Vec<RetryProfile>,
    /// Every namespace that holds an item.
    pub namespaces: Vec<String>,
    /// Every test, in load order.
    pub tests: Vec<Test>,
    /// Every ingress gateway, sorted by namespace then name; a [`GatewayId`] indexes this.
    /// Kept apart from `services`: a gateway is a workload but no service (nothing
    /// calls it from inside the mesh).
    pub gateways: Vec<Gateway>,
    /// `telemetry { ... }` in the `mesh` block, when written.
    pub telemetry: Option<Telemetry>,
}

impl Mesh {
    /// The service with `id`.
    pub fn service(&self, id: ServiceId) -> Option<&Service> {
        self.services.get(id.0 as usize)
    }

    /// The gateway with `id`.
    pub fn gateway(&self, id: GatewayId) -> Option<&Gateway> {
        self.gateways.get(id.0 as usize)
    }
}

/// Index into [`Mesh::gateways`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayId(pub u32);

/// `telemetry { tracing PERCENT  access_log off|json }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Telemetry {
    /// Share of new requests that start a sampled trace; default 0%.
    pub tracing: Percent,
    /// Whether agents write a JSON access log; default off.
    pub access_log: bool,
}

/// `gateway NAME { ... }`: an ingress workload that routes requests from outside the
/// mesh to mesh services, calling them as its own identity.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `///` docs.
    pub doc: Option<String>,
    /// The `gateway` item.
    pub origin: Origin,
    /// Where its name is written.
    pub name_origin: Origin,
    /// Its service account (`identity "SA"`, default: its name).
    pub identity: String,
    /// Its listeners, in source order.
    pub listeners: Vec<Listener>,
    /// Its hosts, in source order.
    pub hosts: Vec<GatewayHost>,
}

impl Gateway {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The services its rules send requests or mirrored copies to, sorted, each once.
    pub fn targets(&self) -> Vec<ServiceId> {
        let mut ids: Vec<ServiceId> = self
            .hosts
            .iter()
            .flat_map(|h| &h.rules)
            .flat_map(Rule::targets)
            .map(|t| t.service)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// `listen PORT [tls { ... }]`.
#[derive(Clone, Debug)]
pub struct Listener {
    /// The port.
    pub port: u16,
    /// Its certificate; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The `listen` member.
    pub origin: Origin,
}

/// A certificate and key, as absolute paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: String,
    /// The private key (PEM).
    pub key: String,
}

/// `host "NAME" [tls { ... }] { RULES }`.
#[derive(Clone, Debug)]
pub struct GatewayHost {
    /// The host name, `*.suffix` or `*`, as written.
    pub host: String,
    /// The certificate for TLS clients naming this host.
    pub tls: Option<TlsFiles>,
    /// Its rules, tried in order; a request matching none gets 404.
    pub rules: Vec<Rule>,
    /// The `host` member.
    pub origin: Origin,
}

/// Index into [`Mesh::services`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

/// Index into [`Mesh::retries`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetryId(pub u32);

/// `mtls strict | permissive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mtls {
    /// Plaintext is refused.
    Strict,
    /// Plaintext is accepted, from unauthenticated callers.
    Permissive,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Let the request through.
    Allow,
    /// Refuse it.
    Deny,
}

/// A service (= a workload identity) and everything configured for it.
#[derive(Clone, Debug)]
pub struct Service {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `///` docs.
    pub doc: Option<String>,
    /// The `service` item.
    pub origin: Origin,
    /// Where its name is written.
    pub name_origin: Origin,
    /// Its ports.
    pub ports: Vec<Port>,
    /// Its service account.
    pub identity: String,
    /// Its pod selector.
    pub labels: BTreeMap<String, String>,
    /// Its subsets.
    pub subsets: Vec<Subset>,
    /// How callers balance over its endpoints.
    pub balance: Balance,
    /// How callers reach it, if routed.
    pub route: Option<Route>,
    /// Who may call it, if protected by a policy.
    pub policy: Option<Policy>,
    /// `limits { ... }`: what one caller agent may use of it at once.
    pub limits: Option<Limits>,
    /// `outlier { ... }`: when callers eject a failing endpoint.
    pub outlier: Option<Outlier>,
}

/// `limits { max_connections N  max_pending N  max_requests N }`; absent members: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Open connections to the service's endpoints.
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection or a request slot.
    pub max_pending: Option<u32>,
    /// Requests in flight at once.
    pub max_requests: Option<u32>,
}

/// `outlier { ... }` with Envoy's defaults for absent members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outlier {
    /// This many 5xx in a row eject an endpoint.
    pub consecutive_5xx: u32,
    /// Failures further apart than this are not in a row.
    pub interval: Micros,
    /// The first ejection's length.
    pub base_ejection: Micros,
    /// At most this share of endpoints is ejected at once.
    pub max_ejected: Percent,
}

impl Default for Outlier {
    /// Envoy's defaults: 5 in a row, 10 s, 30 s, 10%.
    fn default() -> Self {
        Outlier {
            consecutive_5xx: 5,
            interval: 10_000_000,
            base_ejection: 30_000_000,
            max_ejected: Percent { milli: 10_000 },
        }
    }
}

impl Service {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether every port is opaque TCP (and there is at least one): nothing above L4 can
    /// be decided for such a service.
    pub fn tcp_only(&self) -> bool {
        !self.ports.is_empty() && self.ports.iter().all(|p| p.protocol == Protocol::Tcp)
    }

    /// Whether some port is opaque TCP.
    pub fn has_tcp(&self) -> bool {
        self.ports.iter().any(|p| p.protocol == Protocol::Tcp)
    }

    /// The port numbered `number`, if declared.
    pub fn port(&self, number: u16) -> Option<&Port> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// `port [PROTOCOL] NUMBER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// The application protocol.
    pub protocol: Protocol,
    /// The port number.
    pub number: u16,
}

/// Port protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2 with prior knowledge from the app).
    Http,
    /// HTTP/2.
    Http2,
    /// gRPC over HTTP/2.
    Grpc,
    /// Opaque TCP.
    Tcp,
}

/// Load-balancing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Balance {
    /// Each endpoint in turn.
    RoundRobin,
    /// Power of two choices by outstanding requests.
    LeastRequest,
    /// Power of two choices by peak EWMA latency.
    Ewma,
    /// Uniformly at random.
    Random,
}

/// `subset NAME { labels }`.
#[derive(Clone, Debug)]
pub struct Subset {
    /// Its name.
    pub name: String,
    /// Its `///` docs.
    pub doc: Option<String>,
    /// The labels its endpoints carry (on top of the service's).
    pub labels: BTreeMap<String, String>,
    /// The `subset` member.
    pub origin: Origin,
}

/// A named retry profile.
#[derive(Clone, Debug)]
pub struct RetryProfile {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `///` docs.
    pub doc: Option<String>,
    /// The `retry` item.
    pub origin: Origin,
    /// Where its name is written.
    pub name_origin: Origin,
    /// Whether it comes from the bundled standard library.
    pub is_std: bool,
    /// What it does.
    pub policy: RetryPolicy,
}

/// How to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries including the first, 1..=10.
    pub attempts: u32,
    /// Timeout of each try.
    pub per_try_timeout: Option<Micros>,
    /// Which failures are retried.
    pub on: Vec<RetryOn>,
    /// Exponential back-off with full jitter: base and maximum.
    pub backoff: Option<(Micros, Micros)>,
    /// The retry budget.
    pub budget: Option<Budget>,
}

/// A failure that may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// One status code.
    Status(u16),
    /// A status class: `5` for `5xx`.
    Class(u8),
    /// 502, 503 and 504.
    GatewayError,
    /// The connection was reset.
    Reset,
    /// The connection could not be made.
    ConnectFailure,
    /// HTTP/2 REFUSED_STREAM: the request was not processed.
    RefusedStream,
}

/// `budget RATIO [min RATE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Retries may add at most this share of load.
    pub ratio: Percent,
    /// Retries always allowed regardless of the ratio.
    pub min: Option<Rate>,
}

/// How a route or rule retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryUse {
    /// A named profile.
    Profile(RetryId),
    /// An inline `retry { ... }` block.
    Inline(RetryPolicy),
    /// `retry none` without a profile of that name: no retries.
    Disabled,
}

/// `route SERVICE { ... }`.
#[derive(Clone, Debug)]
pub struct Route {
    /// The `route` item.
    pub origin: Origin,
    /// Timeout of the whole request, retries included.
    pub timeout: Option<Micros>,
    /// Where the timeout is written.
    pub timeout_origin: Option<Origin>,
    /// Retries for rules that set none.
    pub retry: Option<RetryUse>,
    /// Where the retry is written.
    pub retry_origin: Option<Origin>,
    /// How long establishing a connection to an endpoint may take.
    pub connect_timeout: Option<Micros>,
    /// Opaque TCP connections close after this long without bytes either way.
    pub idle_timeout: Option<Micros>,
    /// Rules, tried in order; a route-level `to`/`split` is the last one, named `default`.
    pub rules: Vec<Rule>,
}

/// `rule NAME [when COND] { ... }`, or a route-level destination (rule `default`).
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Whether this is the route's own `to`/`split` rather than a `rule` block.
    pub route_default: bool,
    /// Its `///` docs.
    pub doc: Option<String>,
    /// The `rule` member.
    pub origin: Origin,
    /// Where its name is written.
    pub name_origin: Origin,
    /// Its condition; `None` matches every request.
    pub when: Option<Cond>,
    /// Where requests go; `None` only when the rule had errors.
    pub dest: Option<Dest>,
    /// Overrides the route's timeout.
    pub timeout: Option<Micros>,
    /// Overrides the route's retries.
    pub retry: Option<RetryUse>,
    /// Where the rule's retry is written.
    pub retry_origin: Option<Origin>,
    /// Copies of requests, responses discarded.
    pub mirrors: Vec<Mirror>,
    /// Injected faults.
    pub fault: Option<Fault>,
    /// Headers set on the request.
    pub set_headers: Vec<(String, String)>,
    /// Headers removed from the request.
    pub remove_headers: Vec<String>,
    /// Path prefix rewrite: (from, to).
    pub rewrite_prefix: Option<(String, String)>,
}

impl Rule {
    /// Every backend and mirror target of the rule.
    pub fn targets(&self) -> Vec<&Target> {
        let mut out: Vec<&Target> = match &self.dest {
            Some(Dest::To(t)) => vec![t],
            Some(Dest::Split(targets)) => targets.iter().map(|(t, _)| t).collect(),
            None => Vec::new(),
        };
        out.extend(self.mirrors.iter().map(|m| &m.target));
        out
    }
}

/// A backend: a service, or one of its subsets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The service.
    pub service: ServiceId,
    /// The subset, if any.
    pub subset: Option<String>,
}

/// Where a rule sends requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// All to one backend.
    To(Target),
    /// Split by weight; weights add up to 100%.
    Split(Vec<(Target, Percent)>),
}

/// `mirror REF [PERCENT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Where copies go.
    pub target: Target,
    /// Share of requests copied.
    pub percent: Percent,
}

/// `fault { ... }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// Delay some requests.
    pub delay: Option<(Micros, Percent)>,
    /// Answer some requests with a status, without forwarding them.
    pub abort: Option<(u16, Percent)>,
}

/// HTTP methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS
    Options,
    /// CONNECT
    Connect,
    /// TRACE
    Trace,
}

impl Method {
    /// Every method, in the order of the language reference.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
        Method::Connect,
        Method::Trace,
    ];

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
        }
    }

    /// Parses a method name (exact, upper case).
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// A typed condition over the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// What it tests.
    pub kind: CondKind,
    /// Where it was written.
    pub origin: Origin,
}

/// The forms of a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CondKind {
    /// Every one holds.
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
    /// It does not hold.
    Not(Box<Cond>),
    /// The method is (or, negated, is not) one of these.
    Method {
        /// `!=` or `!... in`.
        negated: bool,
        /// The methods.
        methods: Vec<Method>,
    },
    /// A string attribute compared with a value.
    Text {
        /// The attribute.
        attr: TextAttr,
        /// The comparison.
        op: TextOp,
        /// The value (a regex for `matches`, a glob for `like`).
        value: String,
    },
    /// A string attribute is one of these values.
    TextIn {
        /// The attribute.
        attr: TextAttr,
        /// The values.
        values: Vec<String>,
    },
    /// A header or query parameter is present.
    Exists(TextAttr),
    /// The caller is (or, negated, is not) one of these services or gateways.
    Source {
        /// `!=`.
        negated: bool,
        /// The services.
        services: Vec<ServiceId>,
        /// The gateways.
        gateways: Vec<GatewayId>,
    },
}

impl Cond {
    /// The parts of the condition that read the request above L4 (method, path, host,
    /// headers, query), in source order: what opaque TCP cannot decide.
    pub fn request_reads(&self) -> Vec<&Cond> {
        let mut out = Vec::new();
        self.collect_request_reads(&mut out);
        out
    }

    fn collect_request_reads<'c>(&'c self, out: &mut Vec<&'c Cond>) {
        match &self.kind {
            CondKind::All(items) | CondKind::Any(items) => {
                items.iter().for_each(|c| c.collect_request_reads(out));
            }
            CondKind::Not(inner) => inner.collect_request_reads(out),
            CondKind::Method { .. }
            | CondKind::Text { .. }
            | CondKind::TextIn { .. }
            | CondKind::Exists(_) => out.push(self),
            CondKind::Source { .. } => {}
        }
    }
}

/// String attributes of a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextAttr {
    /// The path, without the query.
    Path,
    /// The authority.
    Host,
    /// A header, by lower-case name.
    Header(String),
    /// A query parameter.
    Query(String),
}

/// String comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `starts_with`
    StartsWith,
    /// `matches`: a regex.
    Matches,
    /// `like`: a glob with `*`.
    Like,
}

/// `policy SERVICE { ... }`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The `policy` item.
    pub origin: Origin,
    /// Enforce or only audit.
    pub mode: PolicyMode,
    /// Allow and deny rules, in source order.
    pub rules: Vec<AccessRule>,
    /// Inline Cedar policies.
    pub cedar: Vec<CedarBlock>,
    /// `rate_limit ...` members, in source order.
    pub rate_limits: Vec<RateLimit>,
}

/// `rate_limit [NAME] RATE [burst N] [per caller] [when COND]`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// Its name: as written, or its 1-based position among the policy's limits.
    pub name: String,
    /// The member.
    pub origin: Origin,
    /// Requests admitted per `period`.
    pub requests: u32,
    /// The refill period: 1 s for `N/s`, 60 s for `N/m`.
    pub period: Micros,
    /// The bucket's size.
    pub burst: u32,
    /// One bucket per calling identity.
    pub per_caller: bool,
    /// Which requests count against it; `source` is the caller.
    pub when: Option<Cond>,
}

/// `mode enforce | audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyMode {
    /// Deny what the policy denies.
    Enforce,
    /// Decide and log, never block.
    Audit,
}

/// `allow ...` or `deny ...`.
#[derive(Clone, Debug)]
pub struct AccessRule {
    /// Allow or deny.
    pub effect: Effect,
    /// The member.
    pub origin: Origin,
    /// Who it is about.
    pub from: Vec<Principal>,
    /// Where the `from` list is written.
    pub from_origins: Vec<Origin>,
    /// Extra condition.
    pub when: Option<Cond>,
    /// `methods [...]`; `None` means any.
    pub methods: Option<Vec<Method>>,
    /// `paths [...]` globs; `None` means any.
    pub paths: Option<Vec<String>>,
    /// `ports [...]`; `None` means every port.
    pub ports: Option<Vec<u16>>,
}

impl AccessRule {
    /// Whether the rule reads anything of an HTTP request (methods, paths, or a condition
    /// on the method, path, host, headers or query): such a rule never applies to an
    /// opaque TCP connection.
    pub fn reads_request(&self) -> bool {
        self.methods.is_some()
            || self.paths.is_some()
            || self
                .when
                .as_ref()
                .is_some_and(|c| !c.request_reads().is_empty())
    }
}

/// An entry of a `from` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// Every caller.
    Any,
    /// Every caller with a mesh identity.
    Authenticated,
    /// Every service of a namespace.
    Namespace(String),
    /// One service.
    Service(ServiceId),
    /// One gateway (as its identity).
    Gateway(GatewayId),
}

/// Where a test case goes: a service, or a gateway (a request from outside the mesh).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Callee {
    /// A mesh service.
    Service(ServiceId),
    /// An ingress gateway, routing by its hosts' rules.
    Gateway(GatewayId),
}

/// Who calls: a service, or a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// A mesh service.
    Service(ServiceId),
    /// An ingress gateway.
    Gateway(GatewayId),
}

/// An inline `cedar` block.
#[derive(Clone, Debug)]
pub struct CedarBlock {
    /// The Cedar text.
    pub text: String,
    /// The string literal.
    pub origin: Origin,
    /// Where the text's first byte is in the file, when written verbatim.
    pub verbatim_at: Option<usize>,
}

/// `test "NAME" { ... }`.
#[derive(Clone, Debug)]
pub struct Test {
    /// Its name.
    pub name: String,
    /// The `test` item.
    pub origin: Origin,
    /// Its cases.
    pub cases: Vec<Case>,
}

/// A request or connection and what is expected of it.
#[derive(Clone, Debug)]
pub struct Case {
    /// From `request` (or `connect`) to the last expectation.
    pub origin: Origin,
    /// The request alone: from `request` to its last parameter (or the `connect` line).
    pub request: Origin,
    /// What is sent.
    pub probe: Probe,
    /// The caller: for a request into a gateway, the gateway (it calls the backend).
    pub from: Caller,
    /// The callee: a service, or the gateway a request from outside the mesh enters.
    pub to: Callee,
    /// Expectations, in order.
    pub expect: Vec<(Expect, Origin)>,
}

/// What a test case sends.
#[derive(Clone, Debug)]
pub enum Probe {
    /// `request METHOD "PATH" ...`
    Request {
        /// The method.
        method: Method,
        /// The path.
        path: String,
        /// Headers (lower-case names), in order.
        headers: Vec<(String, String)>,
        /// Query parameters, in order.
        query: Vec<(String, String)>,
    },
    /// `connect "PORT" ...`: an opaque TCP connection to a tcp port of the callee.
    Connect {
        /// The destination port.
        port: u16,
    },
}

/// One expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The request is allowed.
    Allow,
    /// The request is denied.
    Deny,
    /// This rule matches.
    Rule(String),
    /// No rule matches (`rule none`, when no rule is named `none`): the request goes to
    /// the service as a whole, or nowhere through a gateway.
    NoRule,
    /// This backend may receive the request (`only`: always does).
    Backend {
        /// The backend.
        target: Target,
        /// Weight must be 100%.
        only: bool,
    },
    /// The effective timeout.
    Timeout(Micros),
    /// The effective number of tries.
    Retries(u32),
    /// The request is allowed and counts against the callee's rate limit of this name.
    RateLimit(String),
}
