//! Reading OTLP protobuf in place: a field reader over a byte buffer that reports positions instead of
//! copying, and a validator that accepts exactly what prost accepts when it decodes the same bytes into
//! the generated OTLP types (wire types of known fields, UTF-8 of strings, nesting depth), so that bytes
//! kept verbatim always decode again when they are read back.

/// Why bytes are not a valid OTLP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub &'static str);

/// A field's value: scalars read, length-delimited fields as the absolute range of their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(usize, usize),
    /// A group (deprecated wire types 3/4), skipped whole.
    Group,
}

impl Value {
    /// The range of a length-delimited field, or the error for a wrong wire type.
    #[inline(always)]
    pub fn range(self) -> Result<(usize, usize), WireError> {
        match self {
            Value::Len(start, end) => Ok((start, end)),
            _ => Err(WireError("a length-delimited field has another wire type")),
        }
    }

    #[inline(always)]
    pub fn varint(self) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(WireError("a varint field has another wire type")),
        }
    }

    #[inline(always)]
    pub fn fixed64(self) -> Result<u64, WireError> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(WireError("a fixed64 field has another wire type")),
        }
    }

    #[inline(always)]
    pub fn fixed32(self) -> Result<u32, WireError> {
        match self {
            Value::Fixed32(v) => Ok(v),
            _ => Err(WireError("a fixed32 field has another wire type")),
        }
    }
}

/// The fields of one message, in order. Positions are absolute in `buf`.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    /// The fields of the message stored at `buf[start..end]`.
    #[inline]
    pub fn new(buf: &'a [u8], (start, end): (usize, usize)) -> Self {
        Self {
            buf,
            pos: start,
            end: end.min(buf.len()),
        }
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, WireError> {
        if self.pos >= self.end {
            return Err(WireError("message truncated"));
        }
        let b = self
            .buf
            .get(self.pos)
            .copied()
            .ok_or(WireError("message truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Keys, lengths and most values fit in one byte.
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        self.varint_rest(first)
    }

    fn varint_rest(&mut self, first: u8) -> Result<u64, WireError> {
        let mut value = u64::from(first & 0x7f);
        for i in 1..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(WireError("invalid varint"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError("invalid varint"))
    }

    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes: [u8; N] = self
            .buf
            .get(self.pos..self.pos + N)
            .filter(|_| self.pos + N <= self.end)
            .and_then(|b| b.try_into().ok())
            .ok_or(WireError("message truncated"))?;
        self.pos += N;
        Ok(bytes)
    }

    fn skip_group(&mut self, field: u32) -> Result<(), WireError> {
        loop {
            let key = self.varint()?;
            let (number, wire) = split_key(key)?;
            match wire {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.fixed::<8>()?;
                }
                2 => {
                    let len = self.len()?;
                    self.pos += len;
                }
                3 => self.skip_group(number)?,
                4 if number == field => return Ok(()),
                4 => return Err(WireError("unexpected end group")),
                5 => {
                    self.fixed::<4>()?;
                }
                _ => return Err(WireError("invalid wire type")),
            }
        }
    }

    #[inline(always)]
    fn len(&mut self) -> Result<usize, WireError> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError("length too large"))?;
        if len > self.end - self.pos {
            return Err(WireError("message truncated"));
        }
        Ok(len)
    }

    /// The next field, `None` at the end of the message.
    #[allow(clippy::should_implement_trait)]
    #[inline(always)]
    pub fn next(&mut self) -> Result<Option<(u32, Value)>, WireError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let (number, wire) = split_key(self.varint()?)?;
        let value = match wire {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = self.len()?;
                let start = self.pos;
                self.pos += len;
                Value::Len(start, self.pos)
            }
            3 => {
                self.skip_group(number)?;
                Value::Group
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            4 => return Err(WireError("unexpected end group")),
            _ => return Err(WireError("invalid wire type")),
        };
        Ok(Some((number, value)))
    }
}

#[inline(always)]
fn split_key(key: u64) -> Result<(u32, u8), WireError> {
    let key = u32::try_from(key).map_err(|_| WireError("invalid key"))?;
    let number = key >> 3;
    if number == 0 {
        return Err(WireError("invalid field number 0"));
    }
    Ok((number, (key & 7) as u8))
}

/// The OTLP messages below a span, for validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Resource,
    EntityRef,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    Event,
    Link,
    Status,
}

/// What a known field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bytes,
    Varint,
    Fixed64,
    Fixed32,
    Nested(Message),
}

fn kind(message: Message, field: u32) -> Option<Kind> {
    use Kind::{Bytes, Fixed32, Fixed64, Nested, Str, Varint};
    Some(match (message, field) {
        (Message::Resource, 1) => Nested(Message::KeyValue),
        (Message::Resource, 2) => Varint,
        (Message::Resource, 3) => Nested(Message::EntityRef),
        (Message::EntityRef, 1..=4) => Str,
        (Message::Scope, 1 | 2) => Str,
        (Message::Scope, 3) => Nested(Message::KeyValue),
        (Message::Scope, 4) => Varint,
        (Message::KeyValue, 1) => Str,
        (Message::KeyValue, 2) => Nested(Message::AnyValue),
        (Message::KeyValue, 3) => Varint,
        (Message::AnyValue, 1) => Str,
        (Message::AnyValue, 2 | 3 | 8) => Varint,
        (Message::AnyValue, 4) => Fixed64,
        (Message::AnyValue, 5) => Nested(Message::ArrayValue),
        (Message::AnyValue, 6) => Nested(Message::KeyValueList),
        (Message::AnyValue, 7) => Bytes,
        (Message::ArrayValue, 1) => Nested(Message::AnyValue),
        (Message::KeyValueList, 1) => Nested(Message::KeyValue),
        (Message::Event, 1) => Fixed64,
        (Message::Event, 2) => Str,
        (Message::Event, 3) => Nested(Message::KeyValue),
        (Message::Event, 4) => Varint,
        (Message::Link, 1 | 2) => Bytes,
        (Message::Link, 3) => Str,
        (Message::Link, 4) => Nested(Message::KeyValue),
        (Message::Link, 5) => Varint,
        (Message::Link, 6) => Fixed32,
        (Message::Status, 2) => Str,
        (Message::Status, 3) => Varint,
        _ => return None,
    })
}

/// Nesting below the request that is accepted. prost stops at 100 levels; staying under that keeps every
/// accepted message decodable.
pub const MAX_DEPTH: u32 = 90;

/// Checks that `buf[range]` is a valid `message` at nesting `depth`.
pub fn validate(
    buf: &[u8],
    range: (usize, usize),
    message: Message,
    depth: u32,
) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError("messages nested too deeply"));
    }
    let mut fields = Fields::new(buf, range);
    while let Some((number, value)) = fields.next()? {
        check_field(buf, kind(message, number), value, depth)?;
    }
    Ok(())
}

/// Checks one field's wire type and contents against what the schema says it holds (`None`: unknown,
/// skipped as prost does).
fn check_field(buf: &[u8], kind: Option<Kind>, value: Value, depth: u32) -> Result<(), WireError> {
    match kind {
        None => Ok(()),
        Some(Kind::Str) => check_utf8(buf, value.range()?),
        Some(Kind::Bytes) => value.range().map(|_| ()),
        Some(Kind::Varint) => value.varint().map(|_| ()),
        Some(Kind::Fixed64) => value.fixed64().map(|_| ()),
        Some(Kind::Fixed32) => value.fixed32().map(|_| ()),
        Some(Kind::Nested(m)) => validate(buf, value.range()?, m, depth + 1),
    }
}

/// The string at `range`, checked to be UTF-8.
#[inline]
pub fn utf8(buf: &[u8], (start, end): (usize, usize)) -> Result<&str, WireError> {
    let bytes = buf.get(start..end).ok_or(WireError("message truncated"))?;
    std::str::from_utf8(bytes).map_err(|_| WireError("a string field is not valid UTF-8"))
}

/// Checks that the bytes at `range` are UTF-8 (most are ASCII, which is checked a word at a time).
#[inline]
pub fn check_utf8(buf: &[u8], (start, end): (usize, usize)) -> Result<(), WireError> {
    let bytes = buf.get(start..end).ok_or(WireError("message truncated"))?;
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        Ok(())
    } else {
        Err(WireError("a string field is not valid UTF-8"))
    }
}

/// The string at `range` of a buffer already validated.
pub fn str_at(buf: &[u8], range: (usize, usize)) -> &str {
    utf8(buf, range).unwrap_or_default()
}

// Writing: the few primitives that framing copied bytes needs.

/// Appends a field key.
pub fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The size of a length-delimited field `field` holding `len` bytes.
pub fn delimited_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field) << 3) + varint_len(len as u64) + len
}

/// Appends field `field` holding `body` as a length-delimited field.
pub fn put_delimited(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
    use prost::Message as _;

    fn kv(value: any_value::Value) -> KeyValue {
        KeyValue {
            key: "k".into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn varints_and_lengths() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(out.len(), prost::encoding::encoded_len_varint(v), "{v}");
            let mut with_key = Vec::new();
            put_key(&mut with_key, 1, 0);
            with_key.extend_from_slice(&out);
            let mut f = Fields::new(&with_key, (0, with_key.len()));
            assert_eq!(f.next().unwrap(), Some((1, Value::Varint(v))));
            assert_eq!(f.next().unwrap(), None);
        }
        assert_eq!(
            delimited_len(2, 300),
            prost::encoding::key_len(2) + prost::encoding::encoded_len_varint(300) + 300
        );
    }

    #[test]
    fn accepts_and_refuses_what_prost_does() {
        let deep = (0..120).fold(any_value::Value::IntValue(1), |inner, _| {
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(inner) }],
            })
        });
        let cases: Vec<(Vec<u8>, bool, &str)> = vec![
            (
                kv(any_value::Value::StringValue("v".into())).encode_to_vec(),
                true,
                "string value",
            ),
            (
                kv(any_value::Value::IntValue(-5)).encode_to_vec(),
                true,
                "negative int",
            ),
            (
                kv(any_value::Value::DoubleValue(1.5)).encode_to_vec(),
                true,
                "double",
            ),
            (vec![0x0a, 0x02, 0xff, 0xfe], false, "key not UTF-8"),
            (vec![0x0a, 0x05, b'a'], false, "key truncated"),
            (vec![0x08, 0x01], false, "key with the varint wire type"),
            (vec![0x00, 0x01], false, "field number 0"),
            (vec![0x0e], false, "wire type 6"),
            (
                vec![0xf8, 0x01, 0x05],
                true,
                "unknown varint field 31 skipped",
            ),
            (vec![0x5b, 0x08, 0x01, 0x5c], true, "unknown group skipped"),
            (vec![0x5b, 0x08, 0x01], false, "unterminated group"),
            (
                vec![
                    0xf8, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ],
                false,
                "varint over 64 bits",
            ),
            (
                vec![
                    0xf8, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                true,
                "the largest varint",
            ),
            (
                kv(deep).encode_to_vec(),
                false,
                "nested past the depth limit",
            ),
        ];
        for (bytes, ok, why) in cases {
            let ours = validate(&bytes, (0, bytes.len()), Message::KeyValue, 0);
            assert_eq!(ours.is_ok(), ok, "{why}: {ours:?}");
            if ok {
                assert!(
                    KeyValue::decode(bytes.as_slice()).is_ok(),
                    "prost agrees: {why}"
                );
            } else if why != "nested past the depth limit" {
                assert!(
                    KeyValue::decode(bytes.as_slice()).is_err(),
                    "prost agrees: {why}"
                );
            }
        }
    }
}
