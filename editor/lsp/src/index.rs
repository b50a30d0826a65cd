//! The navigation index of one checked mesh: every place a symbol is defined or
//! referenced, resolved with the compiler's own symbol table
//! ([`mesh_compiler::resolve::Symbols`]), and the other spans hover explains (literals,
//! request attributes, `route`/`policy` blocks). Definition, references, rename, hover,
//! semantic tokens and workspace symbols all read it.

use std::collections::HashMap;

use mesh_compiler::load::{FileId, Loaded};
use mesh_compiler::resolve::{self, DEFAULT_NAMESPACE, Symbols};
use mesh_lang::ast::{
    self, AccessRule, Expectation, Expr, ExprKind, GatewayMember, Item, ItemKind, LimitsMember,
    Literal, MeshMember, Operand, OperandKind, OutlierMember, PolicyMember, Ref, RetrySpec,
    RouteMember, RuleMember, ServiceMember, Source, Span, TelemetryMember, TestCase,
};

use crate::signature;

/// Something a name can stand for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symbol {
    /// A namespace.
    Namespace(String),
    /// `namespace/name` of a service.
    Service(String, String),
    /// `namespace/service.subset`.
    Subset(String, String, String),
    /// `namespace/name` of a retry profile.
    Retry(String, String),
    /// A rule: the routed service's namespace and name, and the rule's name.
    Rule(String, String, String),
    /// A loaded file (the target of an import).
    File(FileId),
}

impl Symbol {
    /// What kind of thing the symbol is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Symbol::Namespace(_) => "namespace",
            Symbol::Service(..) => "service",
            Symbol::Subset(..) => "subset",
            Symbol::Retry(..) => "retry profile",
            Symbol::Rule(..) => "rule",
            Symbol::File(_) => "file",
        }
    }

    /// The symbol's own name (what a rename replaces).
    pub fn name(&self) -> &str {
        match self {
            Symbol::Namespace(n) => n,
            Symbol::Service(_, n) | Symbol::Retry(_, n) => n,
            Symbol::Subset(_, _, n) | Symbol::Rule(_, _, n) => n,
            Symbol::File(_) => "",
        }
    }
}

/// One place a symbol is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The file.
    pub file: FileId,
    /// The name as written (for a reference, only the part naming this symbol).
    pub span: Span,
    /// What it names.
    pub symbol: Symbol,
    /// Whether this is the definition.
    pub is_def: bool,
}

/// What a definition looks like, for hover and symbol lists.
#[derive(Clone, Debug)]
pub struct Definition {
    /// The file.
    pub file: FileId,
    /// The name's span.
    pub name_span: Span,
    /// The whole item or member.
    pub item_span: Span,
    /// Its `///` comment.
    pub doc: Option<String>,
    /// A one-line signature.
    pub signature: String,
    /// Whether it comes from the bundled standard library.
    pub is_std: bool,
}

/// A span that hover explains without it naming a symbol.
#[derive(Clone, Debug)]
pub struct Site {
    /// The file.
    pub file: FileId,
    /// What is explained.
    pub span: Span,
    /// The explanation (markdown).
    pub text: String,
}

/// Every definition, reference and explained span of a mesh.
#[derive(Debug, Default)]
pub struct Index {
    /// Occurrences in walk order.
    pub occurrences: Vec<Occurrence>,
    /// The first definition of each symbol.
    pub definitions: HashMap<Symbol, Definition>,
    /// Literals, request attributes, route and policy blocks.
    pub sites: Vec<Site>,
}

impl Index {
    /// Indexes a loaded mesh.
    pub fn build(loaded: &Loaded) -> Self {
        let mut scratch = Vec::new();
        let symbols = resolve::collect(loaded, &mut scratch);
        let mut walker = Walker {
            loaded,
            symbols: &symbols,
            index: Index::default(),
            file: FileId(0),
            is_std: false,
            text: "",
        };
        for file in &loaded.files {
            walker.file = file.id;
            walker.is_std = file.is_std;
            walker.text = &file.source.text;
            for item in &file.ast.items {
                match &item.kind {
                    ItemKind::Namespace(ns) => {
                        walker.define(
                            Symbol::Namespace(ns.name.name.clone()),
                            ns.name.span,
                            item,
                            format!("namespace {}", ns.name.name),
                        );
                        for inner in &ns.items {
                            walker.item(&ns.name.name, inner);
                        }
                    }
                    _ => walker.item(DEFAULT_NAMESPACE, item),
                }
            }
        }
        walker.index
    }

    /// The occurrence at byte `offset` of `file`, preferring the innermost.
    pub fn at(&self, file: FileId, offset: usize) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .filter(|o| o.file == file && o.span.start <= offset && offset <= o.span.end)
            .min_by_key(|o| o.span.len())
    }

    /// Every occurrence of `symbol`, definitions first.
    pub fn occurrences_of<'a>(
        &'a self,
        symbol: &'a Symbol,
    ) -> impl Iterator<Item = &'a Occurrence> {
        let defs = self
            .occurrences
            .iter()
            .filter(move |o| o.is_def && &o.symbol == symbol);
        let refs = self
            .occurrences
            .iter()
            .filter(move |o| !o.is_def && &o.symbol == symbol);
        defs.chain(refs)
    }

    /// The innermost explained span at `offset`.
    pub fn site_at(&self, file: FileId, offset: usize) -> Option<&Site> {
        self.sites
            .iter()
            .filter(|s| s.file == file && s.span.start <= offset && offset <= s.span.end)
            .min_by_key(|s| s.span.len())
    }
}

struct Walker<'a> {
    loaded: &'a Loaded,
    symbols: &'a Symbols<'a>,
    index: Index,
    file: FileId,
    is_std: bool,
    text: &'a str,
}

impl<'a> Walker<'a> {
    fn src(&self, span: Span) -> &'a str {
        self.text.get(span.start..span.end).unwrap_or_default()
    }

    fn occur(&mut self, symbol: Symbol, span: Span, is_def: bool) {
        self.index.occurrences.push(Occurrence {
            file: self.file,
            span,
            symbol,
            is_def,
        });
    }

    fn define(&mut self, symbol: Symbol, name_span: Span, item: &Item, signature: String) {
        self.define_member(symbol, name_span, item.span, item.doc.clone(), signature);
    }

    fn define_member(
        &mut self,
        symbol: Symbol,
        name_span: Span,
        item_span: Span,
        doc: Option<String>,
        signature: String,
    ) {
        self.occur(symbol.clone(), name_span, true);
        self.index
            .definitions
            .entry(symbol)
            .or_insert_with(|| Definition {
                file: self.file,
                name_span,
                item_span,
                doc,
                signature,
                is_std: self.is_std,
            });
    }

    fn site(&mut self, span: Span, text: String) {
        self.index.sites.push(Site {
            file: self.file,
            span,
            text,
        });
    }

    fn item(&mut self, ns: &str, item: &'a Item) {
        match &item.kind {
            ItemKind::Service(service) => {
                let symbol = Symbol::Service(ns.into(), service.name.name.clone());
                let sig = signature::service(ns, service, self.text);
                self.define(symbol, service.name.span, item, sig);
                for member in &service.members {
                    match &member.node {
                        ServiceMember::Subset(subset) => {
                            let symbol = Symbol::Subset(
                                ns.into(),
                                service.name.name.clone(),
                                subset.name.name.clone(),
                            );
                            let sig = signature::subset(&service.name.name, member.span, self.text);
                            self.define_member(
                                symbol,
                                subset.name.span,
                                member.span,
                                subset.doc.clone(),
                                sig,
                            );
                        }
                        ServiceMember::Port { number, .. } => self.literal(number),
                        ServiceMember::Limits(members) => {
                            self.keyword_site(member.span, "limits", signature::LIMITS_DOC);
                            for m in members {
                                if let LimitsMember::MaxConnections(lit)
                                | LimitsMember::MaxPending(lit)
                                | LimitsMember::MaxRequests(lit) = &m.node
                                {
                                    self.literal(lit);
                                }
                            }
                        }
                        ServiceMember::Outlier(members) => {
                            self.keyword_site(member.span, "outlier", signature::OUTLIER_DOC);
                            for m in members {
                                if let OutlierMember::Consecutive5xx(lit)
                                | OutlierMember::Interval(lit)
                                | OutlierMember::BaseEjection(lit)
                                | OutlierMember::MaxEjected(lit) = &m.node
                                {
                                    self.literal(lit);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            ItemKind::Retry(profile) => {
                let symbol = Symbol::Retry(ns.into(), profile.name.name.clone());
                let sig = signature::retry(&profile.name.name, &profile.fields, self.text);
                self.define(symbol, profile.name.span, item, sig);
                self.retry_fields(&profile.fields);
            }
            ItemKind::Route(route) => {
                let target = self.service_ref(ns, &route.service);
                let summary = signature::route(route, self.text);
                self.site(
                    Span::new(item.span.start, route.service.span.end),
                    hover_block(&summary, item.doc.as_deref()),
                );
                for member in &route.members {
                    match &member.node {
                        RouteMember::Timeout(lit)
                        | RouteMember::ConnectTimeout(lit)
                        | RouteMember::IdleTimeout(lit) => self.literal(lit),
                        RouteMember::Retry(spec) => self.retry_spec(ns, spec),
                        RouteMember::To(r) => {
                            self.service_ref(ns, r);
                        }
                        RouteMember::Split(targets) => {
                            for t in targets {
                                self.service_ref(ns, &t.target);
                                self.literal(&t.weight);
                            }
                        }
                        RouteMember::Rule(rule) => {
                            if let Some((tns, tname)) = &target {
                                let symbol = Symbol::Rule(
                                    tns.clone(),
                                    tname.clone(),
                                    rule.name.name.clone(),
                                );
                                let sig = signature::rule(rule, member.span, self.text);
                                self.define_member(
                                    symbol,
                                    rule.name.span,
                                    member.span,
                                    rule.doc.clone(),
                                    sig,
                                );
                            }
                            if let Some(when) = &rule.when {
                                self.expr(ns, when);
                            }
                            for m in &rule.members {
                                self.rule_member(ns, &m.node);
                            }
                        }
                        RouteMember::Error => {}
                    }
                }
            }
            ItemKind::Policy(policy) => {
                self.service_ref(ns, &policy.service);
                let summary = signature::policy(policy, self.text);
                self.site(
                    Span::new(item.span.start, policy.service.span.end),
                    hover_block(&summary, item.doc.as_deref()),
                );
                let mut rate_limits = 0;
                for member in &policy.members {
                    match &member.node {
                        PolicyMember::Allow(rule) | PolicyMember::Deny(rule) => {
                            self.access_rule(ns, rule);
                        }
                        PolicyMember::RateLimit(limit) => {
                            rate_limits += 1;
                            let doc = signature::rate_limit(limit, rate_limits, self.text);
                            self.keyword_site(member.span, "rate_limit", &doc);
                            self.literal(&limit.rate);
                            if let Some(burst) = &limit.burst {
                                self.literal(burst);
                            }
                            if let Some(when) = &limit.when {
                                self.expr(ns, when);
                            }
                        }
                        PolicyMember::Cedar(lit) => self.site(
                            lit.span,
                            "inline Cedar policy, validated against the mesh's generated schema \
                             (`Mesh::Service`, `Mesh::Namespace`, `Mesh::Action`)"
                                .into(),
                        ),
                        PolicyMember::Mode(_) | PolicyMember::Error => {}
                    }
                }
            }
            ItemKind::Test(test) => {
                for case in &test.cases {
                    let (from, to, expect) = match &case.node {
                        TestCase::Case { request, expect } => {
                            (request.from.as_ref(), &request.to, expect)
                        }
                        TestCase::Connect { connect, expect } => {
                            self.literal(&connect.port);
                            (Some(&connect.from), &connect.to, expect)
                        }
                        TestCase::Error => continue,
                    };
                    if let Some(from) = from {
                        self.service_ref(ns, from);
                    }
                    let to = self.service_ref(ns, to);
                    for e in expect {
                        match &e.node {
                            Expectation::Rule(name) => {
                                if let Some((tns, tname)) = &to {
                                    let symbol =
                                        Symbol::Rule(tns.clone(), tname.clone(), name.name.clone());
                                    self.occur(symbol, name.span, false);
                                }
                            }
                            Expectation::Backend { target, .. } => {
                                self.service_ref(ns, target);
                            }
                            Expectation::Timeout(lit) | Expectation::Retries(lit) => {
                                self.literal(lit);
                            }
                            Expectation::RateLimit(name) => self.site(
                                name.span,
                                format!(
                                    "`rate_limit {}`: the request is allowed and counts against this rate limit of the callee's policy (a name, or the limit's position among the policy's limits)",
                                    name.name
                                ),
                            ),
                            Expectation::Allow | Expectation::Deny => {}
                        }
                    }
                }
            }
            ItemKind::Import(path) => {
                if let Some(target) = self.import_target(path) {
                    self.occur(Symbol::File(target), path.span, false);
                }
            }
            ItemKind::Mesh(mesh) => {
                for member in &mesh.members {
                    if let MeshMember::Telemetry(members) = &member.node {
                        self.keyword_site(member.span, "telemetry", signature::TELEMETRY_DOC);
                        for m in members {
                            if let TelemetryMember::Tracing(lit) = &m.node {
                                self.literal(lit);
                            }
                        }
                    }
                }
            }
            ItemKind::Gateway(gateway) => self.gateway(ns, item, gateway),
            ItemKind::Namespace(_) | ItemKind::Error => {}
        }
    }

    /// A gateway: hover on its keywords, and the references in its hosts' rules.
    fn gateway(&mut self, ns: &str, item: &Item, gateway: &'a ast::Gateway) {
        let summary = signature::gateway(ns, gateway);
        self.site(
            Span::new(item.span.start, gateway.name.span.end),
            hover_block(&summary, item.doc.as_deref()),
        );
        for member in &gateway.members {
            match &member.node {
                GatewayMember::Listen { port, tls } => {
                    self.keyword_site(member.span, "listen", signature::LISTEN_DOC);
                    self.literal(port);
                    if let Some(tls) = tls {
                        self.keyword_site(tls.span, "tls", signature::TLS_DOC);
                    }
                }
                GatewayMember::Host(host) => {
                    self.keyword_site(member.span, "host", signature::GATEWAY_HOST_DOC);
                    if let Some(tls) = &host.tls {
                        self.keyword_site(tls.span, "tls", signature::TLS_DOC);
                    }
                    for rule in &host.rules {
                        if let RouteMember::Rule(rule) = &rule.node {
                            if let Some(when) = &rule.when {
                                self.expr(ns, when);
                            }
                            for m in &rule.members {
                                self.rule_member(ns, &m.node);
                            }
                        }
                    }
                }
                GatewayMember::Identity(_) => {
                    self.keyword_site(member.span, "identity", signature::GATEWAY_IDENTITY_DOC);
                }
                GatewayMember::Error => {}
            }
        }
    }

    /// The file an import loaded, matched by name the way the loader names files.
    fn import_target(&self, path: &ast::StrLit) -> Option<FileId> {
        let wanted = path.value.as_str();
        if wanted.starts_with("std/") {
            return self
                .loaded
                .files
                .iter()
                .find(|f| f.is_std && f.source.name == wanted)
                .map(|f| f.id);
        }
        let importer = self.loaded.file(self.file)?;
        let base = std::path::Path::new(&importer.source.name).parent()?;
        let target = base.join(wanted.strip_prefix("./").unwrap_or(wanted));
        let canonical = std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone());
        self.loaded
            .files
            .iter()
            .find(|f| {
                let name = std::path::Path::new(&f.source.name);
                !f.is_std && (name == canonical || name == target)
            })
            .map(|f| f.id)
    }

    /// Records a service reference (and its namespace and subset parts); returns the
    /// service's namespace and name when it resolves.
    fn service_ref(&mut self, ns: &str, r: &Ref) -> Option<(String, String)> {
        let target_ns = r.namespace.as_ref().map_or(ns, |n| n.name.as_str());
        if let Some(n) = &r.namespace
            && self.symbols.has_namespace(&n.name)
        {
            self.occur(Symbol::Namespace(n.name.clone()), n.span, false);
        }
        let id = self.symbols.service_id(target_ns, &r.name.name)?;
        let decl = self.symbols.service(id)?;
        let (sns, sname) = (decl.namespace.to_string(), decl.node.name.name.clone());
        self.occur(
            Symbol::Service(sns.clone(), sname.clone()),
            r.name.span,
            false,
        );
        if let Some(subset) = &r.subset
            && resolve::subset_names(decl.node).contains(&subset.name.as_str())
        {
            self.occur(
                Symbol::Subset(sns.clone(), sname.clone(), subset.name.clone()),
                subset.span,
                false,
            );
        }
        Some((sns, sname))
    }

    fn retry_spec(&mut self, ns: &str, spec: &RetrySpec) {
        match spec {
            RetrySpec::Named(r) => {
                let Some(id) = self.symbols.retry_id(r, ns) else {
                    return;
                };
                let Some(decl) = self.symbols.retries.get(id.0 as usize) else {
                    return;
                };
                let symbol = Symbol::Retry(decl.namespace.to_string(), decl.node.name.name.clone());
                if let Some(n) = &r.namespace {
                    self.occur(Symbol::Namespace(n.name.clone()), n.span, false);
                }
                self.occur(symbol, r.name.span, false);
            }
            RetrySpec::Inline(fields) => self.retry_fields(fields),
        }
    }

    fn retry_fields(&mut self, fields: &[ast::Spanned<ast::RetryField>]) {
        for field in fields {
            match &field.node {
                ast::RetryField::Attempts(l) | ast::RetryField::PerTryTimeout(l) => self.literal(l),
                ast::RetryField::On(values) => {
                    for v in values {
                        match v {
                            ast::Value::Literal(l) => self.literal(l),
                            ast::Value::Ref(r) => {
                                self.site(r.span, format!("retry condition `{}`", self.src(r.span)))
                            }
                        }
                    }
                }
                ast::RetryField::Backoff { base, max } => {
                    self.literal(base);
                    self.literal(max);
                }
                ast::RetryField::Budget { ratio, min } => {
                    self.literal(ratio);
                    if let Some(min) = min {
                        self.literal(min);
                    }
                }
                ast::RetryField::Error => {}
            }
        }
    }

    fn rule_member(&mut self, ns: &str, member: &RuleMember) {
        match member {
            RuleMember::To(r) => {
                self.service_ref(ns, r);
            }
            RuleMember::Split(targets) => {
                for t in targets {
                    self.service_ref(ns, &t.target);
                    self.literal(&t.weight);
                }
            }
            RuleMember::Mirror { target, percent } => {
                self.service_ref(ns, target);
                if let Some(p) = percent {
                    self.literal(p);
                }
            }
            RuleMember::Timeout(l) => self.literal(l),
            RuleMember::Retry(spec) => self.retry_spec(ns, spec),
            RuleMember::Fault(members) => {
                for m in members {
                    match &m.node {
                        ast::FaultMember::Delay { duration, percent } => {
                            self.literal(duration);
                            self.literal(percent);
                        }
                        ast::FaultMember::Abort { status, percent } => {
                            self.literal(status);
                            self.literal(percent);
                        }
                        ast::FaultMember::Error => {}
                    }
                }
            }
            RuleMember::SetHeader { .. }
            | RuleMember::RemoveHeader(_)
            | RuleMember::RewritePrefix { .. }
            | RuleMember::Error => {}
        }
    }

    fn access_rule(&mut self, ns: &str, rule: &AccessRule) {
        for source in &rule.from {
            match source {
                Source::Service(r) => {
                    self.service_ref(ns, r);
                }
                Source::Namespace { name, .. } => {
                    if self.symbols.has_namespace(&name.name) {
                        self.occur(Symbol::Namespace(name.name.clone()), name.span, false);
                    }
                }
                Source::Any(span) => self.site(
                    *span,
                    "`any`: every caller, authenticated or not (plaintext too under `mtls permissive`)"
                        .into(),
                ),
                Source::Authenticated(span) => self.site(
                    *span,
                    "`authenticated`: every caller with a verified mesh identity".into(),
                ),
            }
        }
        if let Some(when) = &rule.when {
            self.expr(ns, when);
        }
    }

    fn expr(&mut self, ns: &str, expr: &Expr) {
        match &expr.kind {
            ExprKind::Or(a, b) | ExprKind::And(a, b) => {
                self.expr(ns, a);
                self.expr(ns, b);
            }
            ExprKind::Not(a) | ExprKind::Group(a) => self.expr(ns, a),
            ExprKind::Compare { lhs, op, rhs } => {
                let about_source = matches!(lhs.kind, OperandKind::Source)
                    || matches!(rhs.kind, OperandKind::Source);
                let condition = self
                    .src(expr.span)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                for operand in [lhs, rhs] {
                    self.operand(ns, operand, about_source, Some((op.node, &condition)));
                }
            }
            ExprKind::In { lhs, list } => {
                let about_source = matches!(lhs.kind, OperandKind::Source);
                let condition = self
                    .src(expr.span)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                self.operand(ns, lhs, about_source, Some((ast::CmpOp::Eq, &condition)));
                for value in list {
                    match value {
                        ast::Value::Literal(l) => self.literal(l),
                        ast::Value::Ref(r) if about_source => {
                            self.service_ref(ns, r);
                        }
                        ast::Value::Ref(_) => {}
                    }
                }
            }
            ExprKind::Exists(operand) => {
                let condition = self
                    .src(expr.span)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                self.operand(ns, operand, false, Some((ast::CmpOp::Eq, &condition)));
            }
        }
    }

    fn operand(
        &mut self,
        ns: &str,
        operand: &Operand,
        about_source: bool,
        condition: Option<(ast::CmpOp, &str)>,
    ) {
        let text = match &operand.kind {
            OperandKind::Literal(l) => {
                self.literal(l);
                return;
            }
            OperandKind::Ref(r) => {
                if about_source {
                    self.service_ref(ns, r);
                } else {
                    self.site(r.span, format!("`{}`: Method", self.src(r.span)));
                }
                return;
            }
            OperandKind::Method => "`method`: Method — the request's HTTP method".to_string(),
            OperandKind::Path => {
                "`path`: String — the request path, without the query string".into()
            }
            OperandKind::Host => {
                "`host`: String — the request's authority, without the port".into()
            }
            OperandKind::Source => {
                "`source`: Service — the caller's verified identity (its mTLS certificate)".into()
            }
            OperandKind::Header(name) => format!(
                "`header(\"{}\")`: String — the value of request header `{}` \
                 (names match case-insensitively), empty when the header is absent",
                name.value,
                name.value.to_ascii_lowercase()
            ),
            OperandKind::Query(name) => format!(
                "`query(\"{}\")`: String — the value of query parameter `{}`, empty when absent",
                name.value, name.value
            ),
        };
        let text = match condition {
            Some((_, condition)) => format!("{text}\n\nmatches requests where `{condition}`"),
            None => text,
        };
        self.site(operand.span, text);
    }

    /// A hover on the keyword that starts the member at `span`.
    fn keyword_site(&mut self, span: Span, keyword: &str, doc: &str) {
        let end = (span.start + keyword.len()).min(span.end);
        self.site(Span::new(span.start, end), doc.to_string());
    }

    fn literal(&mut self, lit: &Literal) {
        let text = signature::literal(&lit.kind, self.src(lit.span));
        self.site(lit.span, text);
    }
}

/// A hover body: a code block with the signature, then the docs.
pub fn hover_block(signature: &str, doc: Option<&str>) -> String {
    let mut out = format!("```mesh\n{signature}\n```");
    if let Some(doc) = doc.filter(|d| !d.trim().is_empty()) {
        out.push_str("\n\n");
        out.push_str(doc.trim());
    }
    out
}
