//! One-line signatures and literal explanations for hover and symbol details, written from
//! the syntax tree and the source text (collapsed to one line), so what hover shows is
//! what the user wrote.

use mesh_lang::ast::{
    self, LiteralKind, Percent, PolicyMember, RouteMember, RuleMember, ServiceMember, Span,
};

/// `text` of `span` with every run of whitespace collapsed to one space.
pub fn one_line(text: &str, span: Span) -> String {
    text.get(span.start..span.end)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `service ns/name { port http 9080; subsets v1, v2; balance ewma }`.
pub fn service(ns: &str, service: &ast::Service, text: &str) -> String {
    let mut parts = Vec::new();
    let mut subsets = Vec::new();
    for member in &service.members {
        match &member.node {
            ServiceMember::Subset(s) => subsets.push(s.name.name.as_str()),
            ServiceMember::Error => {}
            _ => parts.push(one_line(text, member.span)),
        }
    }
    if !subsets.is_empty() {
        parts.push(format!("subsets {}", subsets.join(", ")));
    }
    format!(
        "service {ns}/{} {{ {} }}",
        service.name.name,
        parts.join("; ")
    )
}

/// `subset reviews.v2 { version = "v2" }`.
pub fn subset(service: &str, member: Span, text: &str) -> String {
    let written = one_line(text, member);
    match written.strip_prefix("subset ") {
        Some(rest) => format!("subset {service}.{rest}"),
        None => written,
    }
}

/// `retry careful { attempts 3; per_try_timeout 250ms; … }`.
pub fn retry(name: &str, fields: &[ast::Spanned<ast::RetryField>], text: &str) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter(|f| !matches!(f.node, ast::RetryField::Error))
        .map(|f| one_line(text, f.span))
        .collect();
    format!("retry {name} {{ {} }}", parts.join("; "))
}

/// `route reviews { timeout 2s; retry careful; rules jason, canary }`.
pub fn route(route: &ast::Route, text: &str) -> String {
    let mut parts = Vec::new();
    let mut rules = Vec::new();
    for member in &route.members {
        match &member.node {
            RouteMember::Rule(rule) => rules.push(rule.name.name.as_str()),
            RouteMember::Error => {}
            _ => parts.push(one_line(text, member.span)),
        }
    }
    if !rules.is_empty() {
        parts.push(format!("rules {}", rules.join(", ")));
    }
    format!(
        "route {} {{ {} }}",
        one_line(text, route.service.span),
        parts.join("; ")
    )
}

/// `rule jason when header("end-user") == "jason" → to reviews.v2`.
pub fn rule(rule: &ast::Rule, member: Span, text: &str) -> String {
    let head_end = rule
        .members
        .first()
        .map_or(member.end, |m| m.span.start)
        .min(
            rule.when
                .as_ref()
                .map_or(rule.name.span.end, |w| w.span.end),
        );
    let head = one_line(
        text,
        Span::new(member.start, head_end.max(rule.name.span.end)),
    );
    let head = head.trim_end_matches('{').trim_end().to_string();
    let dest: Vec<String> = rule
        .members
        .iter()
        .filter(|m| matches!(m.node, RuleMember::To(_) | RuleMember::Split(_)))
        .map(|m| one_line(text, m.span))
        .collect();
    if dest.is_empty() {
        head
    } else {
        format!("{head} → {}", dest.join("; "))
    }
}

/// `policy reviews { mode enforce; 1 allow, 1 deny }`.
pub fn policy(policy: &ast::Policy, text: &str) -> String {
    let (mut allows, mut denies, mut cedar, mut limits) = (0, 0, 0, 0);
    let mut mode = "enforce".to_string();
    for member in &policy.members {
        match &member.node {
            PolicyMember::Allow(_) => allows += 1,
            PolicyMember::Deny(_) => denies += 1,
            PolicyMember::Cedar(_) => cedar += 1,
            PolicyMember::RateLimit(_) => limits += 1,
            PolicyMember::Mode(m) => mode.clone_from(&m.name),
            PolicyMember::Error => {}
        }
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut parts = vec![
        format!("mode {mode}"),
        plural(allows, "allow"),
        plural(denies, "deny rule"),
    ];
    if cedar > 0 {
        parts.push(plural(cedar, "cedar block"));
    }
    if limits > 0 {
        parts.push(plural(limits, "rate limit"));
    }
    format!(
        "policy {} {{ {} }}",
        one_line(text, policy.service.span),
        parts.join("; ")
    )
}

/// What a `rate_limit` does, for hover: the `position`-th (1-based) limit of its policy.
pub fn rate_limit(limit: &ast::RateLimit, position: usize, text: &str) -> String {
    let name = limit
        .name
        .as_ref()
        .map_or_else(|| position.to_string(), |n| n.name.clone());
    let rate = match &limit.rate.kind {
        LiteralKind::Rate(r) => format!("{} requests per {}", r.count, unit_name(r.per)),
        _ => one_line(text, limit.rate.span),
    };
    let burst = match &limit.burst {
        Some(b) => format!("bursts of up to {}", one_line(text, b.span)),
        None => "bursts of up to its rate per second (the default)".to_string(),
    };
    let who = if limit.per_caller.is_some() {
        "one bucket per calling identity"
    } else {
        "one bucket for all callers together"
    };
    let which = match &limit.when {
        Some(when) => format!("requests where `{}`", one_line(text, when.span)),
        None => "every allowed request".to_string(),
    };
    format!(
        "rate limit `{name}`: {rate}, {burst}; {who}; counts {which}. Enforced by this service's agent: a request over the limit gets `429` with `retry-after` and `mesh-error: rate-limited`. Tests name it `expect rate_limit {name}`."
    )
}

/// What `limits { ... }` does, for hover.
pub const LIMITS_DOC: &str = "circuit breaking: how much of this service each caller's agent may use at once — `max_connections` (open connections), `max_pending` (requests waiting), `max_requests` (requests in flight). Over a limit a request fails fast with `503` and `mesh-error: overloaded`; a member left out sets no limit.";

/// What `outlier { ... }` does, for hover.
pub const OUTLIER_DOC: &str = "outlier ejection, decided by each caller's agent: after `consecutive_5xx` failures in a row (default 5; failures further apart than `interval`, default 10s, do not count) an endpoint gets no traffic for `base_ejection` (default 30s, longer each time), with at most `max_ejected` of the endpoints out at once (default 10%).";

/// What `telemetry { ... }` does, for hover.
pub const TELEMETRY_DOC: &str = "telemetry, for every agent of the mesh: `tracing PERCENT` samples that share of requests that arrive without W3C trace context (default 0%; `traceparent`/`tracestate` are always propagated, spans exported with OTLP); `access_log off|json` writes one JSON line per request (or tcp connection) to stdout (default `off`).";

/// What `listen` does in a gateway, for hover.
pub const LISTEN_DOC: &str = "`listen PORT` accepts plain HTTP from clients outside the mesh; `listen PORT tls { cert \"PATH\" key \"PATH\" }` terminates TLS with that certificate (a host's own certificate wins when the client's SNI names it). Relative paths are relative to this file.";

/// What `tls { ... }` does, for hover.
pub const TLS_DOC: &str = "`tls { cert \"PATH\" key \"PATH\" }`: a PEM certificate chain and its private key, read by the gateway's agent (and read again when they change); relative paths are relative to this file. The files need not exist when checking.";

/// What `host` does in a gateway, for hover.
pub const GATEWAY_HOST_DOC: &str = "`host \"NAME\" { RULES }`: requests whose host is NAME (exact, `*.SUFFIX` for subdomains, `*` for any) are routed by these rules — the rules of a `route`, to any service; a request matching none gets `404`, and so does a host no entry names.";

/// What `identity` does in a gateway, for hover.
pub const GATEWAY_IDENTITY_DOC: &str = "`identity \"SA\"`: the service account the gateway calls mesh services as (default: the gateway's name); their policies name it `from gateway/NAME`.";

/// A gateway's hover: its listeners and hosts.
pub fn gateway(ns: &str, gateway: &ast::Gateway) -> String {
    let mut listeners = Vec::new();
    let mut hosts = Vec::new();
    let mut identity = gateway.name.name.clone();
    for member in &gateway.members {
        match &member.node {
            ast::GatewayMember::Listen { port, tls } => listeners.push(match (&port.kind, tls) {
                (ast::LiteralKind::Int(n), Some(_)) => format!("{n} (TLS)"),
                (ast::LiteralKind::Int(n), None) => format!("{n}"),
                _ => "?".into(),
            }),
            ast::GatewayMember::Host(host) => hosts.push(format!("`{}`", host.name.value)),
            ast::GatewayMember::Identity(s) => identity.clone_from(&s.value),
            ast::GatewayMember::Error => {}
        }
    }
    format!(
        "gateway {ns}/{}\nidentity: {identity} (policies: `from gateway/{}`)\nlistens on: {}\nhosts: {}",
        gateway.name.name,
        gateway.name.name,
        if listeners.is_empty() {
            "nothing".into()
        } else {
            listeners.join(", ")
        },
        if hosts.is_empty() {
            "none".into()
        } else {
            hosts.join(", ")
        },
    )
}

/// What a literal is: its type and value.
pub fn literal(kind: &LiteralKind, written: &str) -> String {
    let ty = kind.type_name();
    let value = match kind {
        LiteralKind::Int(n) => format!("{n}"),
        LiteralKind::Duration(d) => {
            let micros = d.as_micros();
            format!("{written} = {}", human_micros(micros))
        }
        LiteralKind::Percent(p) => format!("{p} ({} of 1)", fraction(*p)),
        LiteralKind::Rate(r) => format!("{} per {}", r.count, unit_name(r.per)),
        LiteralKind::Str(s) => format!("{:?}", s.value),
        LiteralKind::StatusClass(c) => format!("{c}xx: any status from {c}00 to {c}99"),
    };
    format!("`{written}`: {ty} — {value}")
}

fn fraction(p: Percent) -> String {
    let text = format!("{:.5}", p.milli as f64 / 100_000.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

fn unit_name(unit: ast::TimeUnit) -> &'static str {
    match unit {
        ast::TimeUnit::Micros => "microsecond",
        ast::TimeUnit::Millis => "millisecond",
        ast::TimeUnit::Seconds => "second",
        ast::TimeUnit::Minutes => "minute",
        ast::TimeUnit::Hours => "hour",
    }
}

fn human_micros(micros: u64) -> String {
    if micros >= 1_000_000 {
        format!("{} s", micros as f64 / 1_000_000.0)
    } else if micros >= 1_000 {
        format!("{} ms", micros as f64 / 1_000.0)
    } else {
        format!("{micros} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_hover_says_what_it_counts() {
        let src = "policy p { allow from a rate_limit 10/s per caller when path == \"/x\" }";
        let parsed = mesh_lang::parse(src);
        let ast::ItemKind::Policy(policy) = &parsed.file.items[0].kind else {
            unreachable!("a policy")
        };
        let PolicyMember::RateLimit(limit) = &policy.members[1].node else {
            unreachable!("a rate limit")
        };
        assert_eq!(
            rate_limit(limit, 1, src),
            "rate limit `1`: 10 requests per second, bursts of up to its rate per second (the default); one bucket per calling identity; counts requests where `path == \"/x\"`. Enforced by this service's agent: a request over the limit gets `429` with `retry-after` and `mesh-error: rate-limited`. Tests name it `expect rate_limit 1`."
        );
    }

    #[test]
    fn a_gateway_hover_lists_its_listeners_and_hosts() {
        let src = "gateway public { listen 8080 listen 8443 tls { cert \"c\" key \"k\" } host \"a.example.com\" { } host \"*\" { } identity \"ingress\" }";
        let parsed = mesh_lang::parse(src);
        let ast::ItemKind::Gateway(g) = &parsed.file.items[0].kind else {
            unreachable!("a gateway")
        };
        assert_eq!(
            gateway("shop", g),
            "gateway shop/public\nidentity: ingress (policies: `from gateway/public`)\nlistens on: 8080, 8443 (TLS)\nhosts: `a.example.com`, `*`"
        );
    }

    #[test]
    fn literals_name_their_type_and_value() {
        let lit = |src: &str| {
            let parsed = mesh_lang::parse(&format!("retry r {{ per_try_timeout {src} }}"));
            let ast::ItemKind::Retry(r) = &parsed.file.items[0].kind else {
                return String::new();
            };
            let ast::RetryField::PerTryTimeout(l) = &r.fields[0].node else {
                return String::new();
            };
            literal(&l.kind, src)
        };
        assert_eq!(lit("250ms"), "`250ms`: Duration — 250ms = 250 ms");
        assert_eq!(lit("12.5%"), "`12.5%`: Percent — 12.5% (0.125 of 1)");
        assert_eq!(lit("10/s"), "`10/s`: Rate — 10 per second");
        assert_eq!(
            lit("5xx"),
            "`5xx`: Status — 5xx: any status from 500 to 599"
        );
    }
}
