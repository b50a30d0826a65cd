//! Rate limits: which of a workload's inbound limits a request counts against. The token
//! buckets themselves are the agent's (state per running instance); deciding which
//! limits apply is the contract's, so `meshc test` (`expect rate_limit NAME`) and the
//! agent agree.

use crate::config::{Config, ConfigError, Matcher, Source, compile_match, invalid};
use crate::request::RequestView;
use crate::schema::{FULL_WEIGHT, Limits, Outlier, RateLimit};

impl Config {
    /// The limits of `inbound.rate_limits` that `request` from `caller` (its service key,
    /// `namespace/name`; `None` for an anonymous caller) counts against, in order, with
    /// their indexes. Only requests the policy allows are limited: the caller of this
    /// function has authorized the request first.
    pub fn rate_limits<'s, R: RequestView + ?Sized>(
        &'s self,
        request: &'s R,
        caller: Option<&'s str>,
    ) -> impl Iterator<Item = (usize, &'s RateLimit)> + 's {
        self.source()
            .inbound
            .rate_limits
            .iter()
            .zip(&self.rate_limit_matchers)
            .enumerate()
            .filter(move |(_, (_, when))| when.as_ref().is_none_or(|m| m.eval_for(request, caller)))
            .map(|(index, (limit, _))| (index, limit))
    }
}

/// Validates the inbound rate limits and compiles their conditions, in order.
pub(crate) fn compile_rate_limits(
    limits: &[RateLimit],
) -> Result<Vec<Option<Matcher>>, ConfigError> {
    let mut compiled = Vec::with_capacity(limits.len());
    for (index, limit) in limits.iter().enumerate() {
        let at = format!("inbound.rate_limits[{index}] ({})", limit.name);
        if limit.name.is_empty() {
            return Err(invalid(at, "a rate limit needs a name"));
        }
        if limits[..index].iter().any(|l| l.name == limit.name) {
            return Err(invalid(at, "two rate limits have this name"));
        }
        if limit.requests == 0 {
            return Err(invalid(
                at,
                "a rate limit admits at least 1 request per period",
            ));
        }
        if limit.period_us == 0 {
            return Err(invalid(at, "a rate limit's period must be longer than 0"));
        }
        if limit.burst == 0 {
            return Err(invalid(at, "a rate limit's burst must be at least 1"));
        }
        compiled.push(
            limit
                .when
                .as_ref()
                .map(|m| compile_match(m, Source::Caller, &at))
                .transpose()?,
        );
    }
    Ok(compiled)
}

/// Circuit-breaker limits: a limit of 0 would refuse every request.
pub(crate) fn check_limits(limits: Option<&Limits>, at: &str) -> Result<(), ConfigError> {
    let Some(limits) = limits else { return Ok(()) };
    let values = [
        ("max_connections", limits.max_connections),
        ("max_pending", limits.max_pending),
        ("max_requests", limits.max_requests),
    ];
    match values.iter().find(|(_, v)| *v == Some(0)) {
        Some((name, _)) => Err(invalid(
            format!("{at}.limits"),
            format!("{name} must be at least 1"),
        )),
        None => Ok(()),
    }
}

/// Outlier ejection parameters in range.
pub(crate) fn check_outlier(outlier: Option<&Outlier>, at: &str) -> Result<(), ConfigError> {
    let Some(outlier) = outlier else {
        return Ok(());
    };
    let at = format!("{at}.outlier");
    if outlier.consecutive_5xx == 0 {
        return Err(invalid(at, "consecutive_5xx must be at least 1"));
    }
    if outlier.interval_us == 0 || outlier.base_ejection_us == 0 {
        return Err(invalid(
            at,
            "interval and base ejection must be longer than 0",
        ));
    }
    if outlier.max_ejected_milli > FULL_WEIGHT {
        return Err(invalid(at, "max_ejected is above 100%"));
    }
    Ok(())
}
