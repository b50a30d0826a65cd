//! `--format sarif`: SARIF 2.1.0, as GitHub code scanning accepts it — one run, the catalog
//! as the tool's rules (with help text), one result per finding.

use serde_json::{Value, json};

use crate::diag::{CATALOG, Finding};
use crate::load::Loaded;

/// The SARIF log for `findings`.
pub fn sarif(loaded: &Loaded, findings: &[Finding]) -> String {
    let rules: Vec<Value> = CATALOG
        .iter()
        .map(|(code, title, help)| {
            let level = if code.starts_with('E') { "error" } else { "warning" };
            json!({
                "id": code,
                "name": rule_name(title),
                "shortDescription": { "text": title },
                "fullDescription": { "text": format!("{code}: {title}") },
                "help": { "text": help, "markdown": format!("**{code}: {title}.** {help} See `compiler/DIAGNOSTICS.md`.") },
                "defaultConfiguration": { "level": level },
            })
        })
        .collect();
    let results: Vec<Value> = super::locate(loaded, findings)
        .iter()
        .map(|l| {
            let d = &l.finding.diagnostic;
            let level = match d.severity {
                mesh_lang::Severity::Error => "error",
                mesh_lang::Severity::Warning => "warning",
            };
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push_str(&format!("\nhelp: {help}"));
            }
            let related: Vec<Value> = l
                .labels
                .iter()
                .enumerate()
                .map(|(i, (text, file, (line, column)))| {
                    json!({
                        "id": i,
                        "message": { "text": text },
                        "physicalLocation": {
                            "artifactLocation": { "uri": uri(file) },
                            "region": { "startLine": line, "startColumn": column },
                        },
                    })
                })
                .collect();
            json!({
                "ruleId": d.code,
                "ruleIndex": CATALOG.iter().position(|(c, _, _)| *c == d.code),
                "level": level,
                "message": { "text": message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(l.file) },
                        "region": {
                            "startLine": l.start.0,
                            "startColumn": l.start.1,
                            "endLine": l.end.0,
                            "endColumn": l.end.1,
                        },
                    },
                }],
                "relatedLocations": related,
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "meshc",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}

/// `split weights do not add up to 100%` → `SplitWeightsDoNotAddUpTo100`.
fn rule_name(title: &str) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect()
}

/// A relative URI for a path as shown (forward slashes, no leading `./`).
fn uri(path: &str) -> String {
    path.trim_start_matches("./").replace('\\', "/")
}
