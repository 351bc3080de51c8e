//! W3C `tracestate`: validated list members, bounded in count and size.
//!
//! Invalid members are dropped, duplicate keys keep their first occurrence,
//! and past 32 members or 512 characters whole entries go: entries over 128
//! characters first, then from the right.

/// Most members kept.
pub const MAX_MEMBERS: usize = 32;
/// Most characters kept (the spec's "propagate at least 512").
pub const MAX_LEN: usize = 512;
/// Entries longer than this go first when truncating.
const LONG_ENTRY: usize = 128;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    /// `key=value` members, in order.
    members: Vec<String>,
}

impl TraceState {
    /// Parses a (comma-joined) tracestate value, keeping the valid members.
    pub fn parse(value: &str) -> TraceState {
        let mut members: Vec<String> = Vec::new();
        for raw in value.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            let Some((key, val)) = member.split_once('=') else {
                continue;
            };
            if !valid_key(key) || !valid_value(val) {
                continue;
            }
            if members.iter().any(|m| m.split('=').next() == Some(key)) {
                continue;
            }
            members.push(member.to_string());
            // Hostile input: stop reading long before truncation would matter.
            if members.len() > 4 * MAX_MEMBERS {
                break;
            }
        }
        let mut ts = TraceState { members };
        ts.truncate();
        ts
    }

    fn len(&self) -> usize {
        let commas = self.members.len().saturating_sub(1);
        self.members.iter().map(String::len).sum::<usize>() + commas
    }

    fn truncate(&mut self) {
        while self.members.len() > MAX_MEMBERS || self.len() > MAX_LEN {
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

    /// The header value, or `None` when there is nothing to send.
    pub fn header_value(&self) -> Option<String> {
        if self.members.is_empty() {
            None
        } else {
            Some(self.members.join(","))
        }
    }
}

fn key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

fn simple_key(k: &[u8], max: usize, first_digit_ok: bool) -> bool {
    match k.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || (first_digit_ok && first.is_ascii_digit()))
                && rest.len() < max
                && rest.iter().all(|&c| key_char(c))
        }
        None => false,
    }
}

/// `[a-z0-9][_0-9a-z\-*/]{0,255}` or `tenant@system`.
fn valid_key(key: &str) -> bool {
    let k = key.as_bytes();
    match key.split_once('@') {
        None => simple_key(k, 256, true),
        Some((tenant, system)) => {
            simple_key(tenant.as_bytes(), 241, true) && simple_key(system.as_bytes(), 14, false)
        }
    }
}

/// 1..=256 printable ASCII except `,` and `=`, not ending in a space.
fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && !v.ends_with(' ')
        && v.bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn member_rules() {
        let rows: &[(&str, Option<&str>, &str)] = &[
            ("a=1", Some("a=1"), "simple"),
            ("a=1 , b=2", Some("a=1,b=2"), "OWS around members"),
            ("a=1,,b=2", Some("a=1,b=2"), "empty member skipped"),
            ("tenant@sys=v", Some("tenant@sys=v"), "multi-tenant key"),
            ("t@9sys=v", None, "system must start with a letter"),
            ("A=1", None, "upper-case key"),
            ("9a=1", Some("9a=1"), "key may start with a digit"),
            ("a=", None, "empty value"),
            ("a=b=c", None, "= inside value"),
            ("a=trailing ", Some("a=trailing"), "trailing space is OWS"),
            ("a", None, "no ="),
            ("a=1,a=2", Some("a=1"), "duplicate key keeps the first"),
            ("a=\u{7f}", None, "non-printable value"),
            ("", None, "empty header"),
        ];
        for (input, want, why) in rows {
            assert_eq!(
                TraceState::parse(input).header_value().as_deref(),
                *want,
                "{why}"
            );
        }
    }

    #[test]
    fn at_most_32_members_dropping_from_the_right() {
        let input: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        let ts = TraceState::parse(&input.join(","));
        assert_eq!(ts.members().count(), MAX_MEMBERS);
        assert_eq!(ts.members().next(), Some("k0=v"));
        assert_eq!(ts.members().last(), Some("k31=v"));
    }

    #[test]
    fn long_entries_go_first_when_over_512_chars() {
        let long = format!("long={}", "x".repeat(200));
        let mut parts = vec![long.clone()];
        for i in 0..20 {
            parts.push(format!("k{i}={}", "y".repeat(20)));
        }
        let ts = TraceState::parse(&parts.join(","));
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
    fn whole_entries_only() {
        let parts: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "z".repeat(30)))
            .collect();
        let ts = TraceState::parse(&parts.join(","));
        let value = ts.header_value().unwrap();
        assert!(value.len() <= MAX_LEN);
        for m in value.split(',') {
            assert_eq!(m.len(), 34, "entry intact: {m}");
        }
    }
}
