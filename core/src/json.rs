//! A JSON document as a tree, read through serde_json's parser without
//! derived deserialisers.
//!
//! The filter reads its configuration and the remote sampling answers with
//! it. Derived deserialisers cost code, and their type errors
//! ("invalid type: floating point `1.5`, expected ...") bring core's float
//! formatting into the module (about 16 KB, with a 5 KB function that V8
//! compiles at load: bench/BUDGET.md, "Resident memory"). This tree is built
//! through `deserialize_any`, which never makes such an error; its readers
//! say what they expected themselves.
//!
//! An object keeps its members in document order, duplicates included.

use core::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use crate::decimal::Decimal;

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    /// Members in document order, a repeated name kept twice.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a document (serde_json's parser: its syntax errors, with line
    /// and column, and its nesting limit).
    pub fn parse(bytes: &[u8]) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// An object's first member called `name`; `None` for other values.
    pub fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A number's value (`None` for anything else).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }
}

/// What a value is, for "invalid type: {found}, expected ...".
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "boolean `{b}`"),
            Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => write!(f, "integer `{u}`"),
                (_, Some(i), _) => write!(f, "integer `{i}`"),
                // serde's way: a whole float keeps its `.0`. `Decimal`, not
                // serde_json's `Display`, which brings a float formatter.
                (_, _, x) => {
                    let x = x.unwrap_or_default();
                    let point = if x.fract() == 0.0 && x.abs() < 1e15 {
                        ".0"
                    } else {
                        ""
                    };
                    write!(f, "floating point `{}{point}`", Decimal(x))
                }
            },
            Json::String(s) => write!(f, "string {s:?}"),
            Json::Array(_) => f.write_str("an array"),
            Json::Object(_) => f.write_str("an object"),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        // JSON has no NaN or infinity: serde_json refuses numbers that overflow.
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((name, value)) = map.next_entry()? {
            members.push((name, value));
        }
        Ok(Json::Object(members))
    }
}
