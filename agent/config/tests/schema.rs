//! The checked-in JSON Schema (`workload-config.schema.json`) is exactly what
//! `mesh_config::json_schema()` generates from the config types, and it describes the
//! contract: a JSON Schema document titled `WorkloadConfig` requiring every top-level
//! section. Run with `UPDATE_SCHEMA=1` to rewrite the file after changing the types.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::PathBuf;

use serde_json::Value;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workload-config.schema.json")
}

#[test]
fn checked_in_schema_matches_the_types() {
    let generated = mesh_config::json_schema();
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nregenerate it with: \
             UPDATE_SCHEMA=1 cargo test -p mesh-config --test schema",
            path.display()
        )
    });
    assert!(
        checked_in == generated,
        "{} is out of date with the types in agent/config/src/schema.rs\n\
         regenerate it with: UPDATE_SCHEMA=1 cargo test -p mesh-config --test schema",
        path.display()
    );
}

#[test]
fn schema_is_a_json_schema_for_workload_configs() {
    let schema: Value = serde_json::from_str(&mesh_config::json_schema()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "WorkloadConfig");
    assert_eq!(schema["type"], "object");
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        ["inbound", "mesh", "outbound", "version", "workload"]
    );
    // Unknown fields are refused by the agent, so the schema says so too.
    assert_eq!(schema["additionalProperties"], false);
    let properties = schema["properties"].as_object().unwrap();
    // The five required sections and the optional gateway.
    assert_eq!(properties.len(), 6, "{properties:#?}");
    // The referenced definitions are there: the authorization kinds and the rules.
    let defs = schema["$defs"].as_object().unwrap();
    for name in [
        "Authz",
        "Pattern",
        "OutboundService",
        "RouteRule",
        "Match",
        "Gateway",
        "Telemetry",
    ] {
        assert!(defs.contains_key(name), "no definition of `{name}`");
    }
}

#[test]
fn the_checked_in_file_parses_as_json() {
    let text = std::fs::read_to_string(schema_path()).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema["title"], "WorkloadConfig");
    assert!(text.ends_with("}\n"), "the file ends with one newline");
}
