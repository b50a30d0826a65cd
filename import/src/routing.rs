//! What Istio's and Gateway API's routes have in common once translated: weighted
//! destinations as `to`/`split`, the rules of a route with unique names, and string
//! matches as conditions.

use crate::fields::At;
use crate::lit;
use crate::model::{Cond, Dest, Mesh, Route, Rule};

/// Weighted backends (references as written in the route's namespace) as a destination:
/// one backend is `to`; several are a `split` whose weights are scaled to 100% (to three
/// decimals, the rounding remainder on the heaviest). Zero-weight backends get no
/// traffic and are left out; `None` when no backend gets any.
pub fn destination(backends: &[(String, u64)]) -> Option<Dest> {
    let mut merged: Vec<(String, u64)> = Vec::new();
    for (r, w) in backends {
        match merged.iter_mut().find(|(m, _)| m == r) {
            Some(entry) => entry.1 += w,
            None => merged.push((r.clone(), *w)),
        }
    }
    merged.retain(|(_, w)| *w > 0);
    let total: u128 = merged.iter().map(|(_, w)| u128::from(*w)).sum();
    match merged.len() {
        0 => None,
        1 => merged.pop().map(|(r, _)| Dest::To(r)),
        _ => {
            let mut shares: Vec<u64> = merged
                .iter()
                .map(|(_, w)| (u128::from(*w) * 100_000 / total) as u64)
                .collect();
            let rest = 100_000 - shares.iter().sum::<u64>();
            let heaviest = merged
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.1.cmp(&b.1.1).then(b.0.cmp(&a.0)))
                .map_or(0, |(i, _)| i);
            if let Some(share) = shares.get_mut(heaviest) {
                *share += rest;
            }
            Some(Dest::Split(
                merged
                    .into_iter()
                    .zip(shares)
                    .map(|((r, _), s)| (r, lit::percent_milli(s)))
                    .collect(),
            ))
        }
    }
}

/// Adds `rules` to the route of service `name` in namespace `ns`, renaming any whose
/// name the route already has, and notes `source` above the route.
pub fn add_rules(mesh: &mut Mesh, ns: &str, name: &str, source: &str, rules: Vec<Rule>) {
    let route: &mut Route = mesh
        .namespace(ns)
        .routes
        .entry(name.to_string())
        .or_default();
    let line = format!("from {source}");
    if !route.comments.contains(&line) {
        route.comments.push(line);
    }
    for mut rule in rules {
        let base = rule.name.clone();
        let mut n = 2;
        while route.rules.iter().any(|r| r.name == rule.name) {
            rule.name = format!("{base}-{n}");
            n += 1;
        }
        route.rules.push(rule);
    }
}

/// The kinds of string match both APIs have.
pub enum Match {
    /// The whole value.
    Exact,
    /// A prefix of it.
    Prefix,
    /// An RE2 regex that must match the whole value.
    Regex,
}

/// `subject` (`path`, `header("x")`, …) compared with `value`.
pub fn compare(subject: &str, how: Match, value: &str) -> Cond {
    Cond::Atom(match how {
        Match::Exact => format!("{subject} == {}", lit::string(value)),
        Match::Prefix => format!("{subject} starts_with {}", lit::string(value)),
        Match::Regex => format!("{subject} matches {}", lit::regex(&full_match(value))),
    })
}

/// An RE2 regex that must match the whole text, as the language's unanchored `matches`.
pub fn full_match(regex: &str) -> String {
    format!("^(?:{regex})$")
}

/// Escapes `text` for a regex.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The methods the language knows.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// `method == M` for a method the language knows; reports others at `at`.
pub fn method_is(method: &str, at: &At<'_>) -> Option<Cond> {
    if METHODS.contains(&method) {
        Some(Cond::Atom(format!("method == {method}")))
    } else {
        at.bad_value(&format!(
            "method {method:?} is not one the language knows ({})",
            METHODS.join(", ")
        ));
        None
    }
}

/// A header name the language accepts (an HTTP token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(d: Option<Dest>) -> Vec<(String, String)> {
        match d {
            Some(Dest::Split(parts)) => parts,
            other => vec![(format!("{other:?}"), String::new())],
        }
    }

    #[test]
    fn weights_scale_to_exactly_one_hundred_percent() {
        let b = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(r, w)| (r.to_string(), *w))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            split(destination(&b(&[("a", 50), ("b", 50)]))),
            vec![("a".into(), "50%".into()), ("b".into(), "50%".into())]
        );
        assert_eq!(
            split(destination(&b(&[("a", 1), ("b", 1), ("c", 1)]))),
            vec![
                ("a".into(), "33.334%".into()),
                ("b".into(), "33.333%".into()),
                ("c".into(), "33.333%".into())
            ]
        );
        assert_eq!(
            destination(&b(&[("a", 100), ("b", 0)])),
            Some(Dest::To("a".into()))
        );
        assert_eq!(destination(&b(&[("a", 0)])), None);
    }
}
