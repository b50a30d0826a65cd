//! Gateway API HTTPRoute and GRPCRoute attached to a Service (the GAMMA mesh profile) →
//! `route`. The API orders matches by specificity, not by position, so every
//! (rule, match) pair of every route of a service is sorted by the API's precedence
//! first; consecutive pairs of one API rule then become one rule of the language.

use crate::fields::{At, Fields};
use crate::lit;
use crate::model::{Cond, Dest, Mesh, Rule};
use crate::object::Object;
use crate::routing::{self, Match};
use crate::virtual_service::duration;

/// One match of one rule, with everything the rule says, waiting to be ordered.
pub struct Pending {
    /// The service routed (namespace, name).
    service: (String, String),
    /// Precedence: smaller sorts first.
    key: (u8, i64, u8, i64, i64),
    /// Input order of the route, the rule and the match.
    order: (usize, usize, usize),
    /// The rule's name, before making it unique.
    name: String,
    /// `HTTPRoute x (ns) spec.rules[0]`.
    comment: String,
    /// The match's condition (none: every request).
    when: Option<Cond>,
    /// The rule's destination, written from the route's namespace.
    dest: Dest,
    /// The rule's other members.
    members: Vec<String>,
}

/// Which of the two route kinds is being read.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    Http,
    Grpc,
}

impl Api {
    fn protocol(self) -> &'static str {
        match self {
            Api::Http => "http",
            Api::Grpc => "grpc",
        }
    }
}

/// Collects the rules of one HTTPRoute.
pub fn collect_http(obj: &Object<'_>, index: usize, mesh: &mut Mesh, out: &mut Vec<Pending>) {
    collect(obj, index, mesh, out, Api::Http);
}

/// Collects the rules of one GRPCRoute.
pub fn collect_grpc(obj: &Object<'_>, index: usize, mesh: &mut Mesh, out: &mut Vec<Pending>) {
    collect(obj, index, mesh, out, Api::Grpc);
}

fn collect(obj: &Object<'_>, index: usize, mesh: &mut Mesh, out: &mut Vec<Pending>, api: Api) {
    let spec = obj.spec();
    let Some(f) = spec.fields() else { return };
    let parents = parents(&f, obj, mesh, api);
    f.not_expressible(
        "hostnames",
        "a route of a service applies to every name it is called by; hostnames are not \
         expressible",
    );
    let Some(rules) = f.take("rules") else { return };
    for (i, item) in rules.at().items().iter().enumerate() {
        let at = item.at();
        let Some(rf) = at.fields() else { continue };
        let name = rf.str("name").map_or_else(
            || format!("{}-{i}", lit::ident(&obj.name)),
            |n| lit::ident(&n),
        );
        let matches = match api {
            Api::Http => http_matches(&rf),
            Api::Grpc => grpc_matches(&rf),
        };
        let prefixes: Vec<Option<String>> = matches.iter().map(|m| m.prefix.clone()).collect();
        let mut members = Vec::new();
        if let Some(filters) = rf.take("filters") {
            for filter in filters.at().items() {
                members.extend(rule_filter(filter.at(), obj, &prefixes, mesh, api));
            }
        }
        if api == Api::Http {
            members.extend(timeouts_and_retry(&rf));
        }
        let dest = backends(&rf, obj, mesh, api);
        rf.not_expressible(
            "sessionPersistence",
            "session persistence is not expressible",
        );
        drop(rf);
        let Some(dest) = dest else {
            at.not_expressible(
                "a rule without a backend that receives traffic answers 500: not expressible, \
                 so the rule is not imported",
            );
            continue;
        };
        for (ns, service) in &parents {
            for (j, m) in matches.iter().enumerate() {
                out.push(Pending {
                    service: (ns.clone(), service.clone()),
                    key: m.key,
                    order: (index, i, j),
                    name: name.clone(),
                    comment: format!("{} {}", obj.ctx.object, at.path),
                    when: m.cond.clone(),
                    dest: rebase(&dest, &obj.namespace, ns),
                    members: members.clone(),
                });
            }
        }
    }
}

fn rebase(dest: &Dest, from: &str, to: &str) -> Dest {
    let fix = |r: &String| {
        if from == to || r.contains('/') {
            r.clone()
        } else {
            format!("{from}/{r}")
        }
    };
    match dest {
        Dest::To(r) => Dest::To(fix(r)),
        Dest::Split(parts) => Dest::Split(parts.iter().map(|(r, p)| (fix(r), p.clone())).collect()),
    }
}

/// The Services the route is attached to; Gateways are reported.
fn parents(f: &Fields<'_>, obj: &Object<'_>, mesh: &mut Mesh, api: Api) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(refs) = f.take("parentRefs") else {
        return out;
    };
    for item in refs.at().items() {
        let at = item.at();
        let Some(pf) = at.fields() else { continue };
        let group = pf.str("group").unwrap_or_default();
        let kind = pf.str("kind").unwrap_or_else(|| "Gateway".to_string());
        let name = pf.str("name").unwrap_or_default();
        let ns = pf.str("namespace").unwrap_or_else(|| obj.namespace.clone());
        let port = pf
            .take("port")
            .and_then(|p| p.at().int())
            .and_then(|p| u16::try_from(p).ok());
        pf.not_expressible(
            "sectionName",
            "a route for one named port is not expressible: routes are per service",
        );
        if kind != "Service" || !(group.is_empty() || group == "core") {
            at.not_expressible(&format!(
                "routes of a {kind} (ingress) are not imported: only routes attached to a \
                 Service (the GAMMA mesh profile) are (write a `gateway` block for the ingress)"
            ));
            continue;
        }
        if !lit::is_ident(&name) {
            at.bad_value(&format!("{name:?} is not a service name"));
            continue;
        }
        let why = format!("a parent of {}", obj.ctx.object);
        let service = mesh.service(&ns, &name, &crate::declared(&why));
        if let Some(port) = port {
            service.ports.entry(port).or_insert(api.protocol());
        }
        out.push((ns, name));
    }
    out
}

/// One match: its condition, its precedence and its path prefix (for rewrites).
struct MatchOf {
    cond: Option<Cond>,
    key: (u8, i64, u8, i64, i64),
    prefix: Option<String>,
}

fn count(len: usize) -> i64 {
    -(i64::try_from(len).unwrap_or(i64::MAX))
}

fn http_matches(rf: &Fields<'_>) -> Vec<MatchOf> {
    let Some(m) = rf.take("matches") else {
        return vec![MatchOf {
            cond: None,
            key: (1, -1, 1, 0, 0),
            prefix: Some("/".to_string()),
        }];
    };
    let items = m.at().items();
    if items.is_empty() {
        return vec![MatchOf {
            cond: None,
            key: (1, -1, 1, 0, 0),
            prefix: Some("/".to_string()),
        }];
    }
    items
        .iter()
        .map(|item| {
            let at = item.at();
            let mut all = Vec::new();
            let mut key = (1u8, -1i64, 1u8, 0i64, 0i64);
            let mut prefix = Some("/".to_string());
            if let Some(mf) = at.fields() {
                if let Some(p) = mf.take("path")
                    && let Some(pf) = p.at().fields()
                {
                    let kind = pf.str("type").unwrap_or_else(|| "PathPrefix".to_string());
                    let value = pf.str("value").unwrap_or_else(|| "/".to_string());
                    match kind.as_str() {
                        "Exact" => {
                            all.push(routing::compare("path", Match::Exact, &value));
                            key.0 = 0;
                            key.1 = count(value.len());
                            prefix = Some(value);
                        }
                        "PathPrefix" => {
                            let trimmed = if value.len() > 1 {
                                value.trim_end_matches('/').to_string()
                            } else {
                                value.clone()
                            };
                            if trimmed != "/" {
                                all.push(Cond::Or(vec![
                                    routing::compare("path", Match::Exact, &trimmed),
                                    routing::compare("path", Match::Prefix, &format!("{trimmed}/")),
                                ]));
                            }
                            key.1 = count(trimmed.len());
                            prefix = Some(value);
                        }
                        "RegularExpression" => {
                            all.push(routing::compare("path", Match::Regex, &value));
                            key.0 = 2;
                            key.1 = 0;
                            prefix = None;
                        }
                        other => {
                            p.at()
                                .bad_value(&format!("{other:?} is not a path match type"));
                        }
                    }
                }
                if let Some(method) = mf.take("method")
                    && let Some(v) = method.at().str()
                    && let Some(c) = routing::method_is(&v, method.at())
                {
                    all.push(c);
                    key.2 = 0;
                }
                let headers = name_value_matches(&mf, "headers", |n| {
                    format!("header({})", lit::string(&n.to_ascii_lowercase()))
                });
                key.3 = count(headers.len());
                all.extend(headers);
                let queries = name_value_matches(&mf, "queryParams", |n| {
                    format!("query({})", lit::string(n))
                });
                key.4 = count(queries.len());
                all.extend(queries);
            }
            MatchOf {
                cond: Cond::all(all),
                key,
                prefix,
            }
        })
        .collect()
}

/// `headers` or `queryParams`: `{type, name, value}` entries.
fn name_value_matches(mf: &Fields<'_>, key: &str, subject: impl Fn(&str) -> String) -> Vec<Cond> {
    let Some(list) = mf.take(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.at().items() {
        let Some(f) = item.at().fields() else {
            continue;
        };
        let kind = f.str("type").unwrap_or_else(|| "Exact".to_string());
        let (Some(name), Some(value)) = (f.str("name"), f.str("value")) else {
            item.at().bad_value("a match needs a name and a value");
            continue;
        };
        if key == "headers" && !routing::is_header_name(&name) {
            item.at()
                .bad_value(&format!("{name:?} is not a valid header name"));
            continue;
        }
        match kind.as_str() {
            "Exact" => out.push(routing::compare(&subject(&name), Match::Exact, &value)),
            "RegularExpression" => {
                out.push(routing::compare(&subject(&name), Match::Regex, &value));
            }
            other => item
                .at()
                .bad_value(&format!("{other:?} is not a match type")),
        }
    }
    out
}

fn grpc_matches(rf: &Fields<'_>) -> Vec<MatchOf> {
    let all_requests = || MatchOf {
        cond: None,
        key: (1, 0, 1, 0, 0),
        prefix: None,
    };
    let Some(m) = rf.take("matches") else {
        return vec![all_requests()];
    };
    let items = m.at().items();
    if items.is_empty() {
        return vec![all_requests()];
    }
    items
        .iter()
        .map(|item| {
            let at = item.at();
            let mut all = Vec::new();
            let mut key = (1u8, 0i64, 1u8, 0i64, 0i64);
            if let Some(mf) = at.fields() {
                if let Some(method) = mf.take("method")
                    && let Some(f) = method.at().fields()
                {
                    let kind = f.str("type").unwrap_or_else(|| "Exact".to_string());
                    let service = f.str("service");
                    let name = f.str("method");
                    key.1 = count(service.as_ref().map_or(0, String::len));
                    key.3 = count(name.as_ref().map_or(0, String::len));
                    match (kind.as_str(), service, name) {
                        (_, None, None) => {
                            method
                                .at()
                                .bad_value("a method match needs a service or a method");
                        }
                        ("Exact", Some(s), Some(m)) => {
                            all.push(routing::compare("path", Match::Exact, &format!("/{s}/{m}")));
                        }
                        ("Exact", Some(s), None) => {
                            all.push(routing::compare("path", Match::Prefix, &format!("/{s}/")));
                        }
                        ("Exact", None, Some(m)) => all.push(routing::compare(
                            "path",
                            Match::Regex,
                            &format!("/[^/]+/{}", routing::regex_escape(&m)),
                        )),
                        ("RegularExpression", s, m) => {
                            let part = |p: Option<String>| p.unwrap_or_else(|| "[^/]+".to_string());
                            all.push(routing::compare(
                                "path",
                                Match::Regex,
                                &format!("/(?:{})/(?:{})", part(s), part(m)),
                            ));
                        }
                        (other, _, _) => {
                            method
                                .at()
                                .bad_value(&format!("{other:?} is not a method match type"));
                        }
                    }
                }
                let headers = name_value_matches(&mf, "headers", |n| {
                    format!("header({})", lit::string(&n.to_ascii_lowercase()))
                });
                key.4 = count(headers.len());
                all.extend(headers);
            }
            MatchOf {
                cond: Cond::all(all),
                key,
                prefix: None,
            }
        })
        .collect()
}

fn backends(rf: &Fields<'_>, obj: &Object<'_>, mesh: &mut Mesh, api: Api) -> Option<Dest> {
    let list = rf.take("backendRefs")?;
    let mut weighted = Vec::new();
    for item in list.at().items() {
        let Some(bf) = item.at().fields() else {
            continue;
        };
        let weight = bf
            .take("weight")
            .and_then(|w| w.at().int())
            .and_then(|w| u64::try_from(w).ok())
            .unwrap_or(1);
        bf.not_expressible(
            "filters",
            "filters per backend are not expressible (the language edits per rule)",
        );
        if let Some(r) = backend_ref(&bf, item.at(), obj, mesh, api) {
            weighted.push((r, weight));
        }
    }
    routing::destination(&weighted)
}

/// A `BackendObjectReference` to a Service, declared in `mesh`, as a reference.
fn backend_ref(
    f: &Fields<'_>,
    at: &At<'_>,
    obj: &Object<'_>,
    mesh: &mut Mesh,
    api: Api,
) -> Option<String> {
    let group = f.str("group").unwrap_or_default();
    let kind = f.str("kind").unwrap_or_else(|| "Service".to_string());
    let name = f.str("name").unwrap_or_default();
    let ns = f.str("namespace").unwrap_or_else(|| obj.namespace.clone());
    let port = f
        .take("port")
        .and_then(|p| p.at().int())
        .and_then(|p| u16::try_from(p).ok());
    if kind != "Service" || !(group.is_empty() || group == "core") {
        at.not_expressible(&format!(
            "only Services are expressible as backends, not a {kind}"
        ));
        return None;
    }
    if !lit::is_ident(&name) {
        at.bad_value(&format!("{name:?} is not a service name"));
        return None;
    }
    let why = format!("a backend of {}", obj.ctx.object);
    let service = mesh.service(&ns, &name, &crate::declared(&why));
    if let Some(port) = port {
        service.ports.entry(port).or_insert(api.protocol());
    }
    Some(lit::service_ref(&ns, &name, &obj.namespace))
}

fn rule_filter(
    at: &At<'_>,
    obj: &Object<'_>,
    prefixes: &[Option<String>],
    mesh: &mut Mesh,
    api: Api,
) -> Vec<String> {
    let Some(f) = at.fields() else {
        return Vec::new();
    };
    let kind = f.str("type").unwrap_or_default();
    let mut out = Vec::new();
    match kind.as_str() {
        "RequestHeaderModifier" => {
            if let Some(m) = f.take("requestHeaderModifier")
                && let Some(mf) = m.at().fields()
            {
                if let Some(set) = mf.take("set") {
                    for item in set.at().items() {
                        let Some(hf) = item.at().fields() else {
                            continue;
                        };
                        if let (Some(n), Some(v)) = (hf.str("name"), hf.str("value")) {
                            if routing::is_header_name(&n) {
                                out.push(format!(
                                    "set_header {} {}",
                                    lit::string(&n),
                                    lit::string(&v)
                                ));
                            } else {
                                item.at()
                                    .bad_value(&format!("{n:?} is not a valid header name"));
                            }
                        }
                    }
                }
                mf.not_expressible(
                    "add",
                    "appending to a header is not expressible (the language's `set_header` \
                     replaces it)",
                );
                if let Some(remove) = mf.take("remove") {
                    for (n, item) in remove.at().strings() {
                        if routing::is_header_name(&n) {
                            out.push(format!("remove_header {}", lit::string(&n)));
                        } else {
                            item.at()
                                .bad_value(&format!("{n:?} is not a valid header name"));
                        }
                    }
                }
            }
        }
        "RequestMirror" => {
            if let Some(m) = f.take("requestMirror")
                && let Some(mf) = m.at().fields()
            {
                let percent = mirror_percent(&mf);
                if let Some(b) = mf.take("backendRef")
                    && let Some(bf) = b.at().fields()
                    && let Some(r) = backend_ref(&bf, b.at(), obj, mesh, api)
                {
                    out.push(match percent {
                        Some(p) if p != "100%" => format!("mirror {r} {p}"),
                        _ => format!("mirror {r}"),
                    });
                }
            }
        }
        "URLRewrite" => {
            if let Some(m) = f.take("urlRewrite")
                && let Some(mf) = m.at().fields()
            {
                mf.not_expressible("hostname", "rewriting the host is not expressible");
                if let Some(p) = mf.take("path")
                    && let Some(pf) = p.at().fields()
                {
                    let kind = pf.str("type").unwrap_or_default();
                    let to = pf.take("replacePrefixMatch").and_then(|v| v.at().str());
                    pf.not_expressible(
                        "replaceFullPath",
                        "replacing the whole path is not expressible",
                    );
                    let from = prefixes.first().cloned().flatten();
                    match (kind.as_str(), from, to) {
                        ("ReplacePrefixMatch", Some(from), Some(to))
                            if prefixes.iter().all(|x| x.as_deref() == Some(from.as_str())) =>
                        {
                            // The API replaces whole path elements: `/v1` by `/` makes
                            // `/v1/x` `/x`, which a plain prefix rewrite of `/v1/` does.
                            let trimmed = from.trim_end_matches('/');
                            let from = if to.ends_with('/') {
                                format!("{trimmed}/")
                            } else if trimmed.is_empty() {
                                "/".to_string()
                            } else {
                                trimmed.to_string()
                            };
                            out.push(format!(
                                "rewrite_prefix {} {}",
                                lit::string(&from),
                                lit::string(&to)
                            ));
                        }
                        ("ReplaceFullPath", _, _) => {}
                        _ => p.at().not_expressible(
                            "a path rewrite is expressible only as a prefix rewrite of a rule \
                             whose matches all name the same path prefix",
                        ),
                    }
                }
            }
        }
        other => {
            let key = match other {
                "ResponseHeaderModifier" => "responseHeaderModifier",
                "RequestRedirect" => "requestRedirect",
                "ExtensionRef" => "extensionRef",
                "CORS" => "cors",
                _ => "",
            };
            f.skip(key);
            at.not_expressible(&format!("filter {other} is not expressible"));
        }
    }
    out
}

/// `percent` or `fraction {numerator, denominator}` of a mirror.
fn mirror_percent(f: &Fields<'_>) -> Option<String> {
    if let Some(p) = f.take("percent") {
        let v = p.at().int()?;
        return u64::try_from(v)
            .ok()
            .filter(|v| *v <= 100)
            .map(|v| format!("{v}%"));
    }
    let fr = f.take("fraction")?;
    let ff = fr.at().fields()?;
    let numerator = ff.take("numerator").and_then(|n| n.at().int())?;
    let denominator = ff
        .take("denominator")
        .and_then(|d| d.at().int())
        .unwrap_or(100);
    if denominator <= 0 || numerator < 0 || numerator > denominator {
        fr.at().bad_value("a fraction is between 0 and 1");
        return None;
    }
    let milli = u64::try_from(numerator * 100_000 / denominator).ok()?;
    Some(lit::percent_milli(milli))
}

/// `timeouts` and the experimental `retry` of an HTTPRoute rule.
fn timeouts_and_retry(rf: &Fields<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut per_try = None;
    let mut request = None;
    if let Some(t) = rf.take("timeouts")
        && let Some(tf) = t.at().fields()
    {
        request = tf
            .take("request")
            .and_then(|r| duration(r.at()))
            .filter(|d| *d > 0);
        per_try = tf
            .take("backendRequest")
            .and_then(|r| duration(r.at()))
            .filter(|d| *d > 0);
    }
    if let Some(r) = request {
        out.push(format!("timeout {}", lit::duration(r)));
    }
    let mut fields = Vec::new();
    let mut tries = 1;
    if let Some(r) = rf.take("retry")
        && let Some(f) = r.at().fields()
    {
        let retries = f
            .take("attempts")
            .and_then(|a| a.at().int())
            .unwrap_or(0)
            .max(0);
        tries = (retries + 1).min(10);
        if retries > 9 {
            r.at().bad_value("at most 9 retries are expressible");
        }
        if let Some(codes) = f.take("codes") {
            let list: Vec<String> = codes
                .at()
                .items()
                .iter()
                .filter_map(|c| c.at().int())
                .filter(|c| (100..=599).contains(c))
                .map(|c| c.to_string())
                .collect();
            fields.push(format!("on [{}]", list.join(", ")));
        }
        if let Some(b) = f.take("backoff").and_then(|b| duration(b.at()))
            && b > 0
        {
            fields.push(format!(
                "backoff {}..{}",
                lit::duration(b),
                lit::duration(b * 10)
            ));
        }
    }
    if let (Some(p), Some(r)) = (per_try, request)
        && tries as u128 * p > r
    {
        tries = (r / p).max(1) as i128;
    }
    if tries > 1 || per_try.is_some() {
        let mut all = vec![format!("attempts {tries}")];
        if let Some(p) = per_try {
            all.push(format!("per_try_timeout {}", lit::duration(p)));
        }
        all.extend(fields);
        out.push(format!("retry {{ {} }}", all.join("  ")));
    }
    out
}

/// Orders the collected rules by the API's precedence and adds them to their routes.
pub fn finish(mesh: &mut Mesh, mut pending: Vec<Pending>) {
    pending.sort_by(|a, b| {
        a.service
            .cmp(&b.service)
            .then(a.key.cmp(&b.key))
            .then(a.order.cmp(&b.order))
    });
    let mut i = 0;
    while i < pending.len() {
        let Some(first) = pending.get(i) else { break };
        let service = first.service.clone();
        let mut rules: Vec<Rule> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        while let Some(p) = pending.get(i).filter(|p| p.service == service) {
            let source = p
                .comment
                .split(" spec.")
                .next()
                .unwrap_or_default()
                .to_string();
            if !sources.contains(&source) {
                sources.push(source);
            }
            let same_rule = rules.last().is_some_and(|r: &Rule| {
                r.comment == p.comment && r.dest == p.dest && r.members == p.members
            });
            match (same_rule, rules.last_mut()) {
                (true, Some(last)) => {
                    last.when = match (last.when.take(), p.when.clone()) {
                        (Some(a), Some(b)) => Some(Cond::Or(vec![a, b])),
                        _ => None,
                    };
                }
                _ => rules.push(Rule {
                    name: p.name.clone(),
                    comment: p.comment.clone(),
                    when: p.when.clone(),
                    dest: p.dest.clone(),
                    members: p.members.clone(),
                }),
            }
            i += 1;
        }
        for (n, source) in sources.iter().enumerate() {
            let rules = if n == 0 {
                std::mem::take(&mut rules)
            } else {
                Vec::new()
            };
            routing::add_rules(mesh, &service.0, &service.1, source, rules);
        }
    }
}
