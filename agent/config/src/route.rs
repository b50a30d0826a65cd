//! Routing: which rule of an outbound service matches a request, and where the request
//! goes. `meshc test`, `meshc explain` and the agent all call [`Config::route`].

use std::borrow::Cow;

use crate::config::{Config, METHODS, Matcher, TextTest};
use crate::request::RequestView;
use crate::schema::{
    Attr, Backend, FULL_WEIGHT, OutboundService, Retry, RouteRule, WeightedBackend,
};

/// What to do with a request to an outbound service.
#[derive(Clone, Copy, Debug)]
pub struct RouteDecision<'c> {
    /// The service called.
    pub service: &'c OutboundService,
    /// The rule that matched; `None` sends the request to the whole service.
    pub rule: Option<&'c RouteRule>,
    /// The candidate backends with their weights.
    pub backends: &'c [WeightedBackend],
    /// The backend picked by the draw.
    pub backend: &'c Backend,
    /// Timeout of the whole request, retries included.
    pub timeout_us: Option<u64>,
    /// The retry policy in force.
    pub retry: Option<&'c Retry>,
    /// Where the decision sits in the config, to look it up again with [`Config::resolve`]
    /// (a request that outlives a borrow of its config keeps the key, not the references).
    pub key: RouteKey,
}

/// A routing decision as indexes into its config: the outbound service, the rule that
/// matched (`None`: none did) and the picked backend among the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteKey {
    /// The outbound service's index.
    pub service: usize,
    /// The matching rule's index.
    pub rule: Option<usize>,
    /// The picked backend's index among the candidates.
    pub backend: usize,
    /// `Some(h)`: `rule` is a rule of the gateway's host entry `h`
    /// (`gateway.hosts[h].rules`), not of the service, and `service` is the picked
    /// backend's.
    pub host: Option<usize>,
}

impl Config {
    /// Routes `request` to the outbound service at `service`. `draw` in
    /// `0..FULL_WEIGHT` picks the split backend (uniform draws give the configured
    /// weights). `None` when `service` is out of range.
    pub fn route<R: RequestView + ?Sized>(
        &self,
        service: usize,
        request: &R,
        draw: u32,
    ) -> Option<RouteDecision<'_>> {
        let compiled = self.compiled(service)?;
        let index = compiled
            .rules
            .iter()
            .position(|when| when.as_ref().is_none_or(|m| m.eval(request)));
        self.decide(service, index, draw)
    }

    /// Routes a new opaque TCP connection to the outbound service at `service`: the first
    /// rule whose condition holds whatever the request (no condition, or one decided by
    /// `source`) picks the backends; a rule whose outcome depends on the method, path,
    /// host, headers or query is for HTTP only. `draw` picks the split backend, once per
    /// connection.
    pub fn route_connection(&self, service: usize, draw: u32) -> Option<RouteDecision<'_>> {
        let compiled = self.compiled(service)?;
        let index = compiled.rules.iter().position(|when| match when {
            None => true,
            Some(matcher) => matcher.constant() == Some(true),
        });
        let decision = self.decide(service, index, draw)?;
        // Connections are never retried, and the request timeout is HTTP's.
        Some(RouteDecision {
            timeout_us: None,
            retry: None,
            ..decision
        })
    }

    /// The decision once rule `index` (`None`: no rule) of the service at `service`
    /// matched: its backends (or the whole service), the draw's pick, timeout and retry.
    fn decide(&self, service: usize, index: Option<usize>, draw: u32) -> Option<RouteDecision<'_>> {
        let backends = self.candidates(service, index)?;
        self.resolve(RouteKey {
            service,
            rule: index,
            backend: pick(backends, draw)?,
            host: None,
        })
    }

    /// The candidate backends of rule `index` (`None`: no rule) of the service at `service`.
    fn candidates(&self, service: usize, index: Option<usize>) -> Option<&[WeightedBackend]> {
        match index {
            Some(i) => Some(&self.outbound(service)?.rules.get(i)?.backends),
            None => Some(&self.compiled(service)?.fallback),
        }
    }

    /// The decision `key` names, as [`Config::route`] made it. `None` when `key` is not
    /// from this config.
    pub fn resolve(&self, key: RouteKey) -> Option<RouteDecision<'_>> {
        let source = self.outbound(key.service)?;
        let (rule, backends) = match key.host {
            Some(host) => {
                let rule = self.gateway()?.hosts.get(host)?.rules.get(key.rule?)?;
                (Some(rule), rule.backends.as_slice())
            }
            None => {
                let rule = match key.rule {
                    Some(i) => Some(source.rules.get(i)?),
                    None => None,
                };
                (rule, self.candidates(key.service, key.rule)?)
            }
        };
        let backend = &backends.get(key.backend)?.backend;
        if key.host.is_some() && backend.service != source.service {
            return None;
        }
        Some(RouteDecision {
            service: source,
            rule,
            backends,
            backend,
            timeout_us: rule.and_then(|r| r.timeout_us).or(source.timeout_us),
            retry: rule
                .and_then(|r| r.retry.as_ref())
                .or(source.retry.as_ref()),
            key,
        })
    }

    /// Whether each rule of the service at `service` matches `request`, in order (for
    /// explanations: why earlier rules did not match).
    pub fn rule_matches<R: RequestView + ?Sized>(&self, service: usize, request: &R) -> Vec<bool> {
        self.compiled(service)
            .map(|c| {
                c.rules
                    .iter()
                    .map(|m| m.as_ref().is_none_or(|m| m.eval(request)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The index of the backend whose cumulative weight range holds `draw`.
pub(crate) fn pick(backends: &[WeightedBackend], draw: u32) -> Option<usize> {
    let draw = draw % FULL_WEIGHT;
    let mut upper = 0u32;
    for (index, weighted) in backends.iter().enumerate() {
        upper = upper.saturating_add(weighted.weight_milli);
        if draw < upper {
            return Some(index);
        }
    }
    backends.len().checked_sub(1)
}

fn text<'r, R: RequestView + ?Sized>(request: &'r R, attr: &Attr) -> Cow<'r, str> {
    match attr {
        Attr::Path => Cow::Borrowed(request.path()),
        Attr::Host => Cow::Borrowed(request.host()),
        Attr::Header(name) => Cow::Borrowed(request.header(name).unwrap_or_default()),
        Attr::Query(name) => request.query_param(name).unwrap_or_default(),
    }
}

impl Matcher {
    /// The value of a condition whatever the request: `Some` when it is decided without
    /// reading the method, path, host, headers or query (by `source` alone, or because
    /// a decided part settles it), `None` when it depends on the request.
    pub(crate) fn constant(&self) -> Option<bool> {
        match self {
            Matcher::All(items) => {
                let values: Vec<Option<bool>> = items.iter().map(Matcher::constant).collect();
                if values.contains(&Some(false)) {
                    Some(false)
                } else {
                    values.iter().all(Option::is_some).then_some(true)
                }
            }
            Matcher::Any(items) => {
                let values: Vec<Option<bool>> = items.iter().map(Matcher::constant).collect();
                if values.contains(&Some(true)) {
                    Some(true)
                } else {
                    values.iter().all(Option::is_some).then_some(false)
                }
            }
            Matcher::Not(inner) => inner.constant().map(|value| !value),
            Matcher::Const(value) => Some(*value),
            Matcher::Method { .. }
            | Matcher::Text { .. }
            | Matcher::TextIn { .. }
            | Matcher::Exists(_)
            | Matcher::Caller { .. } => None,
        }
    }

    pub(crate) fn eval<R: RequestView + ?Sized>(&self, request: &R) -> bool {
        self.eval_for(request, None)
    }

    /// Evaluates with `caller` (a service key; `None`: anonymous) as `source`.
    pub(crate) fn eval_for<R: RequestView + ?Sized>(
        &self,
        request: &R,
        caller: Option<&str>,
    ) -> bool {
        match self {
            Matcher::All(items) => items.iter().all(|m| m.eval_for(request, caller)),
            Matcher::Any(items) => items.iter().any(|m| m.eval_for(request, caller)),
            Matcher::Not(inner) => !inner.eval_for(request, caller),
            Matcher::Method { mask, other } => {
                match METHODS.iter().position(|m| *m == request.method()) {
                    Some(bit) => mask & (1 << bit) != 0,
                    None => *other,
                }
            }
            Matcher::Text { attr, test } => {
                let value = text(request, attr);
                match test {
                    TextTest::Eq(v) => value == v.as_str(),
                    TextTest::Ne(v) => value != v.as_str(),
                    TextTest::StartsWith(prefix) => value.starts_with(prefix.as_str()),
                    TextTest::Regex(regex) => regex.is_match(&value),
                    TextTest::Glob(glob) => glob.matches(&value),
                }
            }
            Matcher::TextIn { attr, values } => {
                let value = text(request, attr);
                values.iter().any(|v| value == v.as_str())
            }
            Matcher::Exists(attr) => match attr {
                Attr::Header(name) => request.header(name).is_some(),
                Attr::Query(name) => request.query_param(name).is_some(),
                Attr::Path | Attr::Host => true,
            },
            Matcher::Const(value) => *value,
            Matcher::Caller { services, negated } => {
                caller.is_some_and(|c| services.iter().any(|s| s == c)) != *negated
            }
        }
    }
}
