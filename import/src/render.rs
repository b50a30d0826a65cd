//! Printing the imported [`Mesh`] as `.mesh` text. The layout here only has to parse: the
//! result goes through the project's formatter ([`mesh_lang::format_source`]), so that
//! what `meshc import` writes is exactly what `meshc fmt` would make of it.

use std::fmt::Write as _;

use crate::model::{Dest, Mesh, Namespace, Service};

/// The mesh as unformatted `.mesh` text, headed by `header` comment lines.
pub fn render(mesh: &Mesh, header: &[String]) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "// {line}");
    }
    if let Some(why) = &mesh.permissive {
        let _ = writeln!(out, "\nmesh imported {{\n// {why}\nmtls permissive\n}}");
    }
    for (name, ns) in &mesh.namespaces {
        if name == "default" {
            namespace_items(&mut out, ns);
        }
    }
    for (name, ns) in &mesh.namespaces {
        if name != "default" {
            let _ = writeln!(out, "\nnamespace {name} {{");
            namespace_items(&mut out, ns);
            out.push_str("}\n");
        }
    }
    out
}

fn comments(out: &mut String, lines: &[String]) {
    for line in lines {
        let _ = writeln!(out, "// {line}");
    }
}

fn namespace_items(out: &mut String, ns: &Namespace) {
    for (name, service) in &ns.services {
        out.push('\n');
        service_item(out, name, service);
    }
    for (name, route) in &ns.routes {
        out.push('\n');
        let _ = writeln!(out, "route {name} {{");
        comments(out, &route.comments);
        for rule in &route.rules {
            let when = rule
                .when
                .as_ref()
                .map(|c| format!(" when {}", c.text()))
                .unwrap_or_default();
            let _ = writeln!(out, "rule {}{when} {{", rule.name);
            let _ = writeln!(out, "// {}", rule.comment);
            match &rule.dest {
                Dest::To(r) => {
                    let _ = writeln!(out, "to {r}");
                }
                Dest::Split(parts) => {
                    out.push_str("split {\n");
                    for (r, p) in parts {
                        let _ = writeln!(out, "{r} {p}");
                    }
                    out.push_str("}\n");
                }
            }
            for member in &rule.members {
                let _ = writeln!(out, "{member}");
            }
            out.push_str("}\n");
        }
        out.push_str("}\n");
    }
    for (name, policy) in &ns.policies {
        out.push('\n');
        let _ = writeln!(out, "policy {name} {{");
        comments(out, &policy.comments);
        for member in &policy.members {
            let _ = writeln!(out, "{member}");
        }
        out.push_str("}\n");
    }
}

fn service_item(out: &mut String, name: &str, service: &Service) {
    let _ = writeln!(out, "service {name} {{");
    comments(out, &service.comments);
    for (port, proto) in &service.ports {
        let _ = writeln!(out, "port {proto} {port}");
    }
    if !service.labels.is_empty() {
        let labels: Vec<String> = service
            .labels
            .iter()
            .map(|(k, v)| format!("{k} = {}", crate::lit::string(v)))
            .collect();
        let _ = writeln!(out, "labels {{ {} }}", labels.join(", "));
    }
    if let Some(identity) = &service.identity {
        let _ = writeln!(out, "identity {}", crate::lit::string(identity));
    }
    for subset in &service.subsets {
        let labels: Vec<String> = subset
            .labels
            .iter()
            .map(|(k, v)| format!("{k} = {}", crate::lit::string(v)))
            .collect();
        let _ = writeln!(out, "subset {} {{ {} }}", subset.name, labels.join(", "));
    }
    if let Some(balance) = service.balance {
        let _ = writeln!(out, "balance {balance}");
    }
    if !service.limits.is_empty() {
        let members: Vec<String> = service
            .limits
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "limits {{ {} }}", members.join("  "));
    }
    if let Some(outlier) = &service.outlier {
        let members: Vec<String> = outlier.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "outlier {{ {} }}", members.join("  "));
    }
    out.push_str("}\n");
}
