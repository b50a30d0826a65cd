//! Services (LANGUAGE.md §4, §10): ports, identity, labels, subsets, balancer, circuit
//! breaking and outlier ejection.

use std::collections::BTreeMap;

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, Label, ServiceMember, Span};

use crate::diag::DUPLICATE;
use crate::ir::{Balance, Port, Protocol, Service, Subset};
use crate::resolve::Decl;

use super::{Cx, resilience};

pub fn lower(cx: &mut Cx<'_>, decl: &Decl<'_, ast::Service>) -> Service {
    let node = decl.node;
    let mut service = Service {
        namespace: decl.namespace.to_string(),
        name: node.name.name.clone(),
        doc: decl.item.doc.clone(),
        origin: decl.origin(),
        name_origin: cx.origin(node.name.span),
        ports: Vec::new(),
        identity: node.name.name.clone(),
        labels: BTreeMap::from([("app".to_string(), node.name.name.clone())]),
        subsets: Vec::new(),
        balance: Balance::RoundRobin,
        route: None,
        policy: None,
        limits: None,
        outlier: None,
    };
    let mut limits_span: Option<Span> = None;
    let mut outlier_span: Option<Span> = None;
    let mut port_spans: Vec<(u16, Span)> = Vec::new();
    let mut subset_spans: Vec<(String, Span, BTreeMap<String, String>)> = Vec::new();
    let mut seen_labels = false;
    for member in &node.members {
        match &member.node {
            ServiceMember::Port { protocol, number } => {
                let protocol = match protocol {
                    None => Some(Protocol::Http),
                    Some(p) => cx.vocabulary(
                        p,
                        "a protocol",
                        &[
                            ("http", Protocol::Http),
                            ("http2", Protocol::Http2),
                            ("grpc", Protocol::Grpc),
                            ("tcp", Protocol::Tcp),
                        ],
                    ),
                };
                let number = cx.int_in(number, 1, 65535, "port").map(|n| n as u16);
                if let Some(n) = number {
                    if let Some((_, first)) = port_spans.iter().find(|(p, _)| *p == n) {
                        let first = *first;
                        cx.push(
                            Diagnostic::error(
                                DUPLICATE,
                                format!("port {n} is declared twice"),
                                member.span,
                                "declared again here",
                            )
                            .with_label(first, "first declared here")
                            .with_help("a service listens once on each port: remove one"),
                        );
                        continue;
                    }
                    port_spans.push((n, member.span));
                }
                if let (Some(protocol), Some(number)) = (protocol, number) {
                    service.ports.push(Port { protocol, number });
                }
            }
            ServiceMember::Identity(s) => {
                if is_dns_name(&s.value) {
                    service.identity = s.value.clone();
                } else {
                    cx.out_of_range(
                        format!("`{}` is not a valid service account name", s.value),
                        s.span,
                        "invalid identity",
                        "a Kubernetes service account name: lower-case letters, digits, `-` and `.`, as in `bookinfo-productpage`",
                    );
                }
            }
            ServiceMember::Labels(labels) => {
                if seen_labels {
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            "`labels` is declared twice",
                            member.span,
                            "second `labels`",
                        )
                        .with_help("put every label in one `labels { ... }` block"),
                    );
                    continue;
                }
                seen_labels = true;
                service.labels = label_map(cx, labels);
            }
            ServiceMember::Subset(subset) => {
                let labels = label_map(cx, &subset.labels);
                if let Some((_, first, _)) =
                    subset_spans.iter().find(|(n, _, _)| *n == subset.name.name)
                {
                    let first = *first;
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            format!("subset `{}` is declared twice", subset.name.name),
                            subset.name.span,
                            "declared again here",
                        )
                        .with_label(first, "first declared here")
                        .with_help("rename one of the subsets"),
                    );
                    continue;
                }
                if let Some((other, first, _)) = subset_spans.iter().find(|(_, _, l)| *l == labels)
                {
                    let (other, first) = (other.clone(), *first);
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            format!("subsets `{other}` and `{}` select the same endpoints", subset.name.name),
                            subset.name.span,
                            "same labels as another subset",
                        )
                        .with_label(first, format!("`{other}` has the same labels"))
                        .with_help("give each subset labels that tell its endpoints apart, such as `version = \"v2\"`"),
                    );
                    continue;
                }
                subset_spans.push((subset.name.name.clone(), subset.name.span, labels.clone()));
                service.subsets.push(Subset {
                    name: subset.name.name.clone(),
                    doc: subset.doc.clone(),
                    labels,
                    origin: cx.origin(member.span),
                });
            }
            ServiceMember::Balance(b) => {
                let words = [
                    ("round_robin", Balance::RoundRobin),
                    ("least_request", Balance::LeastRequest),
                    ("ewma", Balance::Ewma),
                    ("random", Balance::Random),
                ];
                if let Some(balance) = cx.vocabulary(b, "a balancer", &words) {
                    service.balance = balance;
                }
            }
            ServiceMember::Limits(members) => {
                if once(cx, "limits", member.span, &mut limits_span) {
                    service.limits = Some(resilience::limits(cx, members));
                }
            }
            ServiceMember::Outlier(members) => {
                if once(cx, "outlier", member.span, &mut outlier_span) {
                    service.outlier = Some(resilience::outlier(cx, members));
                }
            }
            ServiceMember::Error => {}
        }
    }
    service
}

/// Whether the block `name` at `span` is the service's first; `E0003` at both otherwise.
fn once(cx: &mut Cx<'_>, name: &str, span: Span, first: &mut Option<Span>) -> bool {
    if let Some(first) = *first {
        let header = Span::new(span.start, span.start + name.len());
        cx.push(
            Diagnostic::error(
                DUPLICATE,
                format!("`{name}` is declared twice"),
                header,
                format!("second `{name}`"),
            )
            .with_label(
                Span::new(first.start, first.start + name.len()),
                format!("first `{name}`"),
            )
            .with_help(format!("put every member in one `{name} {{ ... }}` block")),
        );
        return false;
    }
    *first = Some(span);
    true
}

/// A label map; a key given twice is `E0003`.
fn label_map(cx: &mut Cx<'_>, labels: &[Label]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut spans: BTreeMap<&str, Span> = BTreeMap::new();
    for label in labels {
        if let Some(first) = spans.get(label.key.name.as_str()) {
            cx.push(
                Diagnostic::error(
                    DUPLICATE,
                    format!("label `{}` is given twice", label.key.name),
                    label.key.span,
                    "given again here",
                )
                .with_label(*first, "first given here"),
            );
            continue;
        }
        spans.insert(&label.key.name, label.key.span);
        map.insert(label.key.name.clone(), label.value.value.clone());
    }
    map
}

/// An RFC 1123 subdomain: what Kubernetes accepts as a service account name.
pub(super) fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}
