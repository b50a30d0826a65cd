//! Spelling values the way the language reads them: strings and raw strings, identifiers
//! made from Kubernetes names, durations from Go's and protobuf's notations, percents,
//! and Kubernetes hosts as service references.

/// A plain `.mesh` string literal holding `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A regex as a raw string when it can be one (no escapes to read twice), else a plain one.
pub fn regex(s: &str) -> String {
    if s.contains('\n') || s.chars().any(char::is_control) {
        return string(s);
    }
    for hashes in 0..4 {
        let close = format!("\"{}", "#".repeat(hashes));
        if !s.contains(&close) {
            let h = "#".repeat(hashes);
            return format!("r{h}\"{s}\"{h}");
        }
    }
    string(s)
}

/// Whether `s` is an identifier of the language.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `s` made an identifier: other characters become `-`, a leading digit or dash gets `_`.
pub fn ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// A duration in microseconds from Go's notation (`1h2m`, `1.5s`, `250ms`, `10us`) or
/// protobuf's JSON one (`0.5s`); `None` when it is neither, or not a whole number of
/// microseconds.
pub fn duration_us(text: &str) -> Option<u128> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "h" => 3_600_000_000.0,
            "m" => 60_000_000.0,
            "s" => 1_000_000.0,
            "ms" => 1_000.0,
            "us" | "µs" | "μs" => 1.0,
            "ns" => 0.001,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    let rounded = total.round();
    if (total - rounded).abs() > 1e-6 || !(0.0..=1e18).contains(&rounded) {
        return None;
    }
    Some(rounded as u128)
}

/// A duration in microseconds in the language's notation, in the largest exact unit.
pub fn duration(us: u128) -> String {
    for (unit, size) in [
        ("h", 3_600_000_000u128),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if us >= size && us.is_multiple_of(size) {
            return format!("{}{unit}", us / size);
        }
    }
    if us == 0 {
        return "0ms".to_string();
    }
    format!("{us}us")
}

/// A percent with at most three decimals, from thousandths of a percent.
pub fn percent_milli(milli: u64) -> String {
    let whole = milli / 1000;
    let frac = milli % 1000;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let digits = format!("{frac:03}");
        format!("{whole}.{}%", digits.trim_end_matches('0'))
    }
}

/// A percent 0–100 as thousandths, when it has at most three decimals.
pub fn percent_from(value: f64) -> Option<u64> {
    if !(0.0..=100.0).contains(&value) {
        return None;
    }
    let milli = (value * 1000.0).round();
    ((value * 1000.0 - milli).abs() < 1e-6).then_some(milli as u64)
}

/// The namespace and name of the service a Kubernetes host names, seen from namespace
/// `ns`: `reviews`, `reviews.bookinfo`, `reviews.bookinfo.svc` and
/// `reviews.bookinfo.svc.cluster.local` (any cluster domain). `None` for other hosts
/// (external names, wildcards).
pub fn service_host(host: &str, ns: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = host.split('.').collect();
    let valid = |s: &str| is_ident(s) && !s.contains('_');
    match parts.as_slice() {
        [name] if valid(name) => Some((ns.to_string(), (*name).to_string())),
        [name, namespace] if valid(name) && valid(namespace) => {
            Some(((*namespace).to_string(), (*name).to_string()))
        }
        [name, namespace, "svc", ..] if valid(name) && valid(namespace) => {
            Some(((*namespace).to_string(), (*name).to_string()))
        }
        _ => None,
    }
}

/// How a service `name` of namespace `ns` is referred to from namespace `from`.
pub fn service_ref(ns: &str, name: &str, from: &str) -> String {
    if ns == from {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// How a service is named as a caller (in `from` lists and `source` conditions): like
/// [`service_ref`], but qualified when its bare name would read as a keyword there
/// (a service called `any` is not every caller).
pub fn caller_ref(ns: &str, name: &str, from: &str) -> String {
    const RESERVED: [&str; 16] = [
        "when",
        "mode",
        "allow",
        "deny",
        "cedar",
        "any",
        "authenticated",
        "namespace",
        "rate_limit",
        "method",
        "path",
        "host",
        "source",
        "header",
        "query",
        "exists",
    ];
    if RESERVED.contains(&name) {
        format!("{ns}/{name}")
    } else {
        service_ref(ns, name, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_go_and_protobuf() {
        assert_eq!(duration_us("0.5s").map(duration).as_deref(), Some("500ms"));
        assert_eq!(duration_us("10s").map(duration).as_deref(), Some("10s"));
        assert_eq!(duration_us("1m30s").map(duration).as_deref(), Some("90s"));
        assert_eq!(duration_us("2h").map(duration).as_deref(), Some("2h"));
        assert_eq!(
            duration_us("1500us").map(duration).as_deref(),
            Some("1500us")
        );
        assert_eq!(duration_us("10x"), None);
        assert_eq!(duration_us("1ns"), None);
        assert_eq!(duration_us(""), None);
    }

    #[test]
    fn percents_keep_three_decimals() {
        assert_eq!(percent_milli(50_000), "50%");
        assert_eq!(percent_milli(33_333), "33.333%");
        assert_eq!(percent_milli(500), "0.5%");
        assert_eq!(percent_from(12.5), Some(12_500));
        assert_eq!(percent_from(0.0001), None);
        assert_eq!(percent_from(101.0), None);
    }

    #[test]
    fn hosts_name_services() {
        let s = |h| service_host(h, "default");
        assert_eq!(s("reviews"), Some(("default".into(), "reviews".into())));
        assert_eq!(
            s("reviews.bookinfo.svc.cluster.local"),
            Some(("bookinfo".into(), "reviews".into()))
        );
        assert_eq!(
            s("reviews.bookinfo"),
            Some(("bookinfo".into(), "reviews".into()))
        );
        assert_eq!(s("api.example.com"), None);
        assert_eq!(s("*.example.com"), None);
    }

    #[test]
    fn strings_and_identifiers() {
        assert_eq!(string("a\"b\\"), r#""a\"b\\""#);
        assert_eq!(regex("^/v[0-9]+$"), r#"r"^/v[0-9]+$""#);
        assert_eq!(regex("a\"b"), "r#\"a\"b\"#");
        assert_eq!(ident("3scale.v1"), "_3scale-v1");
        assert!(is_ident("bookinfo-productpage"));
        assert_eq!(caller_ref("default", "any", "default"), "default/any");
        assert_eq!(caller_ref("default", "web", "default"), "web");
    }
}
