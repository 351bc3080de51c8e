//! A reader over the configuration document's JSON tree (meshtrace-core's
//! `Json`) that knows where it is: every error names the field's path
//! (`sampling.rules[2].route`).
//!
//! Hand-written rather than derived: serde's derived deserialisers, tracked
//! through serde_path_to_error, were about a quarter of the module's code, and
//! V8 compiles every function of a module when Envoy loads it, with memory
//! that follows the amount of code (bench/BUDGET.md, "Resident memory").
//!
//! The tree keeps an object's members in document order, duplicates included,
//! so that a field given twice is refused instead of the last one silently
//! winning (a map's keys, like `exporter.headers`, still take the last value).

use std::collections::BTreeMap;

pub use meshtrace_core::json::Json;

use super::{invalid, ConfigError};

/// Parses a document (serde_json's parser: its syntax errors, with line and
/// column, and its nesting limit).
pub fn parse(text: &str) -> Result<Json, ConfigError> {
    Json::parse(text.as_bytes()).map_err(|e| invalid("", e.to_string()))
}

/// A value in the document and its path there.
pub struct Node<'a> {
    value: &'a Json,
    path: String,
}

impl<'a> Node<'a> {
    /// The document itself; its path is empty.
    pub fn root(value: &'a Json) -> Node<'a> {
        Node {
            value,
            path: String::new(),
        }
    }

    /// A member of this object, at `path.name`.
    fn member(&self, name: &str, value: &'a Json) -> Node<'a> {
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        Node { value, path }
    }

    /// An error about this value.
    pub fn error(&self, reason: impl Into<String>) -> ConfigError {
        invalid(self.path.clone(), reason)
    }

    pub fn is_string(&self) -> bool {
        matches!(self.value, Json::String(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self.value, Json::Object(_))
    }

    /// "invalid type: {what this is}, expected {what}".
    pub fn expected(&self, what: &str) -> ConfigError {
        self.error(format!("invalid type: {}, expected {what}", self.value))
    }

    pub fn string(self) -> Result<String, ConfigError> {
        match self.value {
            Json::String(s) => Ok(s.clone()),
            _ => Err(self.expected("a string")),
        }
    }

    pub fn bool(self) -> Result<bool, ConfigError> {
        match self.value {
            Json::Bool(b) => Ok(*b),
            _ => Err(self.expected("a boolean")),
        }
    }

    pub fn f64(self) -> Result<f64, ConfigError> {
        match self.value {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
        .ok_or_else(|| self.expected("a number"))
    }

    pub fn u64(self) -> Result<u64, ConfigError> {
        self.integer()
    }

    pub fn usize(self) -> Result<usize, ConfigError> {
        let n = self.integer()?;
        usize::try_from(n).map_err(|_| self.error(format!("{n} is out of range 0..{}", usize::MAX)))
    }

    fn integer(&self) -> Result<u64, ConfigError> {
        match self.value {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| self.expected("a non-negative integer"))
    }

    /// One of a few names, e.g. an enum's variants.
    pub fn one_of<T: Copy>(self, names: &[(&str, T)]) -> Result<T, ConfigError> {
        let expected = || {
            let list: Vec<String> = names.iter().map(|(n, _)| format!("`{n}`")).collect();
            format!("one of {}", list.join(", "))
        };
        let Json::String(s) = self.value else {
            return Err(self.expected(&expected()));
        };
        match names.iter().find(|(n, _)| n == s) {
            Some((_, value)) => Ok(*value),
            None => Err(self.error(format!("unknown variant `{s}`, expected {}", expected()))),
        }
    }

    /// An array, each item read by `read` at `path[i]`.
    pub fn array<T>(
        self,
        read: impl Fn(Node<'a>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let Json::Array(items) = self.value else {
            return Err(self.expected("an array"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(read(Node {
                value: item,
                path: format!("{}[{i}]", self.path),
            })?);
        }
        Ok(out)
    }

    /// An object used as a map from names the document chooses (header
    /// names, tag names), each value read by `read` at `path.name`. A name
    /// given twice keeps the last value.
    pub fn map<T>(
        self,
        read: impl Fn(Node<'a>) -> Result<T, ConfigError>,
    ) -> Result<BTreeMap<String, T>, ConfigError> {
        let Json::Object(members) = self.value else {
            return Err(self.expected("an object"));
        };
        let mut map = BTreeMap::new();
        for (name, value) in members {
            map.insert(name.clone(), read(self.member(name, value))?);
        }
        Ok(map)
    }

    /// An object with a fixed set of fields: a field not in `fields`, or one
    /// given twice, is refused.
    pub fn object(self, fields: &'static [&'static str]) -> Result<Object<'a>, ConfigError> {
        let Json::Object(members) = self.value else {
            return Err(self.expected("an object"));
        };
        for (i, (name, value)) in members.iter().enumerate() {
            if !fields.contains(&name.as_str()) {
                let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                return Err(self.member(name, value).error(format!(
                    "unknown field `{name}`, expected one of {}",
                    list.join(", ")
                )));
            }
            if members.iter().take(i).any(|(earlier, _)| earlier == name) {
                return Err(self
                    .member(name, value)
                    .error(format!("duplicate field `{name}`")));
            }
        }
        Ok(Object {
            node: self,
            members,
        })
    }
}

/// An object whose fields have been checked against the known ones.
pub struct Object<'a> {
    node: Node<'a>,
    members: &'a [(String, Json)],
}

impl<'a> Object<'a> {
    fn get(&self, name: &str) -> Option<Node<'a>> {
        let (_, value) = self.members.iter().find(|(n, _)| n == name)?;
        Some(self.node.member(name, value))
    }

    /// A field that may be left out, read into `slot`, which holds its
    /// default. Given, it must be valid, `null` included.
    pub fn set<T>(
        &self,
        name: &str,
        slot: &mut T,
        read: impl FnOnce(Node<'a>) -> Result<T, ConfigError>,
    ) -> Result<(), ConfigError> {
        if let Some(node) = self.get(name) {
            *slot = read(node)?;
        }
        Ok(())
    }

    /// A field whose absence means something: left out or `null`, it is `None`.
    pub fn optional<T>(
        &self,
        name: &str,
        read: impl FnOnce(Node<'a>) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            Some(node) if !matches!(node.value, Json::Null) => read(node).map(Some),
            _ => Ok(None),
        }
    }

    /// A field that must be given.
    pub fn required<T>(
        &self,
        name: &str,
        read: impl FnOnce(Node<'a>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            Some(node) => read(node),
            None => Err(self.node.error(format!("missing field `{name}`"))),
        }
    }
}
