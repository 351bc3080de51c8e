//! W3C `tracestate`: a list validated as a whole, bounded in size.
//!
//! A list that breaks the grammar is discarded whole, never repaired: more
//! than 32 members, a key outside `[a-z0-9][a-z0-9_\-*/@]{0,255}`, or a value
//! that is empty, longer than 256 characters, or holds a character other
//! than printable ASCII without `,` and `=` (the W3C test suite's strict
//! level sends exactly these and expects no tracestate). Empty members and
//! the spaces and tabs around members are allowed and skipped; a repeated key
//! keeps its first occurrence. A valid list longer than we propagate (512
//! characters) loses whole entries: those over 128 characters first, then
//! from the right.

/// Most members in a valid list.
pub const MAX_MEMBERS: usize = 32;
/// Most characters propagated (the spec's "propagate at least 512").
pub const MAX_LEN: usize = 512;
/// Entries longer than this go first when truncating.
const LONG_ENTRY: usize = 128;
/// Longest key and value.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    /// `key=value` members, in order.
    members: Vec<String>,
}

/// Why a tracestate list was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    TooManyMembers,
    /// A member without `=`, or with a key or value outside the grammar.
    Member,
}

impl TraceState {
    /// Parses a (comma-joined) tracestate value: the list, or why it is
    /// discarded.
    pub fn parse(value: &str) -> Result<TraceState, Invalid> {
        let mut members: Vec<String> = Vec::new();
        let mut count = 0;
        for raw in value.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_MEMBERS {
                return Err(Invalid::TooManyMembers);
            }
            let Some((key, val)) = member.split_once('=') else {
                return Err(Invalid::Member);
            };
            if !valid_key(key) || !valid_value(val) {
                return Err(Invalid::Member);
            }
            if !members.iter().any(|m| m.split('=').next() == Some(key)) {
                members.push(member.to_string());
            }
        }
        let mut ts = TraceState { members };
        ts.truncate();
        Ok(ts)
    }

    fn len(&self) -> usize {
        let commas = self.members.len().saturating_sub(1);
        self.members.iter().map(String::len).sum::<usize>() + commas
    }

    fn truncate(&mut self) {
        while self.len() > MAX_LEN {
            let victim = self
                .members
                .iter()
                .rposition(|m| m.len() > LONG_ENTRY)
                .unwrap_or(self.members.len() - 1);
            self.members.remove(victim);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(String::as_str)
    }

    /// The length of [`TraceState::header_value`], without building it.
    pub fn header_len(&self) -> usize {
        self.len()
    }

    /// The header value, or `None` when there is nothing to send.
    pub fn header_value(&self) -> Option<String> {
        if self.members.is_empty() {
            None
        } else {
            Some(self.members.join(","))
        }
    }
}

/// `key = (lcalpha / DIGIT) 0*255(keychar)`, keychar = lcalpha / DIGIT /
/// `_` / `-` / `*` / `/` / `@` (the current grammar: the former
/// `tenant@system` form with its 241 and 14 character limits is gone).
fn valid_key(key: &str) -> bool {
    match key.as_bytes().split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.len() < MAX_KEY
                && rest.iter().all(
                    |&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'),
                )
        }
        None => false,
    }
}

/// `value = 0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters
/// except `,` and `=`, the last one not a space (leading spaces are kept).
fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VALUE
        && !v.ends_with(' ')
        && v.bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parsed(input: &str) -> Option<String> {
        TraceState::parse(input).ok().and_then(|t| t.header_value())
    }

    #[test]
    fn list_rules() {
        let z256 = "z".repeat(256);
        let z257 = "z".repeat(257);
        let t241 = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        let t242 = format!("{}@v", "t".repeat(242));
        let long_system = format!("t@{}", "v".repeat(15));
        let v256 = "v".repeat(256);
        let v257 = "v".repeat(257);
        let rows: Vec<(String, Option<String>, &str)> = vec![
            ("a=1".into(), Some("a=1".into()), "simple"),
            (
                "a=1 , b=2".into(),
                Some("a=1,b=2".into()),
                "OWS around members",
            ),
            (
                "a=1\t \t,\t \tb=2".into(),
                Some("a=1,b=2".into()),
                "tabs are OWS",
            ),
            (
                "a=1,,b=2".into(),
                Some("a=1,b=2".into()),
                "empty member skipped",
            ),
            (
                "a=1, ,b=2,".into(),
                Some("a=1,b=2".into()),
                "whitespace-only members skipped",
            ),
            ("".into(), None, "empty header: nothing to send"),
            (
                "tenant@sys=v".into(),
                Some("tenant@sys=v".into()),
                "multi-tenant key",
            ),
            (
                "9a=1".into(),
                Some("9a=1".into()),
                "key may start with a digit",
            ),
            (
                "foo@=1,bar=2".into(),
                Some("foo@=1,bar=2".into()),
                "@ may end a key",
            ),
            (
                "foo@@bar=1,bar=2".into(),
                Some("foo@@bar=1,bar=2".into()),
                "@ twice",
            ),
            (
                "foo@bar@baz=1".into(),
                Some("foo@bar@baz=1".into()),
                "@ in several places",
            ),
            (
                format!("{t241}=1"),
                Some(format!("{t241}=1")),
                "241 + @ + 14",
            ),
            (
                format!("{t242}=1"),
                Some(format!("{t242}=1")),
                "242 + @ + 1: no tenant limit",
            ),
            (
                format!("{long_system}=1"),
                Some(format!("{long_system}=1")),
                "15 after @: no system limit",
            ),
            (
                format!("{z256}=1"),
                Some(format!("{z256}=1")),
                "256-character key",
            ),
            (
                format!("a=1,{v256}x=1"),
                None,
                "257-character key: all discarded",
            ),
            (
                format!("a=1,{z257}=1"),
                None,
                "257-character key: all discarded",
            ),
            (
                format!("k={v256}"),
                Some(format!("k={v256}")),
                "256-character value",
            ),
            (
                format!("a=1,k={v257}"),
                None,
                "257-character value: all discarded",
            ),
            (
                "@foo=1,bar=2".into(),
                None,
                "key starting with @: all discarded",
            ),
            ("A=1,b=2".into(), None, "upper-case key: all discarded"),
            ("foo =1,b=2".into(), None, "space in a key: all discarded"),
            ("foo.bar=1,b=2".into(), None, "dot in a key: all discarded"),
            ("a=,b=3".into(), None, "empty value: all discarded"),
            ("a=b=c".into(), None, "= inside a value: all discarded"),
            ("b=2,a".into(), None, "member without =: all discarded"),
            (
                "a=\u{7f},b=2".into(),
                None,
                "non-printable value: all discarded",
            ),
            ("a=x\ty".into(), None, "tab inside a value: all discarded"),
            ("a=é".into(), None, "non-ASCII value: all discarded"),
            (
                "a= lead".into(),
                Some("a= lead".into()),
                "leading spaces are part of the value",
            ),
            (
                "a=trailing ".into(),
                Some("a=trailing".into()),
                "trailing space is OWS",
            ),
            (
                "a=1,a=2".into(),
                Some("a=1".into()),
                "repeated key keeps the first",
            ),
        ];
        for (input, want, why) in rows {
            assert_eq!(parsed(&input), want, "{why}");
        }
    }

    #[test]
    fn every_allowed_character() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let value: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        for k in [key.to_string(), format!("{key}@a-z0-9_-*/")] {
            let member = format!("{k}={value}");
            assert_eq!(parsed(&member), Some(member.clone()), "{k}");
        }
    }

    #[test]
    fn thirty_two_members_pass_thirty_three_discard_the_list() {
        let list = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let ts = TraceState::parse(&list(32)).unwrap();
        assert_eq!(ts.members().count(), 32);
        assert_eq!(TraceState::parse(&list(33)), Err(Invalid::TooManyMembers));
        assert_eq!(
            TraceState::parse(&format!("{},,,", list(32))).map(|t| t.members().count()),
            Ok(32),
            "empty members do not count"
        );
    }

    #[test]
    fn long_entries_go_first_when_over_512_chars() {
        let long = format!("long={}", "x".repeat(200));
        let mut parts = vec![long.clone()];
        for i in 0..20 {
            parts.push(format!("k{i}={}", "y".repeat(20)));
        }
        let ts = TraceState::parse(&parts.join(",")).unwrap();
        let value = ts.header_value().unwrap();
        assert!(value.len() <= MAX_LEN);
        assert!(!value.contains("long="), "the >128 entry is removed first");
        assert!(
            value.starts_with("k0="),
            "then nothing else had to go: {value}"
        );
        assert_eq!(ts.members().count(), 20);
    }

    #[test]
    fn whole_entries_from_the_right() {
        let parts: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "z".repeat(30)))
            .collect();
        let ts = TraceState::parse(&parts.join(",")).unwrap();
        let value = ts.header_value().unwrap();
        assert!(value.len() <= MAX_LEN);
        assert!(value.starts_with("k00="), "the left is kept");
        for m in value.split(',') {
            assert_eq!(m.len(), 34, "entry intact: {m}");
        }
    }
}
