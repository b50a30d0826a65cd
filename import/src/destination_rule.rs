//! Istio DestinationRule → the `service` it is about: `subsets` become subsets, and the
//! service-wide `trafficPolicy` becomes `balance`, `limits` (connection pool) and
//! `outlier` (outlier detection) where the language has them.

use crate::fields::At;
use crate::lit;
use crate::model::{Mesh, Service, Subset};
use crate::object::Object;
use crate::virtual_service::duration;

/// Translates one DestinationRule into `mesh`.
pub fn translate(obj: &Object<'_>, mesh: &mut Mesh) {
    let spec = obj.spec();
    let Some(f) = spec.fields() else { return };
    let Some(host) = f.take("host") else {
        spec.bad_value("a DestinationRule needs `host`");
        return;
    };
    let Some(host_name) = host.at().str() else {
        return;
    };
    let Some((ns, name)) = lit::service_host(&host_name, &obj.namespace) else {
        host.at().not_expressible(&format!(
            "host {host_name:?} is not a service of the mesh: the language has no external \
             services"
        ));
        for key in ["subsets", "trafficPolicy", "exportTo", "workloadSelector"] {
            f.skip(key);
        }
        return;
    };
    let why = format!(
        "the host of DestinationRule {} ({})",
        obj.name, obj.namespace
    );
    let service = mesh.service(&ns, &name, &crate::declared(&why));
    if let Some(subsets) = f.take("subsets") {
        for item in subsets.at().items() {
            subset(item.at(), service);
        }
    }
    if let Some(policy) = f.take("trafficPolicy") {
        traffic_policy(policy.at(), service);
    }
    f.not_expressible(
        "exportTo",
        "the language has no visibility scopes: a service's settings apply to every caller",
    );
    f.not_expressible(
        "workloadSelector",
        "a DestinationRule for some callers only is not expressible",
    );
}

fn subset(at: &At<'_>, service: &mut Service) {
    let Some(f) = at.fields() else { return };
    let Some(name) = f.str("name") else {
        at.bad_value("a subset needs a name");
        return;
    };
    let mut labels = Vec::new();
    if let Some(l) = f.take("labels") {
        for (k, v) in l.at().string_map() {
            if lit::is_ident(&k) {
                labels.push((k, v));
            } else {
                l.at().not_expressible(&format!(
                    "label key {k:?} is not expressible: the language's label keys are \
                     identifiers (letters, digits, `_` and `-`)"
                ));
            }
        }
    }
    f.not_expressible(
        "trafficPolicy",
        "traffic policies per subset are not expressible (the language's balance, limits and \
         outlier are per service)",
    );
    let name = lit::ident(&name);
    if service.subsets.iter().any(|s| s.name == name) {
        at.bad_value(&format!("subset {name} is defined twice"));
        return;
    }
    service.subsets.push(Subset { name, labels });
}

fn traffic_policy(at: &At<'_>, service: &mut Service) {
    let Some(f) = at.fields() else { return };
    if let Some(lb) = f.take("loadBalancer")
        && let Some(lf) = lb.at().fields()
    {
        if let Some(simple) = lf.take("simple")
            && let Some(word) = simple.at().str()
        {
            match word.as_str() {
                "ROUND_ROBIN" | "UNSPECIFIED" => service.balance = Some("round_robin"),
                "LEAST_REQUEST" | "LEAST_CONN" => service.balance = Some("least_request"),
                "RANDOM" => service.balance = Some("random"),
                other => simple.at().not_expressible(&format!(
                    "load balancer {other} is not expressible (round_robin, least_request, \
                     ewma, random)"
                )),
            }
        }
        for key in [
            "consistentHash",
            "localityLbSetting",
            "warmupDurationSecs",
            "warmup",
        ] {
            lf.not_expressible(
                key,
                "not expressible: the language's `balance` takes only an algorithm",
            );
        }
    }
    if let Some(pool) = f.take("connectionPool")
        && let Some(pf) = pool.at().fields()
    {
        if let Some(tcp) = pf.take("tcp")
            && let Some(tf) = tcp.at().fields()
        {
            if let Some(n) = tf.take("maxConnections") {
                limit(n.at(), "max_connections", service);
            }
            for key in [
                "connectTimeout",
                "tcpKeepalive",
                "maxConnectionDuration",
                "idleTimeout",
            ] {
                tf.not_expressible(key, "not expressible as a setting of the service");
            }
        }
        if let Some(http) = pf.take("http")
            && let Some(hf) = http.at().fields()
        {
            if let Some(n) = hf.take("http1MaxPendingRequests") {
                limit(n.at(), "max_pending", service);
            }
            if let Some(n) = hf.take("http2MaxRequests") {
                limit(n.at(), "max_requests", service);
            }
            for key in [
                "maxRequestsPerConnection",
                "maxRetries",
                "idleTimeout",
                "h2UpgradePolicy",
                "useClientProtocol",
                "maxConcurrentStreams",
            ] {
                hf.not_expressible(key, "not expressible in the language's `limits`");
            }
        }
    }
    if let Some(od) = f.take("outlierDetection") {
        outlier(od.at(), service);
    }
    f.not_expressible(
        "tls",
        "the language always uses its own mTLS between services; client TLS settings are not \
         expressible",
    );
    f.not_expressible(
        "portLevelSettings",
        "traffic policies per port are not expressible",
    );
    f.not_expressible("tunnel", "tunnels are not expressible");
    f.not_expressible("proxyProtocol", "the PROXY protocol is not expressible");
}

fn limit(at: &At<'_>, member: &'static str, service: &mut Service) {
    if let Some(n) = at.int() {
        if n >= 1 {
            service.limits.push((member, n.to_string()));
        } else {
            at.bad_value("a limit is at least 1");
        }
    }
}

fn outlier(at: &At<'_>, service: &mut Service) {
    let Some(f) = at.fields() else { return };
    let mut members = Vec::new();
    let errors = f
        .take("consecutive5xxErrors")
        .or_else(|| f.take("consecutiveErrors"));
    if let Some(n) = errors
        && let Some(v) = n.at().int()
    {
        if v >= 1 {
            members.push(("consecutive_5xx", v.to_string()));
        } else {
            n.at().not_expressible(
                "0 turns 5xx ejection off in Istio; the language's outlier ejection always counts 5xx",
            );
        }
    }
    for (key, member) in [
        ("interval", "interval"),
        ("baseEjectionTime", "base_ejection"),
    ] {
        if let Some(d) = f.take(key)
            && let Some(us) = duration(d.at())
        {
            if us > 0 {
                members.push((member, lit::duration(us)));
            } else {
                d.at().bad_value("a duration above 0 is needed");
            }
        }
    }
    if let Some(p) = f.take("maxEjectionPercent")
        && let Some(v) = p.at().int()
    {
        if (0..=100).contains(&v) {
            members.push(("max_ejected", format!("{v}%")));
        } else {
            p.at().bad_value("a percent is 0–100");
        }
    }
    for key in [
        "consecutiveGatewayErrors",
        "consecutiveLocalOriginFailures",
        "splitExternalLocalOriginErrors",
        "minHealthPercent",
    ] {
        f.not_expressible(key, "not expressible in the language's `outlier`");
    }
    service.outlier = Some(members);
}
