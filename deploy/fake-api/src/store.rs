//! The fake server's state: objects with their field managers, the event history that
//! watches replay, and the requests received.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::apply::{self, Field};
use crate::path::Target;
use crate::selector;

/// One request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string (without `?`).
    pub query: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
}

/// A change, as a watch reports it.
#[derive(Clone, Debug)]
pub struct Event {
    /// The resourceVersion it made.
    pub rv: u64,
    /// Its collection key.
    pub collection: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (before it, for `DELETED`).
    pub object: Value,
}

struct Stored {
    object: Value,
    managers: BTreeMap<String, BTreeSet<Field>>,
}

type Key = (String, Option<String>, String);

/// Everything the server knows.
#[derive(Default)]
pub struct Store {
    /// The latest resourceVersion.
    pub rv: u64,
    /// Watches from below this get `410 Gone`.
    pub compacted: u64,
    /// Whether every request fails with 503.
    pub down: bool,
    /// Bumped to close every open watch.
    pub watch_epoch: u64,
    /// Requests received.
    pub requests: Vec<Recorded>,
    /// History of changes.
    pub events: Vec<Event>,
    objects: BTreeMap<Key, Stored>,
}

/// An API `Status` object.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn key(target: &Target) -> Key {
    (
        target.collection(),
        target.namespace.clone(),
        target.name.clone().unwrap_or_default(),
    )
}

/// The object without what the server maintains, to tell real changes from no-ops.
fn content(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "resourceVersion",
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(field);
        }
    }
    object
}

impl Store {
    /// An object.
    pub fn get(&self, target: &Target) -> Option<&Value> {
        self.objects.get(&key(target)).map(|s| &s.object)
    }

    /// Objects of the target's collection (in its namespace, if any) matching `selector`.
    pub fn list(&self, target: &Target, selector: &str) -> Vec<Value> {
        let collection = target.collection();
        self.objects
            .iter()
            .filter(|((c, ns, _), _)| {
                *c == collection && (target.namespace.is_none() || *ns == target.namespace)
            })
            .map(|(_, s)| s.object.clone())
            .filter(|o| selector::matches(selector, o))
            .collect()
    }

    /// Every object of `kind`.
    pub fn objects_of_kind(&self, kind: &str) -> Vec<Value> {
        self.objects
            .values()
            .map(|s| s.object.clone())
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    /// Changes after `rv` in the target's collection and namespace matching `selector`.
    pub fn events_since(&self, rv: u64, target: &Target, selector: &str) -> Vec<Event> {
        let collection = target.collection();
        self.events
            .iter()
            .filter(|e| e.rv > rv && e.collection == collection)
            .filter(|e| {
                target.namespace.is_none()
                    || e.object["metadata"]["namespace"].as_str() == target.namespace.as_deref()
            })
            .filter(|e| selector::matches(selector, &e.object))
            .cloned()
            .collect()
    }

    fn record(&mut self, target: &Target, kind: &'static str, object: Value) {
        self.events.push(Event {
            rv: self.rv,
            collection: target.collection(),
            kind,
            object,
        });
    }

    fn stamp(&mut self, target: &Target, object: &mut Value, created: bool) {
        self.rv += 1;
        let rv = self.rv;
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        if let Some(ns) = &target.namespace {
            meta["namespace"] = json!(ns);
        }
        if created || meta.get("uid").is_none() {
            meta["uid"] = json!(format!("uid-{rv}"));
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
    }

    /// Creates or replaces an object; returns its resourceVersion.
    pub fn put(&mut self, target: &Target, mut object: Value) -> u64 {
        let k = key(target);
        let created = !self.objects.contains_key(&k);
        self.stamp(target, &mut object, created);
        let managers = self
            .objects
            .remove(&k)
            .map(|s| s.managers)
            .unwrap_or_default();
        self.objects.insert(
            k,
            Stored {
                object: object.clone(),
                managers,
            },
        );
        self.record(target, if created { "ADDED" } else { "MODIFIED" }, object);
        self.rv
    }

    /// Deletes an object; returns it.
    pub fn delete(&mut self, target: &Target) -> Option<Value> {
        let stored = self.objects.remove(&key(target))?;
        self.rv += 1;
        let mut object = stored.object;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(target, "DELETED", object.clone());
        Some(object)
    }

    /// Server-side apply of `applied` by `manager`: the new object and whether it was
    /// created, or an HTTP status and a `Status` object.
    pub fn apply(
        &mut self,
        target: &Target,
        mut applied: Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<(Value, bool), (u16, Value)> {
        if applied["metadata"]["name"].as_str() != target.name.as_deref() {
            return Err((
                400,
                status(
                    400,
                    "BadRequest",
                    "the name in the body does not match the URL",
                ),
            ));
        }
        if let Some(ns) = &target.namespace {
            applied["metadata"]["namespace"] = json!(ns);
        }
        let k = key(target);
        let new_fields = apply::fields(&applied);
        let (mut object, mut managers, created) = match self.objects.get(&k) {
            Some(s) => (s.object.clone(), s.managers.clone(), false),
            None => (json!({}), BTreeMap::new(), true),
        };
        let mut conflicts = Vec::new();
        for (other, owned) in managers.iter_mut().filter(|(m, _)| m.as_str() != manager) {
            let clashing: Vec<Field> = owned
                .iter()
                .filter(|f| new_fields.contains(*f))
                .filter(|f| apply::get(&object, f) != apply::get(&applied, f))
                .cloned()
                .collect();
            if force {
                for f in &clashing {
                    owned.remove(f);
                }
            } else {
                conflicts.extend(clashing.into_iter().map(|f| (other.clone(), f)));
            }
        }
        if !conflicts.is_empty() {
            let n = conflicts.len();
            let text: Vec<String> = conflicts
                .iter()
                .map(|(m, f)| format!("conflict with \"{m}\" using v1: {}", apply::dotted(f)))
                .collect();
            let mut body = status(
                409,
                "Conflict",
                &format!(
                    "Apply failed with {n} conflict{}: {}",
                    if n == 1 { "" } else { "s" },
                    text.join(", ")
                ),
            );
            body["details"] = json!({
                "name": target.name,
                "kind": target.plural,
                "causes": conflicts.iter().map(|(m, f)| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{m}\" using v1"),
                    "field": apply::dotted(f),
                })).collect::<Vec<_>>(),
            });
            return Err((409, body));
        }
        let previous = managers.remove(manager).unwrap_or_default();
        let owned_by_others: BTreeSet<&Field> = managers.values().flatten().collect();
        for field in previous.difference(&new_fields) {
            if !owned_by_others.contains(field) {
                apply::remove(&mut object, field);
            }
        }
        apply::merge(&mut object, &applied);
        managers.insert(manager.to_string(), new_fields);
        let unchanged = self
            .objects
            .get(&k)
            .is_some_and(|s| content(&s.object) == content(&object) && s.managers == managers);
        if unchanged || dry_run {
            let old = self.objects.get(&k).map(|s| s.object.clone());
            return Ok((
                if unchanged {
                    old.unwrap_or(object)
                } else {
                    object
                },
                created,
            ));
        }
        self.stamp(target, &mut object, created);
        object["metadata"]["managedFields"] = json!(managers
            .keys()
            .map(|m| json!({"manager": m, "operation": "Apply", "apiVersion": target.api_version, "fieldsType": "FieldsV1", "fieldsV1": {}}))
            .collect::<Vec<_>>());
        self.objects.insert(
            k,
            Stored {
                object: object.clone(),
                managers,
            },
        );
        self.record(
            target,
            if created { "ADDED" } else { "MODIFIED" },
            object.clone(),
        );
        Ok((object, created))
    }
}
