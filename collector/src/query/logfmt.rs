//! `key=value key2="a value"` pairs, as Tempo's `tags` parameter and Jaeger UI's search box write them
//! (logfmt: space-separated, values in double quotes when they hold spaces, `\"` and `\\` escaped
//! inside quotes). Small enough to own: the logfmt crates on crates.io are unmaintained.

/// Parses logfmt pairs; every pair needs a key and an `=`.
pub fn parse(input: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Ok(out);
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!(
                "expected key=value at position {start}, found {key:?} without '='"
            ));
        }
        if key.is_empty() {
            return Err(format!("empty key at position {start}"));
        }
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '"').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, escaped)) => value.push(escaped),
                        None => break,
                    },
                    other => value.push(other),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for {key:?}"));
            }
            if chars.peek().is_some_and(|(_, c)| !c.is_whitespace()) {
                return Err(format!(
                    "expected a space after the quoted value of {key:?}"
                ));
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
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

    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn parses_pairs_like_tempo_and_jaeger_ui_write_them() {
        let ok: &[Case] = &[
            ("a=1", &[("a", "1")], "one pair"),
            (
                "  a=1   b=two ",
                &[("a", "1"), ("b", "two")],
                "spaces around",
            ),
            (
                "http.url=api/myapi",
                &[("http.url", "api/myapi")],
                "dots and slashes",
            ),
            (
                r#"q="a b" c=d"#,
                &[("q", "a b"), ("c", "d")],
                "quoted value with a space",
            ),
            (
                r#"q="say \"hi\"""#,
                &[("q", "say \"hi\"")],
                "escaped quotes",
            ),
            ("e=", &[("e", "")], "empty value"),
            ("k=a=b", &[("k", "a=b")], "= inside a value"),
            ("", &[], "nothing"),
        ];
        for (input, want, why) in ok {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(parse(input), Ok(want), "{why}: {input}");
        }
        for (input, why) in [
            ("retried", "no ="),
            ("=v", "no key"),
            (r#"a="open"#, "unterminated quote"),
            (r#"a="x"b=1"#, "no space after quotes"),
        ] {
            assert!(parse(input).is_err(), "{why}: {input}");
        }
    }
}
