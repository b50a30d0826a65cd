//! Label selectors as list and watch take them: `k=v`, `k==v`, `k!=v` and `k`, joined by
//! commas.

use serde_json::Value;

/// Whether `object`'s labels satisfy `selector` (an empty selector matches everything).
pub fn matches(selector: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels[k.trim()].as_str() != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels[k.trim()].as_str() == Some(v.trim())
            } else {
                labels.get(term).is_some()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_labels() {
        let o = serde_json::json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        assert!(matches("", &o));
        assert!(matches("a=1,b==2", &o));
        assert!(matches("a, c!=3", &o));
        assert!(!matches("a=2", &o));
        assert!(!matches("c", &o));
    }
}
