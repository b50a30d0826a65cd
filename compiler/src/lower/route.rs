//! Routes and rules (LANGUAGE.md §5, §10): destinations, splits, mirrors, faults, header
//! edits, timeouts and retries, and the check that retries fit in the route's timeout;
//! connect and idle timeouts, and the route-level destination (`to`/`split` directly in
//! the route), which becomes a last rule named `default` without a condition.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, FaultMember, Percent, Ref, RouteMember, RuleMember, Span};

use crate::diag::{
    CONFLICT, CROSS_SERVICE_ROUTE, DUPLICATE, Finding, IDLE_TIMEOUT_WITHOUT_TCP, OUT_OF_RANGE,
    RULE_DESTINATION, SPLIT_SUM,
};
use crate::ir::{
    Dest, Fault, Mesh, Micros, Mirror, Origin, RetryUse, Route, Rule, ServiceId, Target,
};
use crate::resolve::Decl;

use super::{Cx, cond, retry, tcp};

/// The name of the rule a route-level `to`/`split` becomes.
pub const DEFAULT_RULE: &str = "default";

pub fn lower(cx: &mut Cx<'_>, decl: &Decl<'_, ast::Route>, mesh: &mut Mesh) {
    let node = decl.node;
    let Some(target) =
        cx.symbols
            .resolve_service(&node.service, cx.namespace, cx.file, cx.findings)
    else {
        return;
    };
    if node.service.subset.is_some() {
        cx.push(
            Diagnostic::error(
                crate::diag::TYPE_MISMATCH,
                "a route is for a whole service, not a subset",
                node.service.span,
                "names a subset",
            )
            .with_help(format!(
                "write `route {}` and send traffic to the subset with a rule: `to {}`",
                node.service.name.name,
                mesh_lang::format::ref_text(&node.service)
            )),
        );
        return;
    }
    let service_id = target.service;
    if let Some(existing) = mesh.service(service_id).and_then(|s| s.route.as_ref()) {
        let first = existing.origin;
        let mut d = Diagnostic::error(
            CONFLICT,
            format!("service `{}` has two routes", node.service.name.name),
            node.service.span,
            "second route",
        )
        .with_help("a service has at most one route: merge the rules into one `route` block");
        d = d.with_label_in(
            first.file,
            Span::new(first.span.start, first.span.start + 5),
            "first route",
        );
        cx.push(d);
        return;
    }
    let mut route = Route {
        origin: decl.origin(),
        timeout: None,
        timeout_origin: None,
        retry: None,
        retry_origin: None,
        connect_timeout: None,
        idle_timeout: None,
        rules: Vec::new(),
    };
    let mut rule_names: Vec<(String, Span)> = Vec::new();
    let (mut connect_seen, mut idle_seen) = (false, false);
    // The route-level destination: where it is written, and the rule it becomes.
    let mut default: Option<(Span, Rule)> = None;
    for member in &node.members {
        match &member.node {
            RouteMember::ConnectTimeout(d) => {
                if connect_seen {
                    set_twice(cx, "connect_timeout", member.span);
                    continue;
                }
                connect_seen = true;
                route.connect_timeout = positive_duration(cx, d, "connect_timeout");
            }
            RouteMember::IdleTimeout(d) => {
                if idle_seen {
                    set_twice(cx, "idle_timeout", member.span);
                    continue;
                }
                idle_seen = true;
                route.idle_timeout = positive_duration(cx, d, "idle_timeout");
                if let Some(service) = mesh.service(service_id)
                    && !service.has_tcp()
                {
                    cx.push(
                        Diagnostic::warning(
                            IDLE_TIMEOUT_WITHOUT_TCP,
                            format!(
                                "`idle_timeout` has no effect: `{}` has no tcp port",
                                service.name
                            ),
                            member.span,
                            "no effect",
                        )
                        .with_help(
                            "`idle_timeout` closes idle opaque TCP connections; remove it, or declare the port as `port tcp N`",
                        ),
                    );
                }
            }
            RouteMember::To(_) | RouteMember::Split(_) if default.is_some() => {
                let first = default.as_ref().map_or(member.span, |(s, _)| *s);
                cx.push(
                    Diagnostic::error(
                        RULE_DESTINATION,
                        "this route has more than one destination of its own",
                        member.span,
                        "second destination",
                    )
                    .with_label(first, "first destination")
                    .with_help("a route has at most one `to` or one `split` outside its rules; put several backends in one `split`"),
                );
            }
            RouteMember::To(r) => {
                let dest = self::target(cx, r, Some(service_id), mesh).map(Dest::To);
                default = Some((
                    member.span,
                    default_rule(cx, member.span, member.span, dest),
                ));
            }
            RouteMember::Split(targets) => {
                let dest = split(cx, targets, member.span, Some(service_id), mesh).map(Dest::Split);
                let keyword = Span::new(member.span.start, member.span.start + 5);
                default = Some((member.span, default_rule(cx, member.span, keyword, dest)));
            }
            RouteMember::Timeout(d) => {
                if route.timeout_origin.is_some() {
                    set_twice(cx, "timeout", member.span);
                    continue;
                }
                route.timeout = cx.duration(d);
                route.timeout_origin = Some(cx.origin(member.span));
            }
            RouteMember::Retry(spec) => {
                if route.retry_origin.is_some() {
                    set_twice(cx, "retry", member.span);
                    continue;
                }
                route.retry = retry::lower_use(cx, spec);
                route.retry_origin = Some(cx.origin(member.span));
            }
            RouteMember::Rule(rule) => {
                if let Some((_, first)) = rule_names.iter().find(|(n, _)| *n == rule.name.name) {
                    let first = *first;
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            format!("rule `{}` is defined twice in this route", rule.name.name),
                            rule.name.span,
                            "defined again here",
                        )
                        .with_label(first, "first defined here")
                        .with_help("rule names identify rules in tests, metrics and logs: make them unique"),
                    );
                    continue;
                }
                rule_names.push((rule.name.name.clone(), rule.name.span));
                let lowered = lower_rule(cx, rule, member.span, Some(service_id), mesh);
                if let (Some(service), Some(when)) = (mesh.service(service_id), &lowered.when) {
                    tcp::forbid_l7_cond(cx, service, when);
                }
                route.rules.push(lowered);
            }
            RouteMember::Error => {}
        }
    }
    if let Some((span, rule)) = default {
        if let Some((_, named)) = rule_names.iter().find(|(n, _)| n == DEFAULT_RULE) {
            cx.push(
                Diagnostic::error(
                    DUPLICATE,
                    "rule `default` clashes with the route's own destination",
                    *named,
                    "a rule named `default`",
                )
                .with_label(span, "this destination is rule `default`")
                .with_help("the route-level `to`/`split` is the rule `default` in tests and logs: rename the rule"),
            );
        }
        route.rules.push(rule);
    }
    check_retry_fits(
        cx,
        mesh,
        route.timeout,
        route.timeout_origin,
        route.retry.as_ref(),
        route.retry_origin,
    );
    for rule in &route.rules {
        let timeout = rule.timeout.or(route.timeout);
        let (retry, retry_origin) = match &rule.retry {
            Some(r) => (Some(r), rule.retry_origin),
            None => (None, None),
        };
        if retry.is_some() || rule.timeout.is_some() {
            let retry = retry.or(route.retry.as_ref());
            let retry_origin = retry_origin.or(route.retry_origin);
            let timeout_origin = if rule.timeout.is_some() {
                Some(rule.origin)
            } else {
                route.timeout_origin
            };
            check_retry_fits(cx, mesh, timeout, timeout_origin, retry, retry_origin);
        }
    }
    if let Some(service) = mesh.services.get_mut(service_id.0 as usize) {
        service.route = Some(route);
    }
}

fn set_twice(cx: &mut Cx<'_>, what: &str, span: Span) {
    cx.push(
        Diagnostic::error(
            DUPLICATE,
            format!("`{what}` is set twice"),
            span,
            "set again here",
        )
        .with_help(format!("keep one `{what}`")),
    );
}

/// A duration above zero; `E0006` for `0s`.
fn positive_duration(cx: &mut Cx<'_>, d: &ast::Literal, what: &str) -> Option<Micros> {
    let micros = cx.duration(d)?;
    if micros == 0 {
        cx.out_of_range(
            format!("`{what}` must be longer than 0"),
            d.span,
            "zero",
            &format!("write a positive duration such as `{what} 1s`"),
        );
        return None;
    }
    Some(micros)
}

/// The rule a route-level destination becomes: `default`, without a condition.
fn default_rule(cx: &Cx<'_>, span: Span, name_span: Span, dest: Option<Dest>) -> Rule {
    Rule {
        name: DEFAULT_RULE.to_string(),
        route_default: true,
        doc: None,
        origin: cx.origin(span),
        name_origin: cx.origin(name_span),
        when: None,
        dest,
        timeout: None,
        retry: None,
        retry_origin: None,
        mirrors: Vec::new(),
        fault: None,
        set_headers: Vec::new(),
        remove_headers: Vec::new(),
        rewrite_prefix: None,
    }
}

/// Lowers a `rule` block. `routed` is the service a route is for (other targets get
/// `W0007`); `None` for a gateway's rules, whose targets may be any service.
pub(super) fn lower_rule(
    cx: &mut Cx<'_>,
    rule: &ast::Rule,
    span: Span,
    routed: Option<ServiceId>,
    mesh: &Mesh,
) -> Rule {
    let mut out = Rule {
        name: rule.name.name.clone(),
        route_default: false,
        doc: rule.doc.clone(),
        origin: cx.origin(span),
        name_origin: cx.origin(rule.name.span),
        when: rule.when.as_ref().and_then(|w| cond::lower(cx, w)),
        dest: None,
        timeout: None,
        retry: None,
        retry_origin: None,
        mirrors: Vec::new(),
        fault: None,
        set_headers: Vec::new(),
        remove_headers: Vec::new(),
        rewrite_prefix: None,
    };
    let mut dest_span: Option<Span> = None;
    let mut timeout_seen = false;
    for member in &rule.members {
        match &member.node {
            RuleMember::To(_) | RuleMember::Split(_) if dest_span.is_some() => {
                let first = dest_span.unwrap_or(member.span);
                cx.push(
                    Diagnostic::error(
                        RULE_DESTINATION,
                        format!("rule `{}` has more than one destination", rule.name.name),
                        member.span,
                        "second destination",
                    )
                    .with_label(first, "first destination")
                    .with_help("a rule has exactly one `to` or one `split`; put several backends in one `split`"),
                );
            }
            RuleMember::To(r) => {
                dest_span = Some(member.span);
                out.dest = target(cx, r, routed, mesh).map(Dest::To);
            }
            RuleMember::Split(targets) => {
                dest_span = Some(member.span);
                out.dest = split(cx, targets, member.span, routed, mesh).map(Dest::Split);
            }
            RuleMember::Timeout(d) => {
                if timeout_seen {
                    set_twice(cx, "timeout", member.span);
                    continue;
                }
                timeout_seen = true;
                out.timeout = cx.duration(d);
            }
            RuleMember::Retry(spec) => {
                if out.retry_origin.is_some() {
                    set_twice(cx, "retry", member.span);
                    continue;
                }
                out.retry = retry::lower_use(cx, spec);
                out.retry_origin = Some(cx.origin(member.span));
            }
            RuleMember::Mirror { target: r, percent } => {
                let percent = match percent {
                    Some(p) => cx.percent(p),
                    None => Some(Percent::FULL),
                };
                if let (Some(target), Some(percent)) = (target(cx, r, routed, mesh), percent) {
                    out.mirrors.push(Mirror { target, percent });
                }
            }
            RuleMember::Fault(members) => {
                if out.fault.is_some() {
                    set_twice(cx, "fault", member.span);
                    continue;
                }
                out.fault = Some(fault(cx, members));
            }
            RuleMember::SetHeader { name, value } => {
                if let Some(name) = header_name(cx, name) {
                    if value.value.contains(['\r', '\n', '\0']) {
                        cx.out_of_range(
                            "a header value cannot hold line breaks or NUL".into(),
                            value.span,
                            "invalid header value",
                            "remove the control characters",
                        );
                    } else {
                        out.set_headers.push((name, value.value.clone()));
                    }
                }
            }
            RuleMember::RemoveHeader(name) => {
                if let Some(name) = header_name(cx, name) {
                    out.remove_headers.push(name);
                }
            }
            RuleMember::RewritePrefix { from, to } => {
                let mut ok = true;
                for s in [from, to] {
                    if !s.value.starts_with('/') {
                        ok = false;
                        cx.out_of_range(
                            format!("`{}` is not a path prefix", s.value),
                            s.span,
                            "must start with `/`",
                            "path prefixes start with `/`: `rewrite_prefix \"/v1/\" \"/\"`",
                        );
                    }
                }
                if ok {
                    out.rewrite_prefix = Some((from.value.clone(), to.value.clone()));
                }
            }
            RuleMember::Error => {}
        }
    }
    if dest_span.is_none()
        && !rule
            .members
            .iter()
            .any(|m| matches!(m.node, RuleMember::Error))
    {
        cx.push(
            Diagnostic::error(
                RULE_DESTINATION,
                format!("rule `{}` has no destination", rule.name.name),
                rule.name.span,
                "no `to` or `split`",
            )
            .with_help("add `to SERVICE[.SUBSET]` or `split { ... }`"),
        );
    }
    out
}

/// A backend of a rule; other services than the routed one get `W0007`.
fn target(cx: &mut Cx<'_>, r: &Ref, routed: Option<ServiceId>, mesh: &Mesh) -> Option<Target> {
    let resolved = cx
        .symbols
        .resolve_service(r, cx.namespace, cx.file, cx.findings)?;
    if let Some(routed) = routed
        && resolved.service != routed
    {
        let routed_name = mesh
            .service(routed)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        cx.push(
            Diagnostic::warning(
                CROSS_SERVICE_ROUTE,
                format!("this route for `{routed_name}` sends traffic to another service"),
                r.span,
                "another service",
            )
            .with_help(format!(
                "callers of `{routed_name}` would reach a different workload; if that is intended, consider a route on the callers instead"
            )),
        );
    }
    Some(Target {
        service: resolved.service,
        subset: resolved.subset,
    })
}

fn split(
    cx: &mut Cx<'_>,
    targets: &[ast::SplitTarget],
    span: Span,
    routed: Option<ServiceId>,
    mesh: &Mesh,
) -> Option<Vec<(Target, Percent)>> {
    let mut out = Vec::new();
    let mut complete = true;
    let mut seen: Vec<(Target, Span)> = Vec::new();
    for t in targets {
        let resolved = target(cx, &t.target, routed, mesh);
        let weight = cx.percent(&t.weight);
        match (resolved, weight) {
            (Some(resolved), Some(weight)) => {
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == resolved) {
                    let first = *first;
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            format!(
                                "`{}` appears twice in this split",
                                mesh_lang::format::ref_text(&t.target)
                            ),
                            t.target.span,
                            "again here",
                        )
                        .with_label(first, "first here")
                        .with_help("give each backend one weight"),
                    );
                    complete = false;
                    continue;
                }
                seen.push((resolved.clone(), t.target.span));
                out.push((resolved, weight));
            }
            _ => complete = false,
        }
    }
    if targets.is_empty() {
        cx.push(
            Diagnostic::error(SPLIT_SUM, "an empty split sends traffic nowhere", span, "no backends")
                .with_help("list backends with weights that add up to 100%: `split { svc.v1 90%  svc.v2 10% }`"),
        );
        return None;
    }
    if !complete {
        return None;
    }
    let sum: u64 = out.iter().map(|(_, w)| w.milli).sum();
    if sum != Percent::FULL.milli {
        let total = Percent { milli: sum };
        let mut d = Diagnostic::error(
            SPLIT_SUM,
            format!("split weights add up to {total}, not 100%"),
            Span::new(span.start, span.start + 5),
            format!("sums to {total}"),
        );
        for t in targets {
            d = d.with_label(t.weight.span, src_text(cx, t.weight.span));
        }
        let help = if sum < Percent::FULL.milli {
            format!(
                "{} is missing: adjust the weights to add up to exactly 100%",
                Percent {
                    milli: Percent::FULL.milli - sum
                }
            )
        } else {
            format!(
                "{} too much: adjust the weights to add up to exactly 100%",
                Percent {
                    milli: sum - Percent::FULL.milli
                }
            )
        };
        cx.push(d.with_help(help));
        return None;
    }
    Some(out)
}

fn src_text(cx: &Cx<'_>, span: Span) -> String {
    cx.loaded
        .file(cx.file)
        .and_then(|f| f.source.text.get(span.start..span.end))
        .unwrap_or_default()
        .to_string()
}

fn fault(cx: &mut Cx<'_>, members: &[ast::Spanned<FaultMember>]) -> Fault {
    let mut fault = Fault::default();
    for member in members {
        match &member.node {
            FaultMember::Delay { duration, percent } => {
                if fault.delay.is_some() {
                    set_twice(cx, "delay", member.span);
                    continue;
                }
                if let (Some(d), Some(p)) = (cx.duration(duration), cx.percent(percent)) {
                    fault.delay = Some((d, p));
                }
            }
            FaultMember::Abort { status, percent } => {
                if fault.abort.is_some() {
                    set_twice(cx, "abort", member.span);
                    continue;
                }
                if let (Some(s), Some(p)) = (cx.status(status), cx.percent(percent)) {
                    fault.abort = Some((s, p));
                }
            }
            FaultMember::Error => {}
        }
    }
    fault
}

/// A header name: an RFC 9110 token, lower-cased.
pub fn header_name(cx: &mut Cx<'_>, name: &ast::StrLit) -> Option<String> {
    if mesh_config::vocab::header::is_name(&name.value) {
        return Some(name.value.to_ascii_lowercase());
    }
    cx.out_of_range(
        format!("`{}` is not a valid header name", name.value),
        name.span,
        "invalid header name",
        "header names are letters, digits and `-` (any RFC 9110 token), as in `x-request-id`",
    );
    None
}

/// `E0006` when `per_try_timeout × attempts` exceeds the timeout: the later tries could
/// never run.
pub(super) fn check_retry_fits(
    cx: &mut Cx<'_>,
    mesh: &Mesh,
    timeout: Option<Micros>,
    timeout_origin: Option<Origin>,
    retry: Option<&RetryUse>,
    retry_origin: Option<Origin>,
) {
    let (Some(timeout), Some(retry), Some(retry_origin)) = (timeout, retry, retry_origin) else {
        return;
    };
    let policy = match retry {
        RetryUse::Profile(id) => match mesh.retries.get(id.0 as usize) {
            Some(profile) => &profile.policy,
            None => return,
        },
        RetryUse::Inline(policy) => policy,
        RetryUse::Disabled => return,
    };
    let Some(per_try) = policy.per_try_timeout else {
        return;
    };
    let worst = per_try.saturating_mul(u64::from(policy.attempts));
    if policy.attempts > 1 && worst > timeout {
        let mut d = Diagnostic::error(
            OUT_OF_RANGE,
            format!(
                "{} attempts of {} each take up to {}, more than the timeout of {}",
                policy.attempts,
                human_micros(per_try),
                human_micros(worst),
                human_micros(timeout)
            ),
            retry_origin.span,
            "these retries cannot all run",
        )
        .with_help(format!(
            "raise the timeout to at least {}, or lower `attempts` or `per_try_timeout`",
            human_micros(worst)
        ));
        if let Some(t) = timeout_origin {
            d = d.with_label_in(t.file, t.span, "timeout set here");
        }
        cx.findings.push(Finding {
            file: retry_origin.file,
            diagnostic: d,
        });
    }
}

/// `1500ms` → "1.5s"; whole units where possible.
pub fn human_micros(micros: Micros) -> String {
    const UNITS: [(u64, &str); 5] = [
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
        (1, "us"),
    ];
    for (size, unit) in UNITS {
        if micros >= size && micros.is_multiple_of(size) {
            return format!("{}{unit}", micros / size);
        }
    }
    for (size, unit) in UNITS {
        if micros >= size {
            return format!("{}{unit}", micros as f64 / size as f64);
        }
    }
    "0s".into()
}
