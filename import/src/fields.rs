//! Reading YAML mappings field by field so that nothing is dropped silently: every key of
//! a mapping must be taken by the translation; whatever is left when a [`Fields`] goes out
//! of scope is reported as an unknown field (`I0005`). Type mismatches are reported
//! (`I0004`) at the value, with the YAML path.

use std::cell::Cell;

use mesh_lang::ast::Span;

use crate::diag::{BAD_VALUE, Ctx, NOT_EXPRESSIBLE, UNKNOWN_FIELD};
use crate::yaml::{Node, Value};

/// A node, its YAML path and the object it belongs to.
#[derive(Clone)]
pub struct At<'a> {
    /// The node.
    pub node: &'a Node,
    /// Where the diagnostics about it point: the value, or the key of a mapping entry.
    pub span: Span,
    /// `spec.http[0].route`.
    pub path: String,
    /// Its object.
    pub ctx: &'a Ctx<'a>,
}

/// The field a mapping or a list hands out: an [`At`] of its own.
pub type Owned<'a> = At<'a>;

impl<'a> At<'a> {
    /// The root of an object: `node` at path `path`.
    pub fn root(node: &'a Node, path: &str, ctx: &'a Ctx<'a>) -> At<'a> {
        At {
            node,
            span: node.span,
            path: path.to_string(),
            ctx,
        }
    }

    /// Itself (so that fields and items read the same way).
    pub fn at(&self) -> &At<'a> {
        self
    }

    /// Reports that this field is not expressible in the language, saying why.
    pub fn not_expressible(&self, why: &str) {
        self.ctx.report(NOT_EXPRESSIBLE, self.span, &self.path, why);
    }

    /// Reports a value that cannot be imported, saying why.
    pub fn bad_value(&self, why: &str) {
        self.ctx.report(BAD_VALUE, self.node.span, &self.path, why);
    }

    /// The string this scalar holds, or a report.
    pub fn str(&self) -> Option<String> {
        let text = self.node.scalar_text();
        if text.is_none() {
            self.bad_value(&format!(
                "expected a string, found {}",
                self.node.value.kind()
            ));
        }
        text
    }

    /// The integer this scalar holds, or a report.
    pub fn int(&self) -> Option<i128> {
        match &self.node.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok().or_else(|| {
                self.bad_value(&format!("expected an integer, found {s:?}"));
                None
            }),
            other => {
                self.bad_value(&format!("expected an integer, found {}", other.kind()));
                None
            }
        }
    }

    /// The number this scalar holds, or a report.
    pub fn number(&self) -> Option<f64> {
        match &self.node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .or_else(|| {
                    self.bad_value(&format!("expected a number, found {s:?}"));
                    None
                }),
            other => {
                self.bad_value(&format!("expected a number, found {}", other.kind()));
                None
            }
        }
    }

    /// The boolean this scalar holds, or a report.
    pub fn bool(&self) -> Option<bool> {
        match &self.node.value {
            Value::Bool(b) => Some(*b),
            other => {
                self.bad_value(&format!("expected true or false, found {}", other.kind()));
                None
            }
        }
    }

    /// The items of a list (a null is an empty list), each with its path.
    pub fn items(&self) -> Vec<Owned<'a>> {
        match &self.node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, node)| Owned {
                    node,
                    span: node.span,
                    path: format!("{}[{i}]", self.path),
                    ctx: self.ctx,
                })
                .collect(),
            Value::Null => Vec::new(),
            other => {
                self.bad_value(&format!("expected a list, found {}", other.kind()));
                Vec::new()
            }
        }
    }

    /// The strings of a list of strings.
    pub fn strings(&self) -> Vec<(String, Owned<'a>)> {
        self.items()
            .into_iter()
            .filter_map(|item| item.at().str().map(|s| (s, item)))
            .collect()
    }

    /// The fields of a mapping (a null is an empty mapping), or a report.
    pub fn fields(&self) -> Option<Fields<'a>> {
        let entries = match &self.node.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            other => {
                self.bad_value(&format!("expected a mapping, found {}", other.kind()));
                return None;
            }
        };
        Some(Fields {
            ctx: self.ctx,
            path: self.path.to_string(),
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.scalar_text().unwrap_or_default(),
                    key_span: k.span,
                    value: v,
                    taken: Cell::new(false),
                })
                .collect(),
        })
    }

    /// A string-to-string mapping (labels), in source order.
    pub fn string_map(&self) -> Vec<(String, String)> {
        let Some(fields) = self.fields() else {
            return Vec::new();
        };
        let keys: Vec<String> = fields.entries.iter().map(|e| e.key.clone()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let value = fields.take(&k)?;
                let v = value.at().str()?;
                Some((k, v))
            })
            .collect()
    }
}

struct Entry<'a> {
    key: String,
    key_span: Span,
    value: &'a Node,
    taken: Cell<bool>,
}

/// The fields of one mapping; those never taken are reported when it is dropped.
pub struct Fields<'a> {
    ctx: &'a Ctx<'a>,
    path: String,
    entries: Vec<Entry<'a>>,
}

impl<'a> Fields<'a> {
    /// The field `key`, marked as handled.
    pub fn take(&self, key: &str) -> Option<Owned<'a>> {
        let entry = self.entries.iter().find(|e| e.key == key)?;
        entry.taken.set(true);
        Some(Owned {
            node: entry.value,
            span: entry.key_span.to(entry.value.span),
            path: if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            },
            ctx: self.ctx,
        })
    }

    /// The string field `key`.
    pub fn str(&self, key: &str) -> Option<String> {
        self.take(key)?.at().str()
    }

    /// Reports the field `key`, when present, as not expressible, saying why.
    pub fn not_expressible(&self, key: &str, why: &str) {
        if let Some(field) = self.take(key) {
            field.at().not_expressible(why);
        }
    }

    /// Takes the field `key` as one that means nothing to the mesh (metadata).
    pub fn skip(&self, key: &str) {
        let _ = self.take(key);
    }
}

impl Drop for Fields<'_> {
    fn drop(&mut self) {
        for entry in self.entries.iter().filter(|e| !e.taken.get()) {
            let path = if self.path.is_empty() {
                entry.key.clone()
            } else {
                format!("{}.{}", self.path, entry.key)
            };
            self.ctx.report(
                UNKNOWN_FIELD,
                entry.key_span,
                &path,
                "unknown field: the import does not know it",
            );
        }
    }
}
