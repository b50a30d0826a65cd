//! Loading a workload config: parse, validate everything the agent relies on, and compile
//! the matchers (regexes, globs, method sets) and the Cedar policy set once, so requests
//! only evaluate. An invalid config is an error naming the offending field; the agent
//! keeps its last good config.

use std::collections::{HashMap, HashSet};

use mesh_vocab::SpiffeId;
use regex::Regex;

use crate::authz::CompiledAuthz;
use crate::gateway::CompiledGateway;
use crate::glob::Glob;
use crate::rate_limit::{check_limits, check_outlier, compile_rate_limits};
use crate::schema::{
    Attr, Backend, FULL_WEIGHT, Match, OutboundService, Retry, RouteRule, Telemetry, TextOp,
    VERSION, WeightedBackend, WorkloadConfig,
};

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON of the expected shape.
    #[error("config is not valid JSON for schema version {VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this agent does not read.
    #[error("config version {found} is not supported (this agent reads version {VERSION})")]
    Version {
        /// The version found.
        found: u32,
    },
    /// A value that breaks an invariant.
    #[error("{at}: {problem}")]
    Invalid {
        /// Where in the config.
        at: String,
        /// What is wrong.
        problem: String,
    },
}

pub(crate) fn invalid(at: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        at: at.into(),
        problem: problem.into(),
    }
}

/// A validated config with its matchers compiled.
#[derive(Debug)]
pub struct Config {
    source: WorkloadConfig,
    services: Vec<CompiledService>,
    by_authority: HashMap<String, usize>,
    pub(crate) authz: CompiledAuthz,
    /// The conditions of `inbound.rate_limits`, in order.
    pub(crate) rate_limit_matchers: Vec<Option<Matcher>>,
    /// The gateway's hosts and rules, compiled; empty for a sidecar.
    pub(crate) gateway: CompiledGateway,
}

#[derive(Debug)]
pub(crate) struct CompiledService {
    pub(crate) rules: Vec<Option<Matcher>>,
    /// Where requests matching no rule go: the whole service.
    pub(crate) fallback: [WeightedBackend; 1],
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Matcher {
    All(Vec<Matcher>),
    Any(Vec<Matcher>),
    Not(Box<Matcher>),
    /// Bit `i` set: method `METHODS[i]` matches; other methods match when `other`.
    Method {
        mask: u16,
        other: bool,
    },
    Text {
        attr: Attr,
        test: TextTest,
    },
    TextIn {
        attr: Attr,
        values: Vec<String>,
    },
    Exists(Attr),
    Const(bool),
    /// The caller is (not) one of these services: `source` in a condition the callee
    /// evaluates (rate limits), where the caller varies per request.
    Caller {
        services: Vec<String>,
        negated: bool,
    },
}

/// Who `source` in a condition is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source<'a> {
    /// This workload (routing: the caller is always the workload itself).
    Own(&'a str),
    /// The caller of an inbound request, known only per request.
    Caller,
}

#[derive(Debug)]
pub(crate) enum TextTest {
    Eq(String),
    Ne(String),
    StartsWith(String),
    Regex(Box<Regex>),
    Glob(Glob),
}

/// The methods with a bit in [`Matcher::Method`] masks.
pub(crate) const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

impl Config {
    /// Parses and validates a config from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let source: WorkloadConfig = serde_json::from_slice(bytes)?;
        Config::new(source)
    }

    /// Validates and compiles a config.
    pub fn new(source: WorkloadConfig) -> Result<Config, ConfigError> {
        if source.version != VERSION {
            return Err(ConfigError::Version {
                found: source.version,
            });
        }
        let own_service = source.workload.service.clone();
        check_service_key(&own_service, "workload.service")?;
        let identity = &source.workload.identity;
        let id = check_spiffe_id(identity, "workload.identity")?;
        if id.trust_domain() != source.mesh.trust_domain {
            return Err(invalid(
                "workload.identity",
                format!(
                    "`{identity}` is not in the mesh's trust domain `{}`",
                    source.mesh.trust_domain
                ),
            ));
        }
        let mut by_authority = HashMap::new();
        let mut keys = HashSet::new();
        let mut services = Vec::with_capacity(source.outbound.services.len());
        for (index, service) in source.outbound.services.iter().enumerate() {
            let at = format!("outbound.services[{index}] ({})", service.service);
            check_service_key(&service.service, &format!("{at}.service"))?;
            if !keys.insert(service.service.as_str()) {
                return Err(invalid(at, "the service is listed twice"));
            }
            check_spiffe_id(&service.identity, &format!("{at}.identity"))?;
            services.push(compile_service(service, &own_service, &at)?);
            for authority in &service.authorities {
                if !mesh_vocab::authority::is_host(authority) {
                    return Err(invalid(
                        at,
                        format!(
                            "authority `{authority}` is not a host name: requests are matched \
                             by their host alone, without port or user information"
                        ),
                    ));
                }
                if by_authority
                    .insert(authority.to_ascii_lowercase(), index)
                    .is_some()
                {
                    return Err(invalid(
                        at,
                        format!("authority `{authority}` is claimed by two services"),
                    ));
                }
            }
        }
        let authz = CompiledAuthz::new(&source)?;
        let rate_limit_matchers = compile_rate_limits(&source.inbound.rate_limits)?;
        check_telemetry(source.mesh.telemetry.as_ref())?;
        let gateway = match &source.gateway {
            Some(gateway) => {
                CompiledGateway::new(gateway, &source.outbound.services, &own_service)?
            }
            None => CompiledGateway::default(),
        };
        Ok(Config {
            source,
            services,
            by_authority,
            authz,
            rate_limit_matchers,
            gateway,
        })
    }

    /// The config as loaded.
    pub fn source(&self) -> &WorkloadConfig {
        &self.source
    }

    /// The outbound service an authority (`reviews`, `reviews:9080`,
    /// `reviews.bookinfo.svc.cluster.local`) names, as an index for [`Config::route`].
    pub fn service_for_authority(&self, authority: &str) -> Option<usize> {
        self.by_authority
            .get(&*mesh_vocab::authority::host(authority))
            .copied()
    }

    /// When `authority` is not an outbound service but names a service in one of the
    /// mesh's namespaces (see [`crate::schema::MeshInfo::namespaces`]): that namespace.
    /// Such a call is to a mesh service the workload's policies do not let it call.
    pub fn forbidden_mesh_namespace(&self, authority: &str) -> Option<&str> {
        if self.service_for_authority(authority).is_some() {
            return None;
        }
        let host = mesh_vocab::authority::host(authority);
        if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        let labels: Vec<&str> = host.split('.').collect();
        let namespace = match labels.as_slice() {
            ["localhost"] | [] => return None,
            [_name] => self
                .source
                .workload
                .service
                .split_once('/')
                .map(|(ns, _)| ns)?,
            [_name, ns] | [_name, ns, "svc", ..] => ns,
            _ => return None,
        };
        self.source
            .mesh
            .namespaces
            .iter()
            .find(|n| n.as_str() == namespace)
            .map(String::as_str)
    }

    /// The outbound service for `namespace/name`.
    pub fn service_by_key(&self, key: &str) -> Option<usize> {
        self.source
            .outbound
            .services
            .iter()
            .position(|s| s.service == key)
    }

    /// The outbound service at `index`.
    pub fn outbound(&self, index: usize) -> Option<&OutboundService> {
        self.source.outbound.services.get(index)
    }

    pub(crate) fn compiled(&self, index: usize) -> Option<&CompiledService> {
        self.services.get(index)
    }
}

fn compile_service(
    service: &OutboundService,
    own: &str,
    at: &str,
) -> Result<CompiledService, ConfigError> {
    let subsets: Vec<&str> = service.subsets.iter().map(|s| s.name.as_str()).collect();
    for (i, subset) in subsets.iter().enumerate() {
        if subsets
            .get(..i)
            .is_some_and(|before| before.contains(subset))
        {
            return Err(invalid(
                format!("{at}.subsets[{i}]"),
                format!("subset `{subset}` is defined twice"),
            ));
        }
    }
    check_retry(service.retry.as_ref(), &format!("{at}.retry"))?;
    check_limits(service.limits.as_ref(), at)?;
    check_outlier(service.outlier.as_ref(), at)?;
    let mut rules = Vec::with_capacity(service.rules.len());
    for (i, rule) in service.rules.iter().enumerate() {
        let at = format!("{at}.rules[{i}] ({})", rule.name);
        check_rule(rule, service, &subsets, &at)?;
        rules.push(
            rule.when
                .as_ref()
                .map(|m| compile_match(m, Source::Own(own), &at))
                .transpose()?,
        );
    }
    Ok(CompiledService {
        rules,
        fallback: [WeightedBackend {
            backend: Backend {
                service: service.service.clone(),
                subset: None,
            },
            weight_milli: FULL_WEIGHT,
        }],
    })
}

fn check_rule(
    rule: &RouteRule,
    service: &OutboundService,
    subsets: &[&str],
    at: &str,
) -> Result<(), ConfigError> {
    check_rule_with(rule, at, |backend| match &backend.subset {
        Some(subset)
            if backend.service == service.service && !subsets.contains(&subset.as_str()) =>
        {
            Some(format!(
                "unknown subset `{subset}` of `{}`",
                service.service
            ))
        }
        _ => None,
    })
}

/// Checks a rule's weights, faults and header edits; `unknown` says what is wrong with a
/// backend or mirror target it names, if anything.
pub(crate) fn check_rule_with(
    rule: &RouteRule,
    at: &str,
    unknown: impl Fn(&Backend) -> Option<String>,
) -> Result<(), ConfigError> {
    if rule.backends.is_empty() {
        return Err(invalid(at, "a rule needs at least one backend"));
    }
    let total: u64 = rule
        .backends
        .iter()
        .map(|b| u64::from(b.weight_milli))
        .sum();
    if total != u64::from(FULL_WEIGHT) {
        return Err(invalid(
            at,
            format!(
                "backend weights add up to {total} thousandths of a percent, not {FULL_WEIGHT}"
            ),
        ));
    }
    for backend in rule
        .backends
        .iter()
        .map(|b| &b.backend)
        .chain(rule.mirrors.iter().map(|m| &m.backend))
    {
        check_service_key(&backend.service, at)?;
        if let Some(problem) = unknown(backend) {
            return Err(invalid(at, problem));
        }
    }
    for mirror in &rule.mirrors {
        if mirror.percent_milli > FULL_WEIGHT {
            return Err(invalid(at, "a mirror percent is above 100%"));
        }
    }
    if let Some(fault) = &rule.fault {
        let percents = fault
            .delay
            .map(|d| d.percent_milli)
            .into_iter()
            .chain(fault.abort.map(|a| a.percent_milli));
        if percents.into_iter().any(|p| p > FULL_WEIGHT) {
            return Err(invalid(at, "a fault percent is above 100%"));
        }
        if fault
            .abort
            .is_some_and(|a| !(100..=599).contains(&a.status))
        {
            return Err(invalid(at, "a fault abort status is outside 100..=599"));
        }
    }
    for name in rule
        .set_headers
        .iter()
        .map(|h| &h.name)
        .chain(&rule.remove_headers)
    {
        check_header_name(name, at)?;
    }
    check_retry(rule.retry.as_ref(), &format!("{at}.retry"))
}

/// Tracing samples at most every request.
fn check_telemetry(telemetry: Option<&Telemetry>) -> Result<(), ConfigError> {
    match telemetry {
        Some(t) if t.tracing_milli > FULL_WEIGHT => Err(invalid(
            "mesh.telemetry.tracing_milli",
            format!("{} is above 100%", t.tracing_milli),
        )),
        _ => Ok(()),
    }
}

/// A service key: `namespace/name`, both parts non-empty.
pub(crate) fn check_service_key(key: &str, at: &str) -> Result<(), ConfigError> {
    match key.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(())
        }
        _ => Err(invalid(at, format!("`{key}` is not `namespace/name`"))),
    }
}

/// A SPIFFE id of a workload, held to the parser the agent reads certificates with
/// ([`SpiffeId::parse`]): an id it would refuse at the first connection is refused here.
fn check_spiffe_id(id: &str, at: &str) -> Result<SpiffeId, ConfigError> {
    SpiffeId::parse(id).map_err(|e| {
        invalid(
            at,
            format!(
                "`{id}` is not a SPIFFE id of the form \
                 `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`: {}",
                e.kind()
            ),
        )
    })
}

/// A header name as requests are looked up by: a non-empty lower-case RFC 9110 token.
pub(crate) fn check_header_name(name: &str, at: &str) -> Result<(), ConfigError> {
    if mesh_vocab::header::is_lookup_name(name) {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!("`{name}` is not a lower-case header name"),
        ))
    }
}

fn check_retry(retry: Option<&Retry>, at: &str) -> Result<(), ConfigError> {
    let Some(retry) = retry else { return Ok(()) };
    if !(1..=10).contains(&retry.attempts) {
        return Err(invalid(
            at,
            format!("attempts {} is outside 1..=10", retry.attempts),
        ));
    }
    if let Some(b) = retry.backoff
        && b.base_us > b.max_us
    {
        return Err(invalid(at, "backoff base is above its maximum"));
    }
    if let Some(budget) = retry.budget
        && (budget.ratio_milli > FULL_WEIGHT
            || !budget.min_per_second.is_finite()
            || budget.min_per_second < 0.0)
    {
        return Err(invalid(at, "budget out of range"));
    }
    Ok(())
}

/// Compiles a condition. On the outbound side `source` is this workload (`Source::Own`
/// with its service key): those conditions fold to constants.
pub(crate) fn compile_match(m: &Match, own: Source<'_>, at: &str) -> Result<Matcher, ConfigError> {
    Ok(match m {
        Match::All(items) => Matcher::All(
            items
                .iter()
                .map(|i| compile_match(i, own, at))
                .collect::<Result<_, _>>()?,
        ),
        Match::Any(items) => Matcher::Any(
            items
                .iter()
                .map(|i| compile_match(i, own, at))
                .collect::<Result<_, _>>()?,
        ),
        Match::Not(inner) => Matcher::Not(Box::new(compile_match(inner, own, at)?)),
        Match::Method { methods, negated } => {
            let mut mask = 0u16;
            for method in methods {
                let bit = METHODS
                    .iter()
                    .position(|m| m == method)
                    .ok_or_else(|| invalid(at, format!("unknown method `{method}`")))?;
                mask |= 1 << bit;
            }
            if *negated {
                Matcher::Method {
                    mask: !mask & 0x1ff,
                    other: true,
                }
            } else {
                Matcher::Method { mask, other: false }
            }
        }
        Match::Text { attr, op, value } => {
            check_attr(attr, at)?;
            Matcher::Text {
                attr: attr.clone(),
                test: match op {
                    TextOp::Eq => TextTest::Eq(value.clone()),
                    TextOp::Ne => TextTest::Ne(value.clone()),
                    TextOp::StartsWith => TextTest::StartsWith(value.clone()),
                    TextOp::Matches => TextTest::Regex(Box::new(
                        Regex::new(value)
                            .map_err(|e| invalid(at, format!("invalid regex `{value}`: {e}")))?,
                    )),
                    TextOp::Like => TextTest::Glob(
                        Glob::new(value)
                            .map_err(|e| invalid(at, format!("glob `{value}`: {e}")))?,
                    ),
                },
            }
        }
        Match::TextIn { attr, values } => {
            check_attr(attr, at)?;
            Matcher::TextIn {
                attr: attr.clone(),
                values: values.clone(),
            }
        }
        Match::Exists { attr } => match check_attr(attr, at).map(|()| attr)? {
            Attr::Header(_) | Attr::Query(_) => Matcher::Exists(attr.clone()),
            _ => {
                return Err(invalid(
                    at,
                    "`exists` applies to headers and query parameters",
                ));
            }
        },
        Match::Source { services, negated } => match own {
            Source::Own(own) => Matcher::Const(services.iter().any(|s| s == own) != *negated),
            Source::Caller => Matcher::Caller {
                services: services.clone(),
                negated: *negated,
            },
        },
    })
}

/// A request attribute: header names must be looked up as requests carry them.
pub(crate) fn check_attr(attr: &Attr, at: &str) -> Result<(), ConfigError> {
    match attr {
        Attr::Header(name) => check_header_name(name, at),
        Attr::Path | Attr::Host | Attr::Query(_) => Ok(()),
    }
}
