//! Ingress gateways: which host entry of a gateway a request's host picks, and which of
//! that host's rules routes it. A gateway rule is a route rule whose backends may be any
//! service the gateway calls; once a rule matched, the request goes down the same path
//! as a sidecar's (the decision is a [`RouteDecision`] with [`RouteKey::host`] set), so
//! splits, timeouts, retries, faults, mirrors and header edits mean the same thing.

use std::collections::HashMap;

use crate::config::{
    Config, ConfigError, Matcher, Source, check_rule_with, compile_match, invalid,
};
use crate::request::RequestView;
use crate::route::{RouteDecision, RouteKey, pick};
use crate::schema::{Gateway, OutboundService, TlsFiles};

/// A gateway's hosts and rules, compiled once per config.
#[derive(Debug, Default)]
pub(crate) struct CompiledGateway {
    /// Exact host names (lower case) → host index.
    exact: HashMap<String, usize>,
    /// `*.SUFFIX` hosts as (`.SUFFIX` lower case, index), longest suffix first.
    wildcards: Vec<(String, usize)>,
    /// The `*` host.
    any: Option<usize>,
    /// Per host, its rules' conditions in order.
    pub(crate) rules: Vec<Vec<Option<Matcher>>>,
}

impl CompiledGateway {
    /// Validates `gateway` against the services the config calls (`outbound`) and compiles
    /// its host table and conditions. `own` is the gateway's service key (`source`).
    pub(crate) fn new(
        gateway: &Gateway,
        outbound: &[OutboundService],
        own: &str,
    ) -> Result<CompiledGateway, ConfigError> {
        if gateway.name.is_empty() {
            return Err(invalid("gateway.name", "a gateway needs a name"));
        }
        if gateway.listeners.is_empty() {
            return Err(invalid("gateway.listeners", "a gateway needs a listener"));
        }
        for (index, listener) in gateway.listeners.iter().enumerate() {
            let at = format!("gateway.listeners[{index}] (port {})", listener.port);
            if listener.port == 0 {
                return Err(invalid(at, "port 0 is not a port"));
            }
            if gateway.listeners[..index]
                .iter()
                .any(|l| l.port == listener.port)
            {
                return Err(invalid(at, "two listeners have this port"));
            }
            check_tls(listener.tls.as_ref(), &at)?;
        }
        let mut compiled = CompiledGateway::default();
        for (index, host) in gateway.hosts.iter().enumerate() {
            let at = format!("gateway.hosts[{index}] ({})", host.host);
            check_tls(host.tls.as_ref(), &at)?;
            let name = host.host.to_ascii_lowercase();
            let fresh = if name == "*" {
                compiled.any.replace(index).is_none()
            } else if let Some(suffix) = name.strip_prefix("*.") {
                if !is_dns_name(suffix) {
                    return Err(invalid(at, "not a host name, `*.SUFFIX` or `*`"));
                }
                let dotted = format!(".{suffix}");
                let fresh = compiled.wildcards.iter().all(|(s, _)| *s != dotted);
                compiled.wildcards.push((dotted, index));
                fresh
            } else {
                if !is_dns_name(&name) {
                    return Err(invalid(at, "not a host name, `*.SUFFIX` or `*`"));
                }
                compiled.exact.insert(name, index).is_none()
            };
            if !fresh {
                return Err(invalid(at, "the host is listed twice"));
            }
            let mut rules = Vec::with_capacity(host.rules.len());
            for (i, rule) in host.rules.iter().enumerate() {
                let at = format!("{at}.rules[{i}] ({})", rule.name);
                check_rule_with(rule, &at, |backend| {
                    let Some(service) = outbound.iter().find(|s| s.service == backend.service)
                    else {
                        return Some(format!(
                            "`{}` is not a service of `outbound.services`",
                            backend.service
                        ));
                    };
                    match &backend.subset {
                        Some(subset) if !service.subsets.iter().any(|s| s.name == *subset) => Some(
                            format!("unknown subset `{subset}` of `{}`", service.service),
                        ),
                        _ => None,
                    }
                })?;
                rules.push(
                    rule.when
                        .as_ref()
                        .map(|m| compile_match(m, Source::Own(own), &at))
                        .transpose()?,
                );
            }
            compiled.rules.push(rules);
        }
        compiled
            .wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Ok(compiled)
    }

    /// The host entry for `host` (lower case, without port).
    fn host(&self, host: &str) -> Option<usize> {
        if let Some(index) = self.exact.get(host) {
            return Some(*index);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, index)| *index)
            .or(self.any)
    }
}

/// A DNS name as clients send it in `Host` and SNI: dot-separated labels of letters,
/// digits, `-` and `_`, none empty, at most 253 bytes.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn check_tls(tls: Option<&TlsFiles>, at: &str) -> Result<(), ConfigError> {
    match tls {
        Some(tls) if tls.cert.is_empty() || tls.key.is_empty() => Err(invalid(
            format!("{at}.tls"),
            "TLS needs a certificate file and a key file",
        )),
        _ => Ok(()),
    }
}

impl Config {
    /// The gateway this config runs, if it is a gateway's.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.source().gateway.as_ref()
    }

    /// The index of the gateway host entry serving `authority` (a host, with or without
    /// port, or a TLS server name): an exact name, else the longest matching wildcard,
    /// else `*`. `None`: the gateway does not serve it (`404`), or this is no gateway.
    pub fn gateway_host(&self, authority: &str) -> Option<usize> {
        self.gateway()?;
        self.gateway.host(&mesh_vocab::authority::host(authority))
    }

    /// The certificate for a TLS client that sent `server_name` (SNI) to the listener on
    /// `port`: the host entry's own, else the listener's. `None` when the listener is
    /// plain or unknown.
    pub fn gateway_certificate(&self, port: u16, server_name: Option<&str>) -> Option<&TlsFiles> {
        let gateway = self.gateway()?;
        let listener = gateway.listeners.iter().find(|l| l.port == port)?;
        let own = server_name
            .and_then(|name| self.gateway_host(name))
            .and_then(|index| gateway.hosts.get(index)?.tls.as_ref());
        own.or(listener.tls.as_ref())
    }

    /// Routes `request` by the rules of gateway host `host`: the first rule whose condition
    /// holds picks the backends and `draw` (in `0..FULL_WEIGHT`) one of them. `None`
    /// when no rule matches (`404`) or `host` is out of range.
    pub fn gateway_route<R: RequestView + ?Sized>(
        &self,
        host: usize,
        request: &R,
        draw: u32,
    ) -> Option<RouteDecision<'_>> {
        let rule = self
            .gateway
            .rules
            .get(host)?
            .iter()
            .position(|when| when.as_ref().is_none_or(|m| m.eval(request)))?;
        let backends = &self.gateway()?.hosts.get(host)?.rules.get(rule)?.backends;
        let backend = pick(backends, draw)?;
        let service = self.service_by_key(&backends.get(backend)?.backend.service)?;
        self.resolve(RouteKey {
            service,
            rule: Some(rule),
            backend,
            host: Some(host),
        })
    }

    /// Whether each rule of gateway host `host` matches `request`, in order.
    pub fn gateway_rule_matches<R: RequestView + ?Sized>(
        &self,
        host: usize,
        request: &R,
    ) -> Vec<bool> {
        self.gateway
            .rules
            .get(host)
            .map(|rules| {
                rules
                    .iter()
                    .map(|m| m.as_ref().is_none_or(|m| m.eval(request)))
                    .collect()
            })
            .unwrap_or_default()
    }
}
