//! A YAML document as a tree whose every node knows its byte span in the source, so that
//! each diagnostic can point at the field it is about. serde-saphyr parses (multi-document
//! streams, anchors and aliases, with budgets against alias bombs); this module only keeps
//! what it reads in an order-preserving, spanned shape.

use std::fmt;

use mesh_lang::ast::Span;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Its bytes in the source text (empty when the parser did not say).
    pub span: Span,
}

/// The value of a node; mappings keep their source order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What kind of YAML value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The string this node holds, if it is a scalar: numbers and booleans are spelled as
    /// YAML would (Kubernetes names and label values are often written unquoted).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// Parses a stream of YAML documents (`---`-separated; empty documents are skipped).
pub fn parse_stream(text: &str) -> Result<Vec<Node>, YamlError> {
    serde_saphyr::from_multiple::<Node>(text).map_err(|err| {
        let offset = err
            .location()
            .and_then(|loc| {
                loc.span()
                    .byte_offset()
                    .and_then(|o| usize::try_from(o).ok())
                    .or_else(|| offset_of(text, loc.line(), loc.column()))
            })
            .unwrap_or(0)
            .min(text.len());
        YamlError {
            message: first_line(&err.to_string()),
            offset,
        }
    })
}

/// The byte offset of 1-based `line` and character `column` in `text`.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = usize::try_from(column).ok()?.saturating_sub(1);
    let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
    let rest = text.get(start..)?;
    let within = rest
        .char_indices()
        .take_while(|(_, c)| *c != '\n')
        .nth(column)
        .map_or_else(|| rest.find('\n').unwrap_or(rest.len()), |(i, _)| i);
    Some(start + within)
}

/// The parser's message without the source excerpt it appends (the diagnostic shows one).
fn first_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .unwrap_or("invalid YAML")
        .to_string()
}

/// A stream that is not YAML.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What the parser said.
    pub message: String,
    /// Where, in bytes.
    pub offset: usize,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let span = spanned.referenced.span();
        let start = span.byte_offset().and_then(|o| usize::try_from(o).ok());
        let len = span.byte_len().and_then(|l| usize::try_from(l).ok());
        let span = match (start, len) {
            (Some(start), Some(len)) => Span::new(start, start + len),
            (Some(start), None) => Span::new(start, start),
            _ => Span::new(0, 0),
        };
        Ok(Node {
            value: spanned.value,
            span,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use super::*;

    #[test]
    fn nodes_know_their_bytes_across_documents() {
        let text = "a: 1\n---\nkind: VirtualService\nspec:\n  hosts: [reviews]\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 2);
        let Value::Map(entries) = &docs[1].value else {
            panic!("{:?}", docs[1])
        };
        let (key, value) = &entries[0];
        assert_eq!(&text[key.span.start..key.span.end], "kind");
        assert_eq!(&text[value.span.start..value.span.end], "VirtualService");
        let Value::Map(spec) = &entries[1].1.value else {
            panic!()
        };
        let Value::Seq(hosts) = &spec[0].1.value else {
            panic!()
        };
        assert_eq!(&text[hosts[0].span.start..hosts[0].span.end], "reviews");
    }

    #[test]
    fn malformed_yaml_is_an_error_with_a_position() {
        let text = "a: [1, 2\nb: c\n";
        let err = parse_stream(text).unwrap_err();
        assert_eq!(&text[err.offset..err.offset + 1], ":", "{err:?}");
    }
}
