//! Istio VirtualService → `route`: each `spec.http[]` entry becomes a rule (its matches
//! the `when`, its weighted destinations `to`/`split`, and its timeout, retries, fault,
//! mirrors and header edits the rule's members), added to the route of every host.

use crate::fields::{At, Fields};
use crate::lit;
use crate::model::{Cond, Mesh, Rule};
use crate::object::Object;
use crate::routing::{self, Match};

/// Translates one VirtualService into `mesh`.
pub fn translate(obj: &Object<'_>, mesh: &mut Mesh) {
    let spec = obj.spec();
    let Some(f) = spec.fields() else { return };
    let mut hosts = Vec::new();
    if let Some(h) = f.take("hosts") {
        for (host, item) in h.at().strings() {
            match lit::service_host(&host, &obj.namespace) {
                Some(service) => hosts.push(service),
                None => item.at().not_expressible(&format!(
                    "host {host:?} is not a service of the mesh: the language routes only \
                     between its own services"
                )),
            }
        }
    }
    if let Some(g) = f.take("gateways") {
        let gateways = g.at().strings();
        if !gateways.iter().any(|(name, _)| name == "mesh") {
            g.at().not_expressible(
                "routes of ingress gateways are not imported: this VirtualService does not \
                 apply inside the mesh (write a `gateway` block for the ingress)",
            );
            for key in ["http", "tcp", "tls", "exportTo"] {
                f.skip(key);
            }
            return;
        }
        if gateways.len() > 1 {
            g.at().not_expressible(
                "routes of ingress gateways are not imported; only the mesh's routing is",
            );
        }
    }
    f.not_expressible(
        "exportTo",
        "the language has no visibility scopes: a route applies to every caller",
    );
    f.not_expressible(
        "tcp",
        "TCP routes are not imported (write the route of a `port tcp` service by hand)",
    );
    f.not_expressible("tls", "TLS passthrough routes are not expressible");
    let mut rules = Vec::new();
    if let Some(http) = f.take("http") {
        for (i, item) in http.at().items().iter().enumerate() {
            if let Some(rule) = http_route(item.at(), i, obj) {
                rules.push(rule);
            }
        }
    }
    drop(f);
    for (ns, name) in hosts {
        let why = format!(
            "the host of VirtualService {} ({})",
            obj.name, obj.namespace
        );
        mesh.service(&ns, &name, &crate::declared(&why));
        let rules = rules
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                comment: r.comment.clone(),
                when: r.when.clone(),
                dest: rebase(&r.dest, &obj.namespace, &ns),
                members: r
                    .members
                    .iter()
                    .map(|m| rebase_member(m, &obj.namespace, &ns))
                    .collect(),
            })
            .collect();
        routing::add_rules(mesh, &ns, &name, &obj.ctx.object, rules);
    }
    declare_destinations(obj, mesh);
}

/// References are written relative to the VirtualService's namespace while the rules are
/// built; a host in another namespace gets them qualified.
fn rebase(dest: &crate::model::Dest, from: &str, to: &str) -> crate::model::Dest {
    use crate::model::Dest;
    let fix = |r: &str| {
        if from == to || r.contains('/') {
            r.to_string()
        } else {
            format!("{from}/{r}")
        }
    };
    match dest {
        Dest::To(r) => Dest::To(fix(r)),
        Dest::Split(parts) => Dest::Split(parts.iter().map(|(r, p)| (fix(r), p.clone())).collect()),
    }
}

fn rebase_member(member: &str, from: &str, to: &str) -> String {
    match member.strip_prefix("mirror ") {
        Some(rest) if from != to && !rest.contains('/') => format!("mirror {from}/{rest}"),
        _ => member.to_string(),
    }
}

/// Declares every service a destination named (collected while translating).
fn declare_destinations(obj: &Object<'_>, mesh: &mut Mesh) {
    let pending = std::mem::take(&mut *obj.refs.services.borrow_mut());
    for (ns, name, port) in pending {
        let why = format!(
            "a destination of VirtualService {} ({})",
            obj.name, obj.namespace
        );
        let service = mesh.service(&ns, &name, &crate::declared(&why));
        if let Some(port) = port {
            service.ports.entry(port).or_insert("http");
        }
    }
}

fn http_route(at: &At<'_>, index: usize, obj: &Object<'_>) -> Option<Rule> {
    let f = at.fields()?;
    let name = f
        .str("name")
        .map_or_else(|| format!("http-{index}"), |n| lit::ident(&n));
    let mut when = None;
    let mut members = Vec::new();
    let mut prefixes: Vec<Option<String>> = Vec::new();
    if let Some(m) = f.take("match") {
        let mut any = Vec::new();
        let mut everything = false;
        for item in m.at().items() {
            let (cond, prefix) = http_match(item.at());
            prefixes.push(prefix);
            // A match with no (expressible) condition matches every request.
            match cond {
                Some(c) => any.push(c),
                None => everything = true,
            }
        }
        when = if everything { None } else { Cond::any(any) };
    }
    let mut backends = Vec::new();
    let mut dest_at = None;
    if let Some(route) = f.take("route") {
        let items = route.at().items();
        let single = items.len() == 1;
        for item in &items {
            if let Some(b) = destination(item.at(), single, obj) {
                backends.push(b);
            }
        }
        dest_at = Some(route);
    }
    for (key, why) in [
        ("redirect", "redirects are not expressible"),
        ("directResponse", "direct responses are not expressible"),
        (
            "delegate",
            "delegation to other VirtualServices is not expressible",
        ),
        ("corsPolicy", "CORS policies are not expressible"),
    ] {
        f.not_expressible(key, why);
    }
    let timeout = f.take("timeout").and_then(|t| duration(t.at()));
    if let Some(t) = timeout.filter(|t| *t > 0) {
        members.push(format!("timeout {}", lit::duration(t)));
    }
    if let Some(r) = f.take("retries") {
        members.extend(retries(r.at(), timeout.filter(|t| *t > 0)));
    }
    if let Some(fault) = f.take("fault") {
        members.extend(fault_block(fault.at()));
    }
    mirrors(&f, obj, &mut members);
    if let Some(h) = f.take("headers") {
        members.extend(headers(h.at()));
    }
    if let Some(r) = f.take("rewrite") {
        members.extend(rewrite(r.at(), &prefixes));
    }
    let dest = routing::destination(&backends);
    if dest.is_none() {
        let why = "this rule has no destination that receives traffic, so it is not imported";
        match &dest_at {
            Some(route) => route.at().not_expressible(why),
            None => at.not_expressible(why),
        }
        return None;
    }
    Some(Rule {
        name,
        comment: format!("{} {}", obj.ctx.object, at.path),
        when,
        dest: dest?,
        members,
    })
}

/// A duration field in microseconds, or a report.
pub fn duration(at: &At<'_>) -> Option<u128> {
    let text = at.str()?;
    let us = lit::duration_us(&text);
    if us.is_none() {
        at.bad_value(&format!(
            "{text:?} is not a duration the language can hold (whole microseconds: 250ms, 1.5s, 2m)"
        ));
    }
    us
}

/// One `HTTPMatchRequest`: its condition (`None` when nothing in it is expressible) and,
/// when it matches a path prefix or an exact path, that path (for `rewrite.uri`).
fn http_match(at: &At<'_>) -> (Option<Cond>, Option<String>) {
    let Some(f) = at.fields() else {
        return (None, None);
    };
    f.skip("name");
    let mut all = Vec::new();
    let ignore_case = f
        .take("ignoreUriCase")
        .and_then(|i| i.at().bool())
        .unwrap_or(false);
    let mut prefix = None;
    if let Some(uri) = f.take("uri") {
        if ignore_case {
            if let Some(c) = string_match_ignore_case(uri.at(), "path") {
                all.push(c);
            }
        } else if let Some((c, p)) = string_match(uri.at(), "path") {
            prefix = p;
            all.push(c);
        }
    }
    if let Some(authority) = f.take("authority")
        && let Some((c, _)) = string_match(authority.at(), "host")
    {
        all.push(c);
    }
    if let Some(method) = f.take("method") {
        let m = method.at();
        if let Some(mf) = m.fields() {
            if let Some(exact) = mf.take("exact")
                && let Some(v) = exact.at().str()
                && let Some(c) = routing::method_is(&v, exact.at())
            {
                all.push(c);
            }
            mf.not_expressible("prefix", "a method is matched exactly, not by prefix");
            mf.not_expressible("regex", "a method is matched exactly, not by regex");
        }
    }
    for (key, negate) in [("headers", false), ("withoutHeaders", true)] {
        if let Some(h) = f.take(key)
            && let Some(hf) = h.at().fields()
        {
            for name in keys(h.at()) {
                let Some(value) = hf.take(&name) else {
                    continue;
                };
                if !routing::is_header_name(&name) {
                    value
                        .at()
                        .bad_value(&format!("{name:?} is not a valid header name"));
                    continue;
                }
                let subject = format!("header({})", lit::string(&name.to_ascii_lowercase()));
                if let Some(c) = presence_or_match(value.at(), &subject) {
                    all.push(if negate { Cond::Not(Box::new(c)) } else { c });
                }
            }
        }
    }
    if let Some(q) = f.take("queryParams")
        && let Some(qf) = q.at().fields()
    {
        for name in keys(q.at()) {
            let Some(value) = qf.take(&name) else {
                continue;
            };
            let subject = format!("query({})", lit::string(&name));
            if let Some(c) = presence_or_match(value.at(), &subject) {
                all.push(c);
            }
        }
    }
    for (key, why) in [
        (
            "port",
            "matching the port a request was sent to is not expressible",
        ),
        (
            "sourceLabels",
            "matching callers by labels is not expressible (the language matches `source`, a \
             service)",
        ),
        (
            "sourceNamespace",
            "matching callers by namespace is not expressible in a route",
        ),
        ("gateways", "matching by gateway is not expressible"),
        ("scheme", "matching the scheme is not expressible"),
        ("statPrefix", "stat prefixes are not expressible"),
    ] {
        f.not_expressible(key, why);
    }
    (Cond::all(all), prefix)
}

/// The keys of a mapping, in order.
pub fn keys(at: &At<'_>) -> Vec<String> {
    match &at.node.value {
        crate::yaml::Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, _)| k.scalar_text())
            .collect(),
        _ => Vec::new(),
    }
}

/// A header or query match: `{}` (or an empty prefix or regex `.*`) is presence.
fn presence_or_match(at: &At<'_>, subject: &str) -> Option<Cond> {
    let presence = match &at.node.value {
        crate::yaml::Value::Map(entries) => {
            entries.is_empty()
                || entries.iter().all(|(k, v)| {
                    let key = k.scalar_text().unwrap_or_default();
                    let value = v.scalar_text().unwrap_or_default();
                    (key == "prefix" && value.is_empty()) || (key == "regex" && value == ".*")
                })
        }
        crate::yaml::Value::Null => true,
        _ => false,
    };
    if presence {
        if let Some(f) = at.fields() {
            f.skip("prefix");
            f.skip("regex");
        }
        return Some(Cond::Atom(format!("exists {subject}")));
    }
    string_match(at, subject).map(|(c, _)| c)
}

/// An Istio `StringMatch` (`exact`, `prefix` or `regex`) on `subject`, and the path when
/// it is an exact or prefix match.
fn string_match(at: &At<'_>, subject: &str) -> Option<(Cond, Option<String>)> {
    let f = at.fields()?;
    if let Some(v) = f.take("exact") {
        let value = v.at().str()?;
        return Some((routing::compare(subject, Match::Exact, &value), Some(value)));
    }
    if let Some(v) = f.take("prefix") {
        let value = v.at().str()?;
        return Some((
            routing::compare(subject, Match::Prefix, &value),
            Some(value),
        ));
    }
    if let Some(v) = f.take("regex") {
        let value = v.at().str()?;
        return Some((routing::compare(subject, Match::Regex, &value), None));
    }
    at.bad_value("expected one of exact, prefix or regex");
    None
}

/// A `StringMatch` with `ignoreUriCase`: a case-insensitive regex.
fn string_match_ignore_case(at: &At<'_>, subject: &str) -> Option<Cond> {
    let f = at.fields()?;
    let regex = if let Some(v) = f.take("exact") {
        format!("(?i)^{}$", routing::regex_escape(&v.at().str()?))
    } else if let Some(v) = f.take("prefix") {
        format!("(?i)^{}", routing::regex_escape(&v.at().str()?))
    } else if let Some(v) = f.take("regex") {
        format!("(?i){}", routing::full_match(&v.at().str()?))
    } else {
        at.bad_value("expected one of exact, prefix or regex");
        return None;
    };
    Some(Cond::Atom(format!(
        "{subject} matches {}",
        lit::regex(&regex)
    )))
}

/// One `HTTPRouteDestination`: its reference and weight.
fn destination(at: &At<'_>, single: bool, obj: &Object<'_>) -> Option<(String, u64)> {
    let f = at.fields()?;
    let weight = match f.take("weight") {
        Some(w) if !single => {
            let w = w.at().int()?;
            u64::try_from(w).ok().or_else(|| {
                at.bad_value("a weight is not negative");
                None
            })?
        }
        _ if single => {
            f.skip("weight");
            100
        }
        _ => 0,
    };
    f.not_expressible(
        "headers",
        "header edits per destination are not expressible (the language edits per rule)",
    );
    let d = f.take("destination")?;
    let r = destination_ref(d.at(), obj)?;
    Some((r, weight))
}

/// An Istio `Destination` (`host`, `subset`, `port`) as a reference from the object's
/// namespace; the service is declared when the object is done.
pub fn destination_ref(at: &At<'_>, obj: &Object<'_>) -> Option<String> {
    let f = at.fields()?;
    let host_field = f.take("host")?;
    let host = host_field.at().str()?;
    let Some((ns, name)) = lit::service_host(&host, &obj.namespace) else {
        host_field.at().not_expressible(&format!(
            "host {host:?} is not a service of the mesh: the language routes only between its \
             own services"
        ));
        return None;
    };
    let mut port = None;
    if let Some(p) = f.take("port")
        && let Some(pf) = p.at().fields()
        && let Some(n) = pf.take("number")
    {
        port = n.at().int().and_then(|n| u16::try_from(n).ok());
    }
    obj.refs
        .services
        .borrow_mut()
        .push((ns.clone(), name.clone(), port));
    let mut r = lit::service_ref(&ns, &name, &obj.namespace);
    if let Some(s) = f.take("subset")
        && let Some(subset) = s.at().str()
    {
        obj.refs
            .subsets
            .borrow_mut()
            .push(crate::object::PendingSubset {
                ns,
                service: name,
                subset: subset.clone(),
                span: s.at().span,
                path: s.at().path.to_string(),
            });
        r = format!("{r}.{}", lit::ident(&subset));
    }
    Some(r)
}

/// `HTTPRetry` as a `retry { ... }` member. Istio counts retries, the language tries:
/// `attempts N` becomes `attempts N+1`, capped so that every try fits in the rule's
/// timeout (Istio's timeout cuts the later ones anyway).
fn retries(at: &At<'_>, timeout: Option<u128>) -> Vec<String> {
    let Some(f) = at.fields() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let retries = f
        .take("attempts")
        .and_then(|a| a.at().int())
        .unwrap_or(2)
        .max(0);
    if retries == 0 {
        for key in ["perTryTimeout", "retryOn", "backoff"] {
            f.skip(key);
        }
        return vec!["retry none".to_string()];
    }
    let mut tries = retries + 1;
    if tries > 10 {
        at.bad_value(&format!(
            "{retries} retries is more than the language allows (at most 9, `attempts 10`)"
        ));
        tries = 10;
    }
    let mut fields = Vec::new();
    let per_try = f.take("perTryTimeout").and_then(|p| duration(p.at()));
    if let (Some(per_try), Some(timeout)) = (per_try, timeout)
        && per_try > 0
        && (tries as u128) * per_try > timeout
    {
        let fit = (timeout / per_try).max(1);
        out.push(format!(
            "// Istio: {retries} retries; only {fit} tries of {} fit in the {} timeout",
            lit::duration(per_try),
            lit::duration(timeout)
        ));
        tries = fit as i128;
    }
    fields.push(format!("attempts {tries}"));
    if let Some(p) = per_try.filter(|p| *p > 0) {
        fields.push(format!("per_try_timeout {}", lit::duration(p)));
    }
    if let Some(on) = f.take("retryOn")
        && let Some(text) = on.at().str()
    {
        let conditions = retry_on(&text, on.at());
        fields.push(format!("on [{}]", conditions.join(", ")));
    }
    let backoff = f
        .take("backoff")
        .and_then(|b| duration(b.at()))
        .unwrap_or(25_000);
    // Envoy's default base interval is 25ms and its maximum ten times the base.
    fields.push(format!(
        "backoff {}..{}",
        lit::duration(backoff),
        lit::duration(backoff * 10)
    ));
    if let Some(r) = f.take("retryRemoteLocalities")
        && r.at().bool() == Some(true)
    {
        r.at()
            .not_expressible("the language has no localities to retry in");
    }
    f.not_expressible(
        "retryIgnorePreviousHosts",
        "retries always prefer another endpoint in the language",
    );
    out.push(format!("retry {{ {} }}", fields.join("  ")));
    out
}

/// Istio's `retryOn` list in the language's words.
fn retry_on(text: &str, at: &At<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let mapped = match word {
            "5xx" => Some("5xx".to_string()),
            "gateway-error" => Some("gateway_error".to_string()),
            "reset" => Some("reset".to_string()),
            "connect-failure" => Some("connect_failure".to_string()),
            "refused-stream" => Some("refused_stream".to_string()),
            "retriable-4xx" => Some("409".to_string()),
            // Only switches on the status codes listed beside it, which are mapped.
            "retriable-status-codes" => None,
            w if w.parse::<u16>().is_ok_and(|s| (100..=599).contains(&s)) => Some(w.to_string()),
            "cancelled"
            | "deadline-exceeded"
            | "internal"
            | "resource-exhausted"
            | "unavailable"
            | "envoy-ratelimited"
            | "retriable-headers"
            | "reset-before-request"
            | "http3-post-connect-failure" => {
                at.not_expressible(&format!(
                    "retry condition {word:?} is not expressible (the language retries on \
                     statuses, resets and connection failures)"
                ));
                None
            }
            other => {
                at.bad_value(&format!("{other:?} is not a retry condition Istio knows"));
                None
            }
        };
        if let Some(m) = mapped
            && !out.contains(&m)
        {
            out.push(m);
        }
    }
    out
}

/// `HTTPFaultInjection` as a `fault { ... }` member. A fault without `percentage` applies
/// to no request, as in Istio.
fn fault_block(at: &At<'_>) -> Vec<String> {
    let Some(f) = at.fields() else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    if let Some(d) = f.take("delay")
        && let Some(df) = d.at().fields()
    {
        let delay = df.take("fixedDelay").and_then(|x| duration(x.at()));
        df.not_expressible(
            "exponentialDelay",
            "exponential delays are not expressible (the language delays by a fixed time)",
        );
        let percent = fault_percent(&df);
        if let Some(delay) = delay {
            parts.push(format!("delay {} {percent}", lit::duration(delay)));
        }
    }
    if let Some(a) = f.take("abort")
        && let Some(af) = a.at().fields()
    {
        let status = af.take("httpStatus").and_then(|s| {
            let v = s.at().int()?;
            if (100..=599).contains(&v) {
                Some(v)
            } else {
                s.at().bad_value("an HTTP status is 100–599");
                None
            }
        });
        af.not_expressible(
            "grpcStatus",
            "aborting with a gRPC status is not expressible (the language aborts with an HTTP status)",
        );
        af.not_expressible(
            "http2Error",
            "aborting with an HTTP/2 error is not expressible",
        );
        let percent = fault_percent(&af);
        if let Some(status) = status {
            parts.push(format!("abort {status} {percent}"));
        }
    }
    if parts.is_empty() {
        return Vec::new();
    }
    vec![format!("fault {{ {} }}", parts.join("  "))]
}

/// `percentage: {value: P}` (or the deprecated integer `percent`); 0% when absent.
fn fault_percent(f: &Fields<'_>) -> String {
    if let Some(p) = f.take("percentage") {
        return percentage(p.at()).unwrap_or_else(|| "0%".to_string());
    }
    if let Some(p) = f.take("percent") {
        return p
            .at()
            .int()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v <= 100)
            .map_or_else(|| "0%".to_string(), |v| format!("{v}%"));
    }
    "0%".to_string()
}

/// Istio's `Percent` message (`{value: 12.5}`) as the language's percent.
fn percentage(at: &At<'_>) -> Option<String> {
    let f = at.fields()?;
    let v = f.take("value")?;
    let value = v.at().number()?;
    match lit::percent_from(value) {
        Some(milli) => Some(lit::percent_milli(milli)),
        None => {
            v.at()
                .bad_value("a percent is 0–100 with at most three decimals");
            None
        }
    }
}

/// `mirror` with `mirrorPercentage` (or `mirrorPercent`), and `mirrors[]`.
fn mirrors(f: &Fields<'_>, obj: &Object<'_>, members: &mut Vec<String>) {
    let percent = f
        .take("mirrorPercentage")
        .and_then(|p| percentage(p.at()))
        .or_else(|| {
            let p = f.take("mirrorPercent")?;
            let v = p.at().int()?;
            Some(format!("{v}%"))
        });
    if let Some(m) = f.take("mirror")
        && let Some(r) = destination_ref(m.at(), obj)
    {
        members.push(mirror_line(&r, percent.as_deref()));
    }
    if let Some(list) = f.take("mirrors") {
        for item in list.at().items() {
            let Some(mf) = item.at().fields() else {
                continue;
            };
            let percent = mf.take("percentage").and_then(|p| percentage(p.at()));
            if let Some(d) = mf.take("destination")
                && let Some(r) = destination_ref(d.at(), obj)
            {
                members.push(mirror_line(&r, percent.as_deref()));
            }
        }
    }
}

fn mirror_line(r: &str, percent: Option<&str>) -> String {
    match percent {
        Some(p) if p != "100%" => format!("mirror {r} {p}"),
        _ => format!("mirror {r}"),
    }
}

/// `headers.request.{set,remove}`; `add` and response edits are not expressible.
fn headers(at: &At<'_>) -> Vec<String> {
    let Some(f) = at.fields() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(req) = f.take("request")
        && let Some(rf) = req.at().fields()
    {
        if let Some(set) = rf.take("set") {
            for (k, v) in set.at().string_map() {
                if routing::is_header_name(&k) {
                    out.push(format!(
                        "set_header {} {}",
                        lit::string(&k),
                        lit::string(&v)
                    ));
                } else {
                    set.at()
                        .bad_value(&format!("{k:?} is not a valid header name"));
                }
            }
        }
        rf.not_expressible(
            "add",
            "appending to a header is not expressible (the language's `set_header` replaces it)",
        );
        if let Some(remove) = rf.take("remove") {
            for (k, item) in remove.at().strings() {
                if routing::is_header_name(&k) {
                    out.push(format!("remove_header {}", lit::string(&k)));
                } else {
                    item.at()
                        .bad_value(&format!("{k:?} is not a valid header name"));
                }
            }
        }
    }
    f.not_expressible("response", "response header edits are not expressible");
    out
}

/// `rewrite.uri` as `rewrite_prefix` when every match of the rule names the same path
/// prefix (or exact path); other rewrites are not expressible.
fn rewrite(at: &At<'_>, prefixes: &[Option<String>]) -> Vec<String> {
    let Some(f) = at.fields() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(uri) = f.take("uri")
        && let Some(to) = uri.at().str()
    {
        let from = prefixes.first().cloned().flatten();
        match from {
            Some(from)
                if prefixes.iter().all(|p| p.as_deref() == Some(from.as_str()))
                    && from.starts_with('/')
                    && to.starts_with('/') =>
            {
                out.push(format!(
                    "rewrite_prefix {} {}",
                    lit::string(&from),
                    lit::string(&to)
                ));
            }
            _ => uri.at().not_expressible(
                "a URI rewrite is expressible only as `rewrite_prefix`, for a rule whose \
                 matches all name the same path prefix",
            ),
        }
    }
    f.not_expressible("authority", "rewriting the authority is not expressible");
    f.not_expressible("uriRegexRewrite", "regex rewrites are not expressible");
    out
}
