//! The canonical layout of `.mesh` files (`meshc fmt`).
//!
//! One layout, whatever the input looked like: two-space indentation, one member per line,
//! blocks always open on their header's line and close on their own line (label maps and
//! lists stay inline), single spaces around operators, commas after list entries. The
//! user's order of items and members is kept, runs of blank lines become one, literals keep
//! their spelling, and every comment survives: a comment on the same line as code stays at
//! the end of that line, any other comment keeps its own line before the code that followed
//! it. Files with syntax errors are never formatted.

use crate::ast::*;
use crate::diagnostic::Diagnostic;

const INDENT: &str = "  ";

/// Formats `src`, or returns its syntax errors.
pub fn format_source(src: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = crate::parse(src);
    if !parsed.diagnostics.is_empty() {
        return Err(parsed.diagnostics);
    }
    Ok(format_file(src, &parsed.file))
}

/// Checks the formatter's promises on `src`: if it parses cleanly, its formatted text
/// parses cleanly too, has the same comments, and formats to itself. Used by the fuzzer
/// and the tests; returns what broke.
pub fn check_round_trip(src: &str) -> Result<(), String> {
    let parsed = crate::parse(src);
    if !parsed.diagnostics.is_empty() {
        return Ok(());
    }
    let once = format_file(src, &parsed.file);
    let reparsed = crate::parse(&once);
    if let Some(first) = reparsed.diagnostics.first() {
        return Err(format!(
            "formatted text does not parse: {}
{once}",
            first.message
        ));
    }
    let texts = |text: &str, comments: &[Comment]| -> Vec<String> {
        comments
            .iter()
            .map(|c| {
                text.get(c.span.start..c.span.end)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    if texts(src, &parsed.file.comments) != texts(&once, &reparsed.file.comments) {
        return Err(format!("formatting lost or reordered comments:\n{once}"));
    }
    let twice = format_file(&once, &reparsed.file);
    if twice != once {
        return Err(format!(
            "formatting is not idempotent:\n{once}\n---\n{twice}"
        ));
    }
    Ok(())
}

/// Formats a file parsed from `src` without syntax errors.
pub fn format_file(src: &str, file: &File) -> String {
    let mut printer = Printer {
        src,
        comments: &file.comments,
        next_comment: 0,
        out: String::with_capacity(src.len() + src.len() / 8),
        depth: 0,
        last_end: 0,
        at_block_start: true,
    };
    for item in &file.items {
        printer.item(item);
    }
    printer.leading(src.len());
    if printer.out.is_empty() {
        return String::new();
    }
    if !printer.out.ends_with('\n') {
        printer.out.push('\n');
    }
    printer.out
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    next_comment: usize,
    out: String,
    depth: usize,
    /// End of the last source construct (code or comment) already printed.
    last_end: usize,
    /// Nothing printed yet in the current block: no blank line goes here.
    at_block_start: bool,
}

impl<'a> Printer<'a> {
    fn text(&self, span: Span) -> &'a str {
        self.src.get(span.start..span.end).unwrap_or_default()
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    /// A blank line before something starting at `start`, if the source had one and none
    /// was printed yet (a construct and the comment leading it ask for the same one).
    fn blank_line_before(&mut self, start: usize) {
        if self.at_block_start || self.out.ends_with("\n\n") {
            return;
        }
        let gap = self.src.get(self.last_end..start).unwrap_or_default();
        if gap.bytes().filter(|&b| b == b'\n').count() >= 2 {
            self.out.push('\n');
        }
    }

    /// Prints, each on its own line, the comments that start before `upto`.
    fn leading(&mut self, upto: usize) {
        while let Some(comment) = self.comments.get(self.next_comment) {
            if comment.span.start >= upto {
                break;
            }
            self.blank_line_before(comment.span.start);
            self.indent();
            self.out.push_str(self.text(comment.span));
            self.out.push('\n');
            self.last_end = comment.span.end;
            self.at_block_start = false;
            self.next_comment += 1;
        }
    }

    /// Ends the current line, taking along the comments that follow `after` on the same
    /// source line with nothing but spaces before them.
    fn trailing(&mut self, after: usize) {
        let mut after = after;
        self.last_end = self.last_end.max(after);
        while let Some(comment) = self.comments.get(self.next_comment) {
            let gap = self.src.get(after..comment.span.start).unwrap_or("x");
            if !gap.chars().all(|c| c == ' ' || c == '\t') {
                break;
            }
            self.out.push_str("  ");
            self.out.push_str(self.text(comment.span));
            after = comment.span.end;
            self.last_end = after;
            self.next_comment += 1;
        }
        self.out.push('\n');
    }

    /// Starts a line for a construct at `span`: blank line, leading comments, and the
    /// comments written inside the construct (they cannot stay inside a one-line layout).
    fn start_line(&mut self, span: Span) {
        let first = self
            .comments
            .get(self.next_comment)
            .map_or(span.start, |c| c.span.start.min(span.start));
        self.blank_line_before(first);
        self.leading(span.end);
        self.at_block_start = false;
        self.indent();
    }

    /// One construct on one line.
    fn leaf(&mut self, span: Span, text: &str) {
        self.start_line(Span::new(span.start, span.end));
        self.out.push_str(text);
        self.trailing(span.end);
    }

    /// `HEADER { BODY }` with the body one level deeper. `header_end` is where the search
    /// for the opening brace starts; `span` covers the whole construct.
    fn block(&mut self, span: Span, header: &str, header_end: usize, body: impl FnOnce(&mut Self)) {
        let open = self.find_open_brace(header_end);
        let close = span.end.saturating_sub(1);
        self.start_line(Span::new(span.start, open));
        self.out.push_str(header);
        self.out.push_str(" {");
        let empty_before = self.out.len();
        self.trailing(open + 1);
        self.depth += 1;
        self.at_block_start = true;
        body(self);
        self.leading(close);
        self.depth -= 1;
        if self.at_block_start && self.out.len() == empty_before + 1 {
            // Nothing inside: `{}` on the header's line.
            self.out.truncate(empty_before);
            self.out.push('}');
        } else {
            self.indent();
            self.out.push('}');
        }
        self.at_block_start = false;
        self.trailing(span.end);
    }

    /// The first `{` at or after `from` that is not inside a comment.
    fn find_open_brace(&self, from: usize) -> usize {
        let mut pos = from;
        let mut comments = self.comments.iter().skip(self.next_comment).peekable();
        let bytes = self.src.as_bytes();
        while let Some(&b) = bytes.get(pos) {
            while comments.peek().is_some_and(|c| c.span.end <= pos) {
                comments.next();
            }
            if let Some(c) = comments.peek()
                && c.span.start <= pos
            {
                pos = c.span.end;
                continue;
            }
            if b == b'{' {
                return pos;
            }
            pos += 1;
        }
        pos
    }

    fn item(&mut self, item: &Item) {
        match &item.kind {
            ItemKind::Mesh(mesh) => {
                let header = format!("mesh {}", mesh.name.name);
                self.block(item.span, &header, mesh.name.span.end, |p| {
                    for member in &mesh.members {
                        let text = match &member.node {
                            MeshMember::TrustDomain(s) => {
                                format!("trust_domain {}", p.text(s.span))
                            }
                            MeshMember::Mtls(mode) => format!("mtls {}", mode.name),
                            MeshMember::DefaultPolicy(d) => format!("default_policy {}", d.name),
                            MeshMember::Telemetry(members) => p.telemetry(members),
                            MeshMember::Error => p.text(member.span).to_string(),
                        };
                        p.leaf(member.span, &text);
                    }
                });
            }
            ItemKind::Import(path) => {
                let text = format!("import {}", self.text(path.span));
                self.leaf(item.span, &text);
            }
            ItemKind::Namespace(ns) => {
                let header = format!("namespace {}", ns.name.name);
                self.block(item.span, &header, ns.name.span.end, |p| {
                    for inner in &ns.items {
                        p.item(inner);
                    }
                });
            }
            ItemKind::Service(service) => {
                let header = format!("service {}", service.name.name);
                self.block(item.span, &header, service.name.span.end, |p| {
                    for member in &service.members {
                        match &member.node {
                            ServiceMember::Limits(members) => p.limits(members, member.span),
                            ServiceMember::Outlier(members) => p.outlier(members, member.span),
                            node => {
                                let text = p.service_member(node, member.span);
                                p.leaf(member.span, &text);
                            }
                        }
                    }
                });
            }
            ItemKind::Retry(profile) => {
                let header = format!("retry {}", profile.name.name);
                self.block(item.span, &header, profile.name.span.end, |p| {
                    p.retry_fields(&profile.fields);
                });
            }
            ItemKind::Route(route) => {
                let header = format!("route {}", ref_text(&route.service));
                self.block(item.span, &header, route.service.span.end, |p| {
                    for member in &route.members {
                        p.route_member(member);
                    }
                });
            }
            ItemKind::Policy(policy) => {
                let header = format!("policy {}", ref_text(&policy.service));
                self.block(item.span, &header, policy.service.span.end, |p| {
                    for member in &policy.members {
                        p.policy_member(member);
                    }
                });
            }
            ItemKind::Test(test) => {
                let header = format!("test {}", self.text(test.name.span));
                self.block(item.span, &header, test.name.span.end, |p| {
                    for case in &test.cases {
                        p.test_case(case);
                    }
                });
            }
            ItemKind::Gateway(gateway) => {
                let header = format!("gateway {}", gateway.name.name);
                self.block(item.span, &header, gateway.name.span.end, |p| {
                    for member in &gateway.members {
                        p.gateway_member(member);
                    }
                });
            }
            ItemKind::Error => {
                let text = self.text(item.span).to_string();
                self.leaf(item.span, &text);
            }
        }
    }

    /// `telemetry { tracing 10% access_log json }`, on one line.
    fn telemetry(&self, members: &[Spanned<TelemetryMember>]) -> String {
        let parts: Vec<String> = members
            .iter()
            .map(|m| match &m.node {
                TelemetryMember::Tracing(p) => format!("tracing {}", self.text(p.span)),
                TelemetryMember::AccessLog(format) => format!("access_log {}", format.name),
                TelemetryMember::Error => self.text(m.span).to_string(),
            })
            .collect();
        if parts.is_empty() {
            "telemetry {}".into()
        } else {
            format!("telemetry {{ {} }}", parts.join(" "))
        }
    }

    /// `tls { cert "PATH" key "PATH" }`, on one line.
    fn tls(&self, tls: &Tls) -> String {
        let parts: Vec<String> = tls
            .members
            .iter()
            .map(|m| match &m.node {
                TlsMember::Cert(path) => format!("cert {}", self.text(path.span)),
                TlsMember::Key(path) => format!("key {}", self.text(path.span)),
                TlsMember::Error => self.text(m.span).to_string(),
            })
            .collect();
        if parts.is_empty() {
            "tls {}".into()
        } else {
            format!("tls {{ {} }}", parts.join(" "))
        }
    }

    fn gateway_member(&mut self, member: &Spanned<GatewayMember>) {
        match &member.node {
            GatewayMember::Listen { port, tls } => {
                let mut text = format!("listen {}", self.text(port.span));
                if let Some(tls) = tls {
                    text.push(' ');
                    text.push_str(&self.tls(tls));
                }
                self.leaf(member.span, &text);
            }
            GatewayMember::Host(host) => {
                let mut header = format!("host {}", self.text(host.name.span));
                let mut header_end = host.name.span.end;
                if let Some(tls) = &host.tls {
                    header.push(' ');
                    header.push_str(&self.tls(tls));
                    header_end = tls.span.end;
                }
                self.block(member.span, &header, header_end, |p| {
                    for rule in &host.rules {
                        p.route_member(rule);
                    }
                });
            }
            GatewayMember::Identity(s) => {
                let text = format!("identity {}", self.text(s.span));
                self.leaf(member.span, &text);
            }
            GatewayMember::Error => {
                let text = self.text(member.span).to_string();
                self.leaf(member.span, &text);
            }
        }
    }

    fn service_member(&self, member: &ServiceMember, span: Span) -> String {
        match member {
            ServiceMember::Port { protocol, number } => match protocol {
                Some(protocol) => format!("port {} {}", protocol.name, self.text(number.span)),
                None => format!("port {}", self.text(number.span)),
            },
            ServiceMember::Identity(s) => format!("identity {}", self.text(s.span)),
            ServiceMember::Labels(labels) => format!("labels {}", self.labels(labels)),
            ServiceMember::Subset(subset) => {
                format!(
                    "subset {} {}",
                    subset.name.name,
                    self.labels(&subset.labels)
                )
            }
            ServiceMember::Balance(b) => format!("balance {}", b.name),
            ServiceMember::Limits(_) | ServiceMember::Outlier(_) | ServiceMember::Error => {
                self.text(span).to_string()
            }
        }
    }

    fn limits(&mut self, members: &[Spanned<LimitsMember>], span: Span) {
        self.block(span, "limits", span.start, |p| {
            for member in members {
                let (keyword, value) = match &member.node {
                    LimitsMember::MaxConnections(n) => ("max_connections", n),
                    LimitsMember::MaxPending(n) => ("max_pending", n),
                    LimitsMember::MaxRequests(n) => ("max_requests", n),
                    LimitsMember::Error => {
                        let text = p.text(member.span).to_string();
                        p.leaf(member.span, &text);
                        continue;
                    }
                };
                let text = format!("{keyword} {}", p.text(value.span));
                p.leaf(member.span, &text);
            }
        });
    }

    fn outlier(&mut self, members: &[Spanned<OutlierMember>], span: Span) {
        self.block(span, "outlier", span.start, |p| {
            for member in members {
                let (keyword, value) = match &member.node {
                    OutlierMember::Consecutive5xx(n) => ("consecutive_5xx", n),
                    OutlierMember::Interval(d) => ("interval", d),
                    OutlierMember::BaseEjection(d) => ("base_ejection", d),
                    OutlierMember::MaxEjected(share) => ("max_ejected", share),
                    OutlierMember::Error => {
                        let text = p.text(member.span).to_string();
                        p.leaf(member.span, &text);
                        continue;
                    }
                };
                let text = format!("{keyword} {}", p.text(value.span));
                p.leaf(member.span, &text);
            }
        });
    }

    fn labels(&self, labels: &[Label]) -> String {
        if labels.is_empty() {
            return "{}".into();
        }
        let entries: Vec<String> = labels
            .iter()
            .map(|l| format!("{} = {}", l.key.name, self.text(l.value.span)))
            .collect();
        format!("{{ {} }}", entries.join(", "))
    }

    fn retry_fields(&mut self, fields: &[Spanned<RetryField>]) {
        for field in fields {
            let text = match &field.node {
                RetryField::Attempts(n) => format!("attempts {}", self.text(n.span)),
                RetryField::PerTryTimeout(d) => format!("per_try_timeout {}", self.text(d.span)),
                RetryField::On(list) => format!("on {}", self.values(list)),
                RetryField::Backoff { base, max } => {
                    format!("backoff {}..{}", self.text(base.span), self.text(max.span))
                }
                RetryField::Budget { ratio, min } => match min {
                    Some(min) => format!(
                        "budget {} min {}",
                        self.text(ratio.span),
                        self.text(min.span)
                    ),
                    None => format!("budget {}", self.text(ratio.span)),
                },
                RetryField::Error => self.text(field.span).to_string(),
            };
            self.leaf(field.span, &text);
        }
    }

    fn retry_spec(&mut self, spec: &RetrySpec, span: Span) {
        match spec {
            RetrySpec::Named(r) => self.leaf(span, &format!("retry {}", ref_text(r))),
            RetrySpec::Inline(fields) => {
                self.block(span, "retry", span.start, |p| p.retry_fields(fields));
            }
        }
    }

    fn route_member(&mut self, member: &Spanned<RouteMember>) {
        match &member.node {
            RouteMember::Timeout(d) => {
                let text = format!("timeout {}", self.text(d.span));
                self.leaf(member.span, &text);
            }
            RouteMember::Retry(spec) => self.retry_spec(spec, member.span),
            RouteMember::ConnectTimeout(d) => {
                let text = format!("connect_timeout {}", self.text(d.span));
                self.leaf(member.span, &text);
            }
            RouteMember::IdleTimeout(d) => {
                let text = format!("idle_timeout {}", self.text(d.span));
                self.leaf(member.span, &text);
            }
            RouteMember::To(r) => self.leaf(member.span, &format!("to {}", ref_text(r))),
            RouteMember::Split(targets) => self.split(targets, member.span),
            RouteMember::Rule(rule) => {
                let (header, header_end) = match &rule.when {
                    Some(when) => (
                        format!("rule {} when {}", rule.name.name, self.expr(when)),
                        when.span.end,
                    ),
                    None => (format!("rule {}", rule.name.name), rule.name.span.end),
                };
                self.block(member.span, &header, header_end, |p| {
                    for m in &rule.members {
                        p.rule_member(m);
                    }
                });
            }
            RouteMember::Error => {
                let text = self.text(member.span).to_string();
                self.leaf(member.span, &text);
            }
        }
    }

    fn rule_member(&mut self, member: &Spanned<RuleMember>) {
        let text = match &member.node {
            RuleMember::To(r) => format!("to {}", ref_text(r)),
            RuleMember::Split(targets) => {
                self.split(targets, member.span);
                return;
            }
            RuleMember::Timeout(d) => format!("timeout {}", self.text(d.span)),
            RuleMember::Retry(spec) => {
                self.retry_spec(spec, member.span);
                return;
            }
            RuleMember::Mirror { target, percent } => match percent {
                Some(p) => format!("mirror {} {}", ref_text(target), self.text(p.span)),
                None => format!("mirror {}", ref_text(target)),
            },
            RuleMember::Fault(faults) => {
                self.block(member.span, "fault", member.span.start, |p| {
                    for fault in faults {
                        let text = match &fault.node {
                            FaultMember::Delay { duration, percent } => {
                                format!("delay {} {}", p.text(duration.span), p.text(percent.span))
                            }
                            FaultMember::Abort { status, percent } => {
                                format!("abort {} {}", p.text(status.span), p.text(percent.span))
                            }
                            FaultMember::Error => p.text(fault.span).to_string(),
                        };
                        p.leaf(fault.span, &text);
                    }
                });
                return;
            }
            RuleMember::SetHeader { name, value } => {
                format!(
                    "set_header {} {}",
                    self.text(name.span),
                    self.text(value.span)
                )
            }
            RuleMember::RemoveHeader(name) => format!("remove_header {}", self.text(name.span)),
            RuleMember::RewritePrefix { from, to } => {
                format!(
                    "rewrite_prefix {} {}",
                    self.text(from.span),
                    self.text(to.span)
                )
            }
            RuleMember::Error => self.text(member.span).to_string(),
        };
        self.leaf(member.span, &text);
    }

    fn split(&mut self, targets: &[SplitTarget], span: Span) {
        self.block(span, "split", span.start, |p| {
            for t in targets {
                let text = format!("{} {}", ref_text(&t.target), p.text(t.weight.span));
                p.leaf(t.span, &text);
            }
        });
    }

    fn policy_member(&mut self, member: &Spanned<PolicyMember>) {
        let (keyword, rule) = match &member.node {
            PolicyMember::Mode(mode) => {
                self.leaf(member.span, &format!("mode {}", mode.name));
                return;
            }
            PolicyMember::Cedar(policy) => {
                let text = format!("cedar {}", self.text(policy.span));
                self.leaf(member.span, &text);
                return;
            }
            PolicyMember::RateLimit(limit) => {
                let text = self.rate_limit(limit);
                self.leaf(member.span, &text);
                return;
            }
            PolicyMember::Error => {
                let text = self.text(member.span).to_string();
                self.leaf(member.span, &text);
                return;
            }
            PolicyMember::Allow(rule) => ("allow", rule),
            PolicyMember::Deny(rule) => ("deny", rule),
        };
        let sources: Vec<String> = rule.from.iter().map(source_text).collect();
        let mut header = format!("{keyword} from {}", sources.join(", "));
        let mut header_end = rule
            .from
            .last()
            .map_or(member.span.start, |s| source_span(s).end);
        if let Some(when) = &rule.when {
            header.push_str(" when ");
            header.push_str(&self.expr(when));
            header_end = when.span.end;
        }
        if rule.constraints.is_empty()
            && !self
                .src
                .get(header_end..member.span.end)
                .unwrap_or_default()
                .contains('{')
        {
            self.leaf(member.span, &header);
            return;
        }
        self.block(member.span, &header, header_end, |p| {
            for constraint in &rule.constraints {
                let text = match &constraint.node {
                    Constraint::Methods(list) => format!("methods {}", p.values(list)),
                    Constraint::Paths(list) => format!("paths {}", p.values(list)),
                    Constraint::Ports(list) => format!("ports {}", p.values(list)),
                    Constraint::Error => p.text(constraint.span).to_string(),
                };
                p.leaf(constraint.span, &text);
            }
        });
    }

    fn rate_limit(&self, limit: &RateLimit) -> String {
        let mut text = String::from("rate_limit ");
        if let Some(name) = &limit.name {
            text.push_str(&name.name);
            text.push(' ');
        }
        text.push_str(self.text(limit.rate.span));
        if let Some(burst) = &limit.burst {
            text.push_str(" burst ");
            text.push_str(self.text(burst.span));
        }
        if limit.per_caller.is_some() {
            text.push_str(" per caller");
        }
        if let Some(when) = &limit.when {
            text.push_str(" when ");
            text.push_str(&self.expr(when));
        }
        text
    }

    fn test_case(&mut self, case: &Spanned<TestCase>) {
        let (request, expect) = match &case.node {
            TestCase::Case { request, expect } => (request, expect),
            TestCase::Connect { connect, expect } => {
                let line = format!(
                    "connect {} from {} to {}",
                    self.text(connect.port.span),
                    ref_text(&connect.from),
                    ref_text(&connect.to)
                );
                self.leaf(connect.span, &line);
                self.expectations(expect, Span::new(connect.span.end, case.span.end));
                return;
            }
            TestCase::Error => {
                let text = self.text(case.span).to_string();
                self.leaf(case.span, &text);
                return;
            }
        };
        let from = request
            .from
            .as_ref()
            .map(|from| format!(" from {}", ref_text(from)))
            .unwrap_or_default();
        let mut line = format!(
            "request {} {}{from} to {}",
            request.method.name,
            self.text(request.path.span),
            ref_text(&request.to)
        );
        for param in &request.params {
            let keyword = match param.kind {
                ParamKind::Header => "header",
                ParamKind::Query => "query",
            };
            line.push_str(&format!(
                " {keyword} {} = {}",
                self.text(param.name.span),
                self.text(param.value.span)
            ));
        }
        self.leaf(request.span, &line);
        self.expectations(expect, Span::new(request.span.end, case.span.end));
    }

    fn expectations(&mut self, expect: &[Spanned<Expectation>], span: Span) {
        let expectations: Vec<String> = expect
            .iter()
            .map(|e| match &e.node {
                Expectation::Allow => "allow".to_string(),
                Expectation::Deny => "deny".to_string(),
                Expectation::Rule(name) => format!("rule {}", name.name),
                Expectation::Backend { target, only } => {
                    let only = if *only { " only" } else { "" };
                    format!("backend {}{only}", ref_text(target))
                }
                Expectation::Timeout(d) => format!("timeout {}", self.text(d.span)),
                Expectation::Retries(n) => format!("retries {}", self.text(n.span)),
                Expectation::RateLimit(name) => format!("rate_limit {}", name.name),
            })
            .collect();
        let text = format!("expect {}", expectations.join(", "));
        self.leaf(span, &text);
    }

    fn values(&self, list: &[Value]) -> String {
        let items: Vec<&str> = list.iter().map(|v| self.text(v.span())).collect();
        format!("[{}]", items.join(", "))
    }

    fn expr(&self, expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Or(a, b) => format!("{} || {}", self.expr(a), self.expr(b)),
            ExprKind::And(a, b) => format!("{} && {}", self.expr(a), self.expr(b)),
            ExprKind::Not(e) => format!("!{}", self.expr(e)),
            ExprKind::Group(e) => format!("({})", self.expr(e)),
            ExprKind::Compare { lhs, op, rhs } => {
                format!(
                    "{} {} {}",
                    self.operand(lhs),
                    op.node.as_str(),
                    self.operand(rhs)
                )
            }
            ExprKind::In { lhs, list } => format!("{} in {}", self.operand(lhs), self.values(list)),
            ExprKind::Exists(o) => format!("exists {}", self.operand(o)),
        }
    }

    fn operand(&self, operand: &Operand) -> String {
        match &operand.kind {
            OperandKind::Method => "method".into(),
            OperandKind::Path => "path".into(),
            OperandKind::Host => "host".into(),
            OperandKind::Source => "source".into(),
            OperandKind::Header(name) => format!("header({})", self.text(name.span)),
            OperandKind::Query(name) => format!("query({})", self.text(name.span)),
            OperandKind::Literal(lit) => self.text(lit.span).to_string(),
            OperandKind::Ref(r) => ref_text(r),
        }
    }
}

/// A reference in canonical form: `ns/name.subset`.
pub fn ref_text(r: &Ref) -> String {
    let mut text = String::new();
    if let Some(ns) = &r.namespace {
        text.push_str(&ns.name);
        text.push('/');
    }
    text.push_str(&r.name.name);
    if let Some(subset) = &r.subset {
        text.push('.');
        text.push_str(&subset.name);
    }
    text
}

fn source_text(source: &Source) -> String {
    match source {
        Source::Service(r) => ref_text(r),
        Source::Any(_) => "any".into(),
        Source::Authenticated(_) => "authenticated".into(),
        Source::Namespace { name, .. } => format!("namespace {}", name.name),
    }
}

fn source_span(source: &Source) -> Span {
    match source {
        Source::Service(r) => r.span,
        Source::Any(span) | Source::Authenticated(span) | Source::Namespace { span, .. } => *span,
    }
}
