//! The abstract syntax tree of one `.mesh` file.
//!
//! Every node carries the byte [`Span`] it was parsed from, so later stages (the checker,
//! the language server, the formatter) can point back into the source. Syntax errors leave
//! `Error` nodes in place of the item or member that could not be parsed, so a half-written
//! file still yields a tree for everything else. Literal values are already decoded
//! (durations in their unit, percents in thousandths), but their spelling is kept in the
//! source and reachable through the span.

use serde::Serialize;

/// A half-open byte range `start..end` into the source text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// First byte of the node.
    pub start: usize,
    /// One past the last byte of the node.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}..{}", self.start, self.end))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new(span.start.into(), span.len())
    }
}

/// A node of kind `T` with the span it was parsed from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spanned<T> {
    /// The node itself.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node` with `span`.
    pub fn new(node: T, span: Span) -> Self {
        Self { node, span }
    }
}

/// A name as written: an identifier or a keyword used as a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    /// The name's text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A parsed `.mesh` file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct File {
    /// Items in source order.
    pub items: Vec<Item>,
    /// Every comment in source order (doc comments included), for the formatter.
    pub comments: Vec<Comment>,
}

/// The kind of a comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CommentKind {
    /// `// ...` up to the end of the line.
    Line,
    /// `/// ...`, documenting the next item.
    Doc,
    /// `/* ... */`, possibly nested.
    Block,
}

/// A comment, kept so the formatter can put it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    /// Line, doc or block.
    pub kind: CommentKind,
    /// The comment's bytes, delimiters included.
    pub span: Span,
}

/// A top-level item or an item inside a namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    /// The text of the `///` comments right before the item, if any.
    pub doc: Option<String>,
    /// What the item is.
    pub kind: ItemKind,
    /// From its keyword to its closing brace.
    pub span: Span,
}

/// The items of the language (LANGUAGE.md §3).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ItemKind {
    /// `mesh NAME { ... }`
    Mesh(MeshDecl),
    /// `import "PATH"`
    Import(StrLit),
    /// `namespace NAME { ITEMS }`
    Namespace(Namespace),
    /// `service NAME { ... }`
    Service(Service),
    /// `retry NAME { ... }`
    Retry(RetryProfile),
    /// `route SERVICE { ... }`
    Route(Route),
    /// `policy SERVICE { ... }`
    Policy(Policy),
    /// `test "NAME" { ... }`
    Test(Test),
    /// `gateway NAME { ... }`: an ingress gateway (LANGUAGE.md §10).
    Gateway(Gateway),
    /// Something that did not parse; a syntax diagnostic was reported for it.
    Error,
}

/// `mesh NAME { trust_domain S  mtls MODE  default_policy allow|deny }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeshDecl {
    /// The mesh's name.
    pub name: Ident,
    /// Settings in source order.
    pub members: Vec<Spanned<MeshMember>>,
}

/// A setting of the `mesh` block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum MeshMember {
    /// `trust_domain "cluster.local"`
    TrustDomain(StrLit),
    /// `mtls strict|permissive`
    Mtls(Ident),
    /// `default_policy allow|deny`
    DefaultPolicy(Ident),
    /// `telemetry { tracing PERCENT  access_log off|json }` (LANGUAGE.md §10).
    Telemetry(Vec<Spanned<TelemetryMember>>),
    /// A member that did not parse.
    Error,
}

/// A member of `telemetry { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TelemetryMember {
    /// `tracing PERCENT`: the share of new requests that start a sampled trace.
    Tracing(Literal),
    /// `access_log off|json`
    AccessLog(Ident),
    /// A member that did not parse.
    Error,
}

/// `gateway NAME { MEMBERS }`: an ingress gateway (LANGUAGE.md §10).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gateway {
    /// The gateway's name.
    pub name: Ident,
    /// Members in source order.
    pub members: Vec<Spanned<GatewayMember>>,
}

/// A member of a `gateway` block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum GatewayMember {
    /// `listen PORT [tls { cert "PATH"  key "PATH" }]`
    Listen {
        /// The port as written.
        port: Literal,
        /// The listener's certificate; absent: plain HTTP.
        tls: Option<Tls>,
    },
    /// `host "NAME" [tls { ... }] { RULES }`
    Host(GatewayHost),
    /// `identity "service-account"`: the identity the gateway uses inside the mesh.
    Identity(StrLit),
    /// A member that did not parse.
    Error,
}

/// `tls { cert "PATH"  key "PATH" }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tls {
    /// Its members in source order.
    pub members: Vec<Spanned<TlsMember>>,
    /// From `tls` to the closing brace.
    pub span: Span,
}

/// A member of a `tls { ... }` block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TlsMember {
    /// `cert "PATH"`: the certificate chain (PEM).
    Cert(StrLit),
    /// `key "PATH"`: the private key (PEM).
    Key(StrLit),
    /// A member that did not parse.
    Error,
}

/// `host "NAME" [tls { ... }] { RULES }` in a gateway.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayHost {
    /// The host name, `*.suffix` or `*`.
    pub name: StrLit,
    /// The certificate for TLS clients naming this host.
    pub tls: Option<Tls>,
    /// Its rules (`RouteMember::Rule`, or `Error`) in source order.
    pub rules: Vec<Spanned<RouteMember>>,
}

/// `namespace NAME { ITEMS }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Namespace {
    /// The namespace's name.
    pub name: Ident,
    /// Its items in source order.
    pub items: Vec<Item>,
}

/// `service NAME { MEMBERS }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Service {
    /// The service's name.
    pub name: Ident,
    /// Members in source order.
    pub members: Vec<Spanned<ServiceMember>>,
}

/// A member of a `service` block (LANGUAGE.md §4).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ServiceMember {
    /// `port [PROTOCOL] NUMBER`
    Port {
        /// `http`, `http2`, `grpc`, `tcp`; absent means `http`.
        protocol: Option<Ident>,
        /// The port number as written.
        number: Literal,
    },
    /// `identity "service-account"`
    Identity(StrLit),
    /// `labels { k = "v" ... }`
    Labels(Vec<Label>),
    /// `subset NAME { k = "v" ... }`
    Subset(Subset),
    /// `balance round_robin|least_request|ewma|random`
    Balance(Ident),
    /// `limits { max_connections N  max_pending N  max_requests N }`: circuit breaking.
    Limits(Vec<Spanned<LimitsMember>>),
    /// `outlier { consecutive_5xx N  interval D  base_ejection D  max_ejected P }`
    Outlier(Vec<Spanned<OutlierMember>>),
    /// A member that did not parse.
    Error,
}

/// A member of `limits { ... }` (LANGUAGE.md §10, circuit breaking).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum LimitsMember {
    /// `max_connections N`
    MaxConnections(Literal),
    /// `max_pending N`
    MaxPending(Literal),
    /// `max_requests N`
    MaxRequests(Literal),
    /// A member that did not parse.
    Error,
}

/// A member of `outlier { ... }` (LANGUAGE.md §10, outlier ejection).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum OutlierMember {
    /// `consecutive_5xx N`
    Consecutive5xx(Literal),
    /// `interval D`
    Interval(Literal),
    /// `base_ejection D`
    BaseEjection(Literal),
    /// `max_ejected P`
    MaxEjected(Literal),
    /// A member that did not parse.
    Error,
}

/// `key = "value"` in a label map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    /// The label key.
    pub key: Ident,
    /// The label value.
    pub value: StrLit,
}

/// `subset NAME { LABELS }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subset {
    /// The text of the `///` comments right before the subset, if any.
    pub doc: Option<String>,
    /// The subset's name.
    pub name: Ident,
    /// The labels that select its endpoints.
    pub labels: Vec<Label>,
}

/// `retry NAME { FIELDS }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryProfile {
    /// The profile's name.
    pub name: Ident,
    /// Its fields in source order.
    pub fields: Vec<Spanned<RetryField>>,
}

/// A field of a retry profile (LANGUAGE.md §6).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RetryField {
    /// `attempts N`
    Attempts(Literal),
    /// `per_try_timeout D`
    PerTryTimeout(Literal),
    /// `on [CONDITION, ...]`
    On(Vec<Value>),
    /// `backoff BASE..MAX`
    Backoff {
        /// The base delay.
        base: Literal,
        /// The maximum delay.
        max: Literal,
    },
    /// `budget PERCENT [min RATE]`
    Budget {
        /// The share of extra load retries may add.
        ratio: Literal,
        /// The minimum retry rate always allowed.
        min: Option<Literal>,
    },
    /// A field that did not parse.
    Error,
}

/// `route SERVICE { ... }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    /// The routed service.
    pub service: Ref,
    /// Members in source order.
    pub members: Vec<Spanned<RouteMember>>,
}

/// A member of a `route` block (LANGUAGE.md §5).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RouteMember {
    /// `timeout D`
    Timeout(Literal),
    /// `retry NAME` or `retry { ... }`
    Retry(RetrySpec),
    /// `connect_timeout D`: how long establishing a connection may take.
    ConnectTimeout(Literal),
    /// `idle_timeout D`: opaque TCP connections close after this long without bytes.
    IdleTimeout(Literal),
    /// `to REF` directly in the route: where requests and connections matching no rule go.
    To(Ref),
    /// `split { REF PERCENT ... }` directly in the route, like `To`.
    Split(Vec<SplitTarget>),
    /// `rule NAME [when COND] { ... }`
    Rule(Rule),
    /// A member that did not parse.
    Error,
}

/// How a route or rule refers to retries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RetrySpec {
    /// A named profile (`retry careful`, `retry none`).
    Named(Ref),
    /// An inline profile: `retry { attempts 2 }`.
    Inline(Vec<Spanned<RetryField>>),
}

/// `rule NAME [when COND] { MEMBERS }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rule {
    /// The text of the `///` comments right before the rule, if any.
    pub doc: Option<String>,
    /// The rule's name.
    pub name: Ident,
    /// Its condition; absent means it matches every request.
    pub when: Option<Expr>,
    /// Members in source order.
    pub members: Vec<Spanned<RuleMember>>,
}

/// A member of a rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RuleMember {
    /// `to REF`
    To(Ref),
    /// `split { REF PERCENT ... }`
    Split(Vec<SplitTarget>),
    /// `timeout D`
    Timeout(Literal),
    /// `retry ...`
    Retry(RetrySpec),
    /// `mirror REF [PERCENT]`
    Mirror {
        /// Where copies go.
        target: Ref,
        /// The share of requests copied; absent means all.
        percent: Option<Literal>,
    },
    /// `fault { delay D PERCENT  abort STATUS PERCENT }`
    Fault(Vec<Spanned<FaultMember>>),
    /// `set_header "K" "V"`
    SetHeader {
        /// Header name.
        name: StrLit,
        /// Header value.
        value: StrLit,
    },
    /// `remove_header "K"`
    RemoveHeader(StrLit),
    /// `rewrite_prefix "FROM" "TO"`
    RewritePrefix {
        /// The path prefix to replace.
        from: StrLit,
        /// Its replacement.
        to: StrLit,
    },
    /// A member that did not parse.
    Error,
}

/// `REF PERCENT` inside `split { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SplitTarget {
    /// The backend.
    pub target: Ref,
    /// Its weight.
    pub weight: Literal,
    /// From the reference to the weight.
    pub span: Span,
}

/// A member of a `fault { ... }` block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum FaultMember {
    /// `delay D PERCENT`
    Delay {
        /// How long to delay.
        duration: Literal,
        /// The share of requests delayed.
        percent: Literal,
    },
    /// `abort STATUS PERCENT`
    Abort {
        /// The status to answer with.
        status: Literal,
        /// The share of requests aborted.
        percent: Literal,
    },
    /// A member that did not parse.
    Error,
}

/// `policy SERVICE { ... }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// The protected service.
    pub service: Ref,
    /// Members in source order.
    pub members: Vec<Spanned<PolicyMember>>,
}

/// A member of a `policy` block (LANGUAGE.md §7).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum PolicyMember {
    /// `mode enforce|audit`
    Mode(Ident),
    /// `allow from ... [when COND] [{ ... }]`
    Allow(AccessRule),
    /// `deny from ... [when COND] [{ ... }]`
    Deny(AccessRule),
    /// `cedar r#"..."#`
    Cedar(StrLit),
    /// `rate_limit [NAME] RATE [burst N] [per caller] [when COND]`
    RateLimit(RateLimit),
    /// A member that did not parse.
    Error,
}

/// `rate_limit [NAME] RATE [burst N] [per caller] [when COND]` (LANGUAGE.md §10).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateLimit {
    /// Its name; unnamed limits are named by their 1-based position among the policy's
    /// limits.
    pub name: Option<Ident>,
    /// `N/s` or `N/m`.
    pub rate: Literal,
    /// `burst N`: the bucket's size.
    pub burst: Option<Literal>,
    /// `per caller`, when written: one bucket per calling identity.
    pub per_caller: Option<Span>,
    /// Which requests count against it; `source` is the caller.
    pub when: Option<Expr>,
}

/// The body shared by `allow` and `deny`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccessRule {
    /// Who the rule is about.
    pub from: Vec<Source>,
    /// An extra condition on the request.
    pub when: Option<Expr>,
    /// `methods [...]`, `paths [...]` and `ports [...]`, in source order.
    pub constraints: Vec<Spanned<Constraint>>,
}

/// One entry of a `from` list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Source {
    /// A service reference.
    Service(Ref),
    /// `any`: every caller, authenticated or not.
    Any(Span),
    /// `authenticated`: every caller with a verified mesh identity.
    Authenticated(Span),
    /// `namespace NAME`: every service of a namespace.
    Namespace {
        /// The namespace's name.
        name: Ident,
        /// From `namespace` to the name.
        span: Span,
    },
}

/// A constraint inside an allow or deny block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Constraint {
    /// `methods [GET, POST]`
    Methods(Vec<Value>),
    /// `paths ["/a", "/b/*"]`
    Paths(Vec<Value>),
    /// `ports [5432, 5433]`
    Ports(Vec<Value>),
    /// A constraint that did not parse.
    Error,
}

/// `test "NAME" { CASES }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Test {
    /// The test's name.
    pub name: StrLit,
    /// Cases in source order.
    pub cases: Vec<Spanned<TestCase>>,
}

/// A `request ... expect ...` or `connect ... expect ...` pair, or an unparsable case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TestCase {
    /// A request and what is expected of it.
    Case {
        /// The simulated request.
        request: Box<Request>,
        /// The expectations, in source order.
        expect: Vec<Spanned<Expectation>>,
    },
    /// An opaque TCP connection and what is expected of it.
    Connect {
        /// The simulated connection.
        connect: Box<Connect>,
        /// The expectations, in source order.
        expect: Vec<Spanned<Expectation>>,
    },
    /// A case that did not parse.
    Error,
}

/// `request METHOD "PATH" [from REF] to SERVICE [header "K" = "V"]... [query "K" = "V"]...`
/// (without `from`: a request from outside the mesh, to a gateway).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    /// The HTTP method.
    pub method: Ident,
    /// The request path.
    pub path: StrLit,
    /// The calling service or gateway; `None` for a client outside the mesh.
    pub from: Option<Ref>,
    /// The called service.
    pub to: Ref,
    /// Header and query parameters, in source order.
    pub params: Vec<RequestParam>,
    /// From `request` to the last parameter.
    pub span: Span,
}

/// `connect "PORT" from REF to SERVICE`: an opaque TCP connection in a test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Connect {
    /// The destination port, as written: a string (`"5432"`) or an integer (`5432`).
    pub port: Literal,
    /// The calling service.
    pub from: Ref,
    /// The called service.
    pub to: Ref,
    /// From `connect` to the called service.
    pub span: Span,
}

/// `header "K" = "V"` or `query "K" = "V"` in a test request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestParam {
    /// Header or query parameter.
    pub kind: ParamKind,
    /// Its name.
    pub name: StrLit,
    /// Its value.
    pub value: StrLit,
    /// From the keyword to the value.
    pub span: Span,
}

/// Where a request parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ParamKind {
    /// An HTTP header.
    Header,
    /// A query-string parameter.
    Query,
}

/// One expectation after `expect`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Expectation {
    /// `allow`
    Allow,
    /// `deny`
    Deny,
    /// `rule NAME`
    Rule(Ident),
    /// `backend REF [only]`
    Backend {
        /// The expected backend.
        target: Ref,
        /// Whether it must receive 100% of the weight.
        only: bool,
    },
    /// `timeout D`
    Timeout(Literal),
    /// `retries N`
    Retries(Literal),
    /// `rate_limit NAME`: allowed, and counted against that limit (a name, or the
    /// limit's 1-based position among its policy's limits).
    RateLimit(Ident),
}

/// A reference: `svc`, `svc.subset`, `ns/svc`, `ns/svc.subset`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ref {
    /// The namespace, when written.
    pub namespace: Option<Ident>,
    /// The service (or profile, or other item) name.
    pub name: Ident,
    /// The subset, when written.
    pub subset: Option<Ident>,
    /// The whole reference.
    pub span: Span,
}

/// A value in a list or condition: a literal or a name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Value {
    /// A literal.
    Literal(Literal),
    /// A name or reference (`GET`, `reset`, `reviews.v2`).
    Ref(Ref),
}

impl Value {
    /// Where the value was written.
    pub fn span(&self) -> Span {
        match self {
            Value::Literal(lit) => lit.span,
            Value::Ref(r) => r.span,
        }
    }
}

/// A literal with its span.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Literal {
    /// The decoded value.
    pub kind: LiteralKind,
    /// Where it was written.
    pub span: Span,
}

/// The literal forms of LANGUAGE.md §2.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum LiteralKind {
    /// `3`, `9080`, `503`
    Int(u64),
    /// `250ms`, `2s`
    Duration(Duration),
    /// `10%`, `12.5%`
    Percent(Percent),
    /// `10/s`, `600/m`
    Rate(Rate),
    /// `"text"`, `r"raw"`
    Str(Box<StrLit>),
    /// `5xx`, `4xx`: the leading digit.
    StatusClass(u8),
}

impl LiteralKind {
    /// The literal's type name as the language reference spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            LiteralKind::Int(_) => "Int",
            LiteralKind::Duration(_) => "Duration",
            LiteralKind::Percent(_) => "Percent",
            LiteralKind::Rate(_) => "Rate",
            LiteralKind::Str(_) => "String",
            LiteralKind::StatusClass(_) => "Status",
        }
    }
}

/// Durations and their units are the shared vocabulary's (`mesh_vocab::duration`), so the
/// agent's command line reads durations exactly as `.mesh` files write them.
pub use mesh_vocab::duration::{Duration, TimeUnit};

/// A percentage with up to three decimals, in thousandths of a percent (`12.5%` = 12500).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Percent {
    /// Thousandths of a percent: 100% is 100,000.
    pub milli: u64,
}

impl Percent {
    /// 100%.
    pub const FULL: Percent = Percent { milli: 100_000 };
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whole = self.milli / 1000;
        let frac = self.milli % 1000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

/// A rate: a count per time unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Rate {
    /// How many.
    pub count: u64,
    /// Per which unit.
    pub per: TimeUnit,
}

/// A string literal: its decoded value and how it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StrLit {
    /// The decoded text.
    pub value: String,
    /// Quotes (and `r#` guards) included.
    pub span: Span,
    /// Where the text's first byte sits in the source when the source spells the text
    /// byte for byte (raw strings and strings without escapes); lets the checker point
    /// inside the string, at a regex or a Cedar error.
    pub verbatim_at: Option<usize>,
}

/// A boolean condition over the request (`when ...`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of a condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `!a`
    Not(Box<Expr>),
    /// `( a )`, kept so the formatter keeps the user's grouping.
    Group(Box<Expr>),
    /// `lhs OP rhs`
    Compare {
        /// Left operand.
        lhs: Box<Operand>,
        /// The operator.
        op: Spanned<CmpOp>,
        /// Right operand.
        rhs: Box<Operand>,
    },
    /// `lhs in [a, b]`
    In {
        /// The tested operand.
        lhs: Box<Operand>,
        /// The candidates.
        list: Vec<Value>,
    },
    /// `exists header("x")`
    Exists(Box<Operand>),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `starts_with`
    StartsWith,
    /// `matches` (regex)
    Matches,
    /// `like` (glob)
    Like,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::StartsWith => "starts_with",
            CmpOp::Matches => "matches",
            CmpOp::Like => "like",
        }
    }
}

/// An operand of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operand {
    /// What it is.
    pub kind: OperandKind,
    /// Where it was written.
    pub span: Span,
}

/// Request attributes and values a condition can compare.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum OperandKind {
    /// `method`
    Method,
    /// `path`
    Path,
    /// `host`
    Host,
    /// `source`: the caller's verified identity.
    Source,
    /// `header("name")`
    Header(StrLit),
    /// `query("name")`
    Query(StrLit),
    /// A literal.
    Literal(Literal),
    /// A name: a method (`GET`) or a service reference.
    Ref(Ref),
}
