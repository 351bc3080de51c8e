//! Several proxy properties in one hostcall.
//!
//! Every hostcall that returns data costs Envoy a call back into the module
//! to allocate the result; in a sidecar's profile a property read is about
//! 12,000 instructions, and a finished span needs eight or nine of them.
//! Envoy's Wasm host also evaluates CEL expressions for a module (the
//! `expr_create` and `expr_evaluate` foreign functions), so a batch of
//! properties becomes one CEL list, compiled once and evaluated in one call
//! (bench/hostcall_costs.py prices both). Each element is guarded
//! (`'code' in response ? response['code'] : ''`) so that a missing property
//! reads as empty, which callers take as absent, instead of failing the list.
//! A guard costs Envoy about 2,000 instructions (its lookup runs twice), so
//! the properties Envoy computes for every stream ([`ALWAYS`]) are read
//! without one.
//!
//! Envoy 1.40 returns a list as proxy-wasm pairs whose first halves are the
//! elements, each serialized as `get_property` would (an integer as eight
//! little-endian bytes); older Envoys returned a `google.protobuf.ListValue`
//! (integers as doubles), which is read too. When the host has no CEL
//! (another proxy, or an Envoy built without it), or an evaluation fails,
//! the batch is read one property at a time.

use std::cell::RefCell;

use proxy_wasm::hostcalls;

/// `google.protobuf.ListValue`, as far as the batch needs it.
#[derive(Clone, PartialEq, prost::Message)]
struct ListValue {
    #[prost(message, repeated, tag = "1")]
    values: Vec<ProtoValue>,
}

/// `google.protobuf.Value`: null, number, string or bool.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoValue {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

/// Properties Envoy's CEL context has for every stream once it ends: byte
/// counters, the response flags, the attempt count (0 without an upstream) and
/// the downstream peer's address. They are read without a guard: a SERVER
/// span's list of eight cost 51,900 instructions guarded against 36,200
/// unguarded (`bench/hostcall_costs.py`). Were one missing after all, the
/// list would fail and the batch be read one property at a time, as on a
/// host without CEL: slower, still right.
pub const ALWAYS: [&[&str]; 5] = [
    &["response", "flags"],
    &["response", "size"],
    &["request", "size"],
    &["source", "address"],
    &["upstream", "request_attempt_count"],
];

/// The CEL list reading `paths` in order; a missing property is `''`.
pub fn expression(paths: &[&[&str]]) -> String {
    let mut out = String::from("[");
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let Some((root, fields)) = path.split_first() else {
            out.push_str("''");
            continue;
        };
        // `'a' in root && 'b' in root['a']`, then `root['a']['b']`.
        let mut guard = String::new();
        let mut value = String::from(*root);
        for field in fields {
            if !guard.is_empty() {
                guard.push_str(" && ");
            }
            guard.push_str(&quoted(field));
            guard.push_str(" in ");
            guard.push_str(&value);
            value.push('[');
            value.push_str(&quoted(field));
            value.push(']');
        }
        if guard.is_empty() || ALWAYS.contains(path) {
            out.push_str(&value);
        } else {
            out.push_str(&format!("({guard}) ? {value} : ''"));
        }
    }
    out.push(']');
    out
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The values of an evaluated list as `get_property` bytes, `None` for an
/// empty one; `None` when the bytes are not a list of `n` values.
pub fn decode(bytes: &[u8], n: usize) -> Option<Vec<Option<Vec<u8>>>> {
    pairs(bytes, n).or_else(|| list_value(bytes, n))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

/// Proxy-wasm pairs: the count, the sizes of each pair's halves, then the
/// halves, each followed by a NUL.
fn pairs(bytes: &[u8], n: usize) -> Option<Vec<Option<Vec<u8>>>> {
    if u32_at(bytes, 0)? != n {
        return None;
    }
    let mut data = 4 + n * 8;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let first = u32_at(bytes, 4 + i * 8)?;
        let second = u32_at(bytes, 8 + i * 8)?;
        let value = bytes.get(data..data + first)?;
        out.push((!value.is_empty()).then(|| value.to_vec()));
        data += first + 1 + second + 1;
    }
    (data == bytes.len()).then_some(out)
}

/// `google.protobuf.ListValue`: integers as doubles, strings as strings
/// (older Envoys).
#[inline(never)]
fn list_value(bytes: &[u8], n: usize) -> Option<Vec<Option<Vec<u8>>>> {
    let list = <ListValue as prost::Message>::decode(bytes).ok()?;
    if list.values.len() != n {
        return None;
    }
    let value = |v: ProtoValue| match v.kind? {
        Kind::Number(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
            Some((x as i64).to_le_bytes().to_vec())
        }
        Kind::Text(s) if !s.is_empty() => Some(s.into_bytes()),
        Kind::Number(_) | Kind::Text(_) | Kind::Null(_) | Kind::Bool(_) => None,
    };
    Some(list.values.into_iter().map(value).collect())
}

/// A batch: a static list of property paths.
type Paths = &'static [&'static [&'static str]];

/// Compiled batches, by their list (the same static list, known by its
/// address and length: no comparison of the paths on every span); `None` for
/// a batch the host would not compile.
#[derive(Default)]
pub struct Batches {
    compiled: RefCell<Vec<(Paths, Option<u32>)>>,
}

impl Batches {
    /// The batch's values in one hostcall, or `None` to read them one by one.
    pub fn read(&self, paths: Paths) -> Option<Vec<Option<Vec<u8>>>> {
        let token = self.token(paths)?;
        let bytes = hostcalls::call_foreign_function("expr_evaluate", Some(&token.to_le_bytes()))
            .ok()
            .flatten()?;
        decode(&bytes, paths.len())
    }

    fn token(&self, paths: Paths) -> Option<u32> {
        let same = |known: &Paths| std::ptr::eq(*known, paths);
        if let Some((_, token)) = self.compiled.borrow().iter().find(|(k, _)| same(k)) {
            return *token;
        }
        self.compile(paths)
    }

    /// A batch's first read: Envoy compiles its list once. Out of the read
    /// path (its own function, as [`list_value`]): V8 compiles every function
    /// when Envoy loads the module, with memory that grows with the
    /// function's size (bench/BUDGET.md, "Resident memory").
    #[cold]
    #[inline(never)]
    fn compile(&self, paths: Paths) -> Option<u32> {
        let expr = expression(paths);
        let token = hostcalls::call_foreign_function("expr_create", Some(expr.as_bytes()))
            .ok()
            .flatten()
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_le_bytes);
        if token.is_none() {
            log::info!(
                "meshtrace: the host does not evaluate `{expr}`; properties are read one by one"
            );
        }
        self.compiled.borrow_mut().push((paths, token));
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_guard_every_field_that_can_be_missing() {
        assert_eq!(
            expression(&[
                &["response", "code"],
                &["response", "headers", "x-it's"],
                &["plugin_name"]
            ]),
            "[('code' in response) ? response['code'] : '', \
             ('headers' in response && 'x-it\\'s' in response['headers']) ? \
             response['headers']['x-it\\'s'] : '', plugin_name]"
        );
        assert_eq!(
            expression(&[&["response", "size"], &["upstream", "address"]]),
            "[response['size'], ('address' in upstream) ? upstream['address'] : '']",
            "a property Envoy always has is read unguarded"
        );
    }

    /// A list as Envoy 1.40 marshals it: pairs of an element and an empty
    /// second half (the layout of its answers in a real sidecar).
    fn marshal(items: &[&[u8]]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for item in items {
            out.extend_from_slice(&(item.len() as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        for item in items {
            out.extend_from_slice(item);
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    #[test]
    fn envoy_pairs_decode_as_property_bytes() {
        let bytes = marshal(&[&200i64.to_le_bytes(), b"127.0.0.1:40579", b""]);
        let got = decode(&bytes, 3).unwrap();
        assert_eq!(got[0].as_deref(), Some(&200i64.to_le_bytes()[..]));
        assert_eq!(got[1].as_deref(), Some(&b"127.0.0.1:40579"[..]));
        assert_eq!(got[2], None, "'': missing");
        assert!(decode(&bytes, 2).is_none(), "a list of another length");
        assert!(decode(&bytes[..bytes.len() - 1], 3).is_none(), "truncated");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, 3).is_none(), "trailing bytes");
        let mut lying = bytes.clone();
        lying[4] = 200;
        assert!(decode(&lying, 3).is_none(), "a size past the end");
    }

    #[test]
    fn list_values_decode_as_property_bytes() {
        let list = ListValue {
            values: vec![
                ProtoValue {
                    kind: Some(Kind::Number(200.0)),
                },
                ProtoValue {
                    kind: Some(Kind::Text("10.0.0.1:80".into())),
                },
                ProtoValue {
                    kind: Some(Kind::Text(String::new())),
                },
                ProtoValue {
                    kind: Some(Kind::Null(0)),
                },
                ProtoValue {
                    kind: Some(Kind::Number(-1.0)),
                },
                ProtoValue {
                    kind: Some(Kind::Number(0.5)),
                },
                ProtoValue { kind: None },
            ],
        };
        let bytes = prost::Message::encode_to_vec(&list);
        let got = decode(&bytes, 7).unwrap();
        assert_eq!(got[0].as_deref(), Some(&200i64.to_le_bytes()[..]));
        assert_eq!(got[1].as_deref(), Some(&b"10.0.0.1:80"[..]));
        assert_eq!(got[2], None, "'': missing");
        assert_eq!(got[3], None);
        assert_eq!(got[4].as_deref(), Some(&(-1i64).to_le_bytes()[..]));
        assert_eq!(got[5], None, "not an integer");
        assert_eq!(got[6], None);
        assert!(decode(&bytes, 6).is_none(), "a list of another length");
        assert!(decode(b"\xff\xff", 1).is_none(), "garbage");
    }
}
