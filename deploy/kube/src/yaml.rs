//! Multi-document YAML in and out, with serde-saphyr (the YAML crate `kube` itself uses;
//! serde_yaml is unmaintained). Documents go through `serde_json::Value`; keys come out in
//! the order the `k8s-openapi` types write them, so the same objects always give the same
//! text.

use crate::error::KubeError;

/// Every non-empty document of `text`.
pub fn from_documents(text: &str, what: &str) -> Result<Vec<serde_json::Value>, KubeError> {
    serde_saphyr::from_multiple::<serde_json::Value>(text).map_err(|e| KubeError::YamlIn {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// `values` as YAML documents, each started with `---`.
pub fn to_documents(values: &[serde_json::Value]) -> Result<String, KubeError> {
    let mut out = String::new();
    for value in values {
        let text = serde_saphyr::to_string(value).map_err(|e| KubeError::YamlOut {
            what: describe(value),
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// `Kind namespace/name` of a document, for messages.
pub fn describe(value: &serde_json::Value) -> String {
    let kind = value["kind"].as_str().unwrap_or("object");
    let name = value["metadata"]["name"].as_str().unwrap_or("?");
    match value["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_documents() {
        let text = "a: 1\n---\n# a comment\nb: [x, y]\n---\n";
        let docs = from_documents(text, "input").unwrap();
        assert_eq!(docs.len(), 2);
        let out = to_documents(&docs).unwrap();
        assert_eq!(from_documents(&out, "output").unwrap(), docs);
        assert!(from_documents("a: [", "broken").is_err());
    }
}
