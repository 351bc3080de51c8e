//! W3C `baggage`: members with percent-encoded values, bounded to 64 members
//! and 8192 bytes. Past the bounds whole members are dropped, never cut.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::{joined, Header, HeaderEdit, HeaderList};

pub const BAGGAGE: &str = "baggage";
pub const MAX_MEMBERS: usize = 64;
pub const MAX_BYTES: usize = 8192;

/// What must be percent-encoded in a baggage value: everything outside
/// `baggage-octet` (and `%` itself, so decoding is exact).
const VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub key: String,
    /// Decoded value.
    pub value: String,
    /// Properties as sent, after the first `;` (W3C only).
    pub properties: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<Member>,
    /// Bytes the members take in W3C form, commas included.
    bytes: usize,
}

impl Baggage {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.as_str())
    }

    /// Adds a member unless its key is taken or it would exceed the bounds.
    /// Returns false when it was dropped for the bounds.
    pub fn push(&mut self, member: Member) -> bool {
        if self.members.iter().any(|m| m.key == member.key) {
            return true;
        }
        let size = encoded_len(&member) + usize::from(!self.members.is_empty());
        if self.members.len() >= MAX_MEMBERS || self.bytes + size > MAX_BYTES {
            return false;
        }
        self.bytes += size;
        self.members.push(member);
        true
    }

    /// The W3C header value, or `None` when empty.
    pub fn to_w3c(&self) -> Option<String> {
        if self.members.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(self.bytes);
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&m.key);
            out.push('=');
            out.extend(utf8_percent_encode(&m.value, VALUE_ESCAPES));
            if let Some(p) = &m.properties {
                out.push(';');
                out.push_str(p);
            }
        }
        Some(out)
    }
}

fn encoded_len(m: &Member) -> usize {
    m.key.len()
        + 1
        + utf8_percent_encode(&m.value, VALUE_ESCAPES)
            .map(str::len)
            .sum::<usize>()
        + m.properties.as_ref().map_or(0, |p| p.len() + 1)
}

/// RFC 7230 token characters, the baggage key alphabet.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Optional whitespace (RFC 7230 OWS: spaces and tabs) trimmed from both ends.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// W3C baggage properties, `;`-separated: each a key, or `key=value` with a baggage-octet value. They are
/// written back as they came, so nothing else may pass (a control character would make the header invalid).
fn valid_properties(props: &str) -> bool {
    props.split(';').all(|p| match p.split_once('=') {
        Some((k, v)) => is_token(trim_ows(k)) && trim_ows(v).bytes().all(is_baggage_octet),
        None => is_token(trim_ows(p)),
    })
}

/// Parses one W3C list member; `None` when invalid.
fn parse_member(raw: &str) -> Option<Member> {
    let (kv, properties) = match raw.split_once(';') {
        Some((kv, props)) => (kv, Some(trim_ows(props).to_string())),
        None => (raw, None),
    };
    let (key, value) = kv.split_once('=')?;
    let (key, value) = (key.trim(), value.trim());
    if !is_token(key) || !value.bytes().all(is_baggage_octet) {
        return None;
    }
    if properties
        .as_deref()
        .is_some_and(|p| !p.is_empty() && !valid_properties(p))
    {
        return None;
    }
    Some(Member {
        key: key.to_string(),
        value: percent_decode_str(value).decode_utf8_lossy().into_owned(),
        properties: properties.filter(|p| !p.is_empty()),
    })
}

/// Adds the members of every `baggage` header to `into`; returns how many
/// headers held invalid members (each counted once).
pub fn extract_w3c(headers: &HeaderList, into: &mut Baggage) -> u32 {
    let Some(value) = joined(headers, BAGGAGE) else {
        return 0;
    };
    let mut malformed = false;
    for raw in value.split(',') {
        if raw.trim().is_empty() {
            continue;
        }
        match parse_member(raw) {
            Some(m) => {
                if !into.push(m) {
                    // Past the bounds: the rest is dropped whole.
                    break;
                }
            }
            None => malformed = true,
        }
    }
    u32::from(malformed)
}

/// Writes `baggage`, or removes the request's `baggage` header (`current`)
/// when there is none to write.
pub fn inject_w3c(baggage: &Baggage, current: Header<'_>, edits: &mut Vec<HeaderEdit>) {
    match baggage.to_w3c() {
        Some(v) => edits.push(HeaderEdit::set(BAGGAGE, v)),
        None => {
            if !matches!(current, Header::Absent) {
                edits.push(HeaderEdit::remove(BAGGAGE));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::hdrs;
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse(v: &str) -> (Baggage, u32) {
        let mut b = Baggage::default();
        let bad = extract_w3c(&hdrs(&[("baggage", v)]), &mut b);
        (b, bad)
    }

    #[test]
    fn member_rules() {
        let rows: &[(&str, Option<&str>, u32, &str)] = &[
            ("k=v", Some("k=v"), 0, "simple"),
            ("k = v , k2=v2", Some("k=v,k2=v2"), 0, "OWS"),
            (
                "k=hello%20world",
                Some("k=hello%20world"),
                0,
                "percent-encoded value",
            ),
            ("k=v;prop=1", Some("k=v;prop=1"), 0, "properties kept"),
            ("k=v;flag", Some("k=v;flag"), 0, "bare property"),
            (
                "k=v; a = 1 ;b",
                Some("k=v;a = 1 ;b"),
                0,
                "OWS around properties",
            ),
            (
                "k=v;t\u{1}l=6,k2=v2",
                Some("k2=v2"),
                1,
                "control character in a property",
            ),
            ("k=v;p=a b", None, 1, "space inside a property value"),
            ("k=v;;p", None, 1, "empty property"),
            ("bad key=v,k=v", Some("k=v"), 1, "space in key"),
            ("k=a b", None, 1, "space inside value"),
            ("k=\"q\"", None, 1, "quote in value"),
            ("=v", None, 1, "empty key"),
            ("novalue", None, 1, "no ="),
            ("k=", Some("k="), 0, "empty value is allowed"),
            ("k=1,k=2", Some("k=1"), 0, "duplicate keeps the first"),
        ];
        for (input, want, bad, why) in rows {
            let (b, malformed) = parse(input);
            assert_eq!(b.to_w3c().as_deref(), *want, "{why}");
            assert_eq!(malformed, *bad, "{why}: malformed count");
        }
    }

    #[test]
    fn values_are_decoded_and_reencoded() {
        let (b, _) = parse("user=J%C3%BCrgen%2C%20Jr");
        assert_eq!(b.get("user"), Some("Jürgen, Jr"));
        assert_eq!(b.to_w3c().as_deref(), Some("user=J%C3%BCrgen%2C%20Jr"));
    }

    #[test]
    fn bounded_to_64_members() {
        let v: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        let (b, _) = parse(&v.join(","));
        assert_eq!(b.members().len(), MAX_MEMBERS);
        assert_eq!(b.members().last().map(|m| m.key.as_str()), Some("k63"));
    }

    #[test]
    fn bounded_to_8192_bytes_dropping_whole_members() {
        let v: Vec<String> = (0..9)
            .map(|i| format!("k{i}={}", "x".repeat(1000)))
            .collect();
        let (b, _) = parse(&v.join(","));
        let out = b.to_w3c().unwrap();
        assert!(out.len() <= MAX_BYTES, "{}", out.len());
        assert_eq!(b.members().len(), 8);
        assert!(
            b.members().iter().all(|m| m.value.len() == 1000),
            "no member cut"
        );
    }

    #[test]
    fn several_headers_combine() {
        let mut b = Baggage::default();
        extract_w3c(&hdrs(&[("baggage", "a=1"), ("baggage", "b=2")]), &mut b);
        assert_eq!(b.to_w3c().as_deref(), Some("a=1,b=2"));
    }

    #[test]
    fn empty_baggage_removes_a_present_header() {
        let mut edits = Vec::new();
        inject_w3c(&Baggage::default(), Header::One(b"bad key=1"), &mut edits);
        assert_eq!(edits, vec![HeaderEdit::remove(BAGGAGE)]);
        let mut edits = Vec::new();
        inject_w3c(&Baggage::default(), Header::Absent, &mut edits);
        assert!(edits.is_empty(), "nothing to remove");
    }
}
