//! Server-side apply over JSON values: which fields a manager sets, conflicts with the
//! fields other managers own, and merging an applied configuration into a live object.
//! Lists are atomic (owned and replaced whole), which is all the tests need.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A field path (`["data", "config.json"]`).
pub type Field = Vec<String>;

/// Fields that name an object rather than configure it: never owned, never conflicting.
fn identifying(path: &[String]) -> bool {
    matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["apiVersion"] | ["kind"] | ["metadata", "name"] | ["metadata", "namespace"]
    )
}

/// The leaf fields `value` sets.
pub fn fields(value: &Value) -> BTreeSet<Field> {
    let mut out = BTreeSet::new();
    collect(value, &mut Vec::new(), &mut out);
    out.retain(|f| !identifying(f));
    out
}

fn collect(value: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Field>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                collect(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The value at `path`.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Removes the field at `path`, and the objects it leaves empty.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(map)) = parents.iter().try_fold(&mut *value, |v, k| v.get_mut(k)) {
        map.remove(last);
    }
    if !parents.is_empty()
        && get(value, parents).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        remove(value, parents);
    }
}

/// Merges `applied` into `base`: objects field by field, everything else replaced.
pub fn merge(base: &mut Value, applied: &Value) {
    match (base, applied) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in a {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (base, applied) => *base = applied.clone(),
    }
}

/// `.data.config.json` style, as the API server prints field paths.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_merge_and_remove() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let f = fields(&v);
        assert_eq!(f.len(), 2);
        let mut base = json!({"data": {"k": "old", "other": "keep"}});
        merge(&mut base, &json!({"data": {"k": "new"}}));
        assert_eq!(base, json!({"data": {"k": "new", "other": "keep"}}));
        remove(&mut base, &["data".into(), "k".into()]);
        remove(&mut base, &["data".into(), "other".into()]);
        assert_eq!(base, json!({}));
        assert_eq!(dotted(&["data".into(), "a.json".into()]), ".data.a.json");
    }
}
