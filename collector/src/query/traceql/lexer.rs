//! TraceQL tokens. Attribute names follow Tempo's lexer: after `span.`, `resource.` or a leading `.`,
//! everything up to a space or one of `{}()=~!<>&|^,` belongs to the name, and `"..."` quotes a part
//! holding those characters.

use super::ast::Scope;
use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    And,
    Or,
    Not,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Re,
    Nre,
    /// `>>`
    Desc,
    /// `<<`
    Ance,
    Tilde,
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    /// A bare word: a keyword, an intrinsic or a function name.
    Ident(String),
    /// `span:duration`, `trace:rootService`: (scope, name).
    ScopedIntrinsic(String, String),
    Attribute(Scope, String),
    /// Recognised only to be refused with a clear message: arithmetic, the union and negated
    /// structural operators, unsupported scopes.
    Unsupported(String),
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Pipe => "`|`".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Not => "`!`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Neq => "`!=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Gte => "`>=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Lte => "`<=`".into(),
            Tok::Re => "`=~`".into(),
            Tok::Nre => "`!~`".into(),
            Tok::Desc => "`>>`".into(),
            Tok::Ance => "`<<`".into(),
            Tok::Tilde => "`~`".into(),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Int(i) => format!("the number {i}"),
            Tok::Float(f) => format!("the number {f}"),
            Tok::Duration(_) => "a duration".into(),
            Tok::Ident(w) => format!("`{w}`"),
            Tok::ScopedIntrinsic(s, n) => format!("`{s}:{n}`"),
            Tok::Attribute(Scope::Span, n) => format!("`span.{n}`"),
            Tok::Attribute(Scope::Resource, n) => format!("`resource.{n}`"),
            Tok::Attribute(Scope::Any, n) => format!("`.{n}`"),
            Tok::Unsupported(s) => format!("`{s}`"),
            Tok::Eof => "the end of the query".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset in the query.
    pub pos: usize,
}

const SCOPES_WITH_ATTRIBUTES: [&str; 2] = ["span", "resource"];
const UNSUPPORTED_SCOPES: [&str; 4] = ["event", "link", "instrumentation", "parent"];

fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, at: usize, expected: &str, found: String) -> ParseError {
        ParseError::at(self.src, at, expected, found)
    }

    /// A double-quoted string (the opening quote already read); `\"`, `\\`, `\n`, `\t` escapes.
    fn string(&mut self, start: usize) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(start, "a closing `\"`", "the end of the query".into()))
                }
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c) => out.push(c),
                    None => {
                        return Err(self.error(
                            start,
                            "a closing `\"`",
                            "the end of the query".into(),
                        ))
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// An attribute name after its scope prefix: bare characters and quoted parts.
    fn attribute_name(&mut self, start: usize) -> Result<String, ParseError> {
        let mut name = String::new();
        loop {
            match self.peek() {
                Some('"') => {
                    let at = self.pos;
                    self.bump();
                    name.push_str(&self.string(at)?);
                }
                Some(c) if is_attribute_char(c) => {
                    name.push(c);
                    self.bump();
                }
                _ => break,
            }
        }
        if name.is_empty() {
            let found = self
                .peek()
                .map_or("the end of the query".into(), |c| format!("`{c}`"));
            return Err(self.error(start, "an attribute name", found));
        }
        Ok(name)
    }

    /// A number, possibly negative, possibly a duration (`150ms`, `1h30m`, `-5s`).
    fn number(&mut self, start: usize) -> Result<Tok, ParseError> {
        let negative = self.peek() == Some('-');
        if negative {
            self.bump();
        }
        let mut total_ns: f64 = 0.0;
        let mut is_duration = false;
        let mut text = String::new();
        loop {
            let digits_at = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                if let Some(c) = self.bump() {
                    text.push(c);
                }
            }
            if self.pos == digits_at {
                break;
            }
            let unit_at = self.pos;
            while self.peek().is_some_and(|c| c.is_alphabetic()) {
                self.bump();
            }
            let unit = self.src.get(unit_at..self.pos).unwrap_or_default();
            let scale = match unit {
                "" => break,
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                other => {
                    return Err(self.error(
                        unit_at,
                        "a duration unit (ns, us, ms, s, m, h)",
                        format!("`{other}`"),
                    ))
                }
            };
            let value: f64 = text
                .parse()
                .map_err(|_| self.error(digits_at, "a number", format!("`{text}`")))?;
            total_ns += value * scale;
            is_duration = true;
            text.clear();
        }
        if is_duration {
            if !text.is_empty() {
                return Err(self.error(
                    start,
                    "a duration unit after every number",
                    format!("`{text}`"),
                ));
            }
            let ns = if negative { -total_ns } else { total_ns };
            if !ns.is_finite() || ns.abs() > i64::MAX as f64 {
                return Err(self.error(
                    start,
                    "a duration in range",
                    "an overflowing duration".into(),
                ));
            }
            return Ok(Tok::Duration(ns as i64));
        }
        let literal = self.src.get(start..self.pos).unwrap_or_default();
        if text.contains('.') {
            literal
                .parse::<f64>()
                .map(Tok::Float)
                .map_err(|_| self.error(start, "a number", format!("`{literal}`")))
        } else {
            literal
                .parse::<i64>()
                .map(Tok::Int)
                .map_err(|_| self.error(start, "an integer in range", format!("`{literal}`")))
        }
    }

    fn word(&mut self) -> String {
        let at = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        self.src.get(at..self.pos).unwrap_or_default().to_string()
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let pos = self.pos;
        let rest = self.rest();
        let two = |s: &str| rest.starts_with(s);
        let (tok, len) = if rest.is_empty() {
            (Tok::Eof, 0)
        } else if two("&&") {
            (Tok::And, 2)
        } else if two("||") {
            (Tok::Or, 2)
        } else if two("!=") {
            (Tok::Neq, 2)
        } else if two("!~") {
            (Tok::Nre, 2)
        } else if two("=~") {
            (Tok::Re, 2)
        } else if two(">>") {
            (Tok::Desc, 2)
        } else if two("<<") {
            (Tok::Ance, 2)
        } else if two(">=") {
            (Tok::Gte, 2)
        } else if two("<=") {
            (Tok::Lte, 2)
        } else if ["&>>", "&<<", "!>>", "!<<"]
            .iter()
            .any(|op| rest.starts_with(op))
        {
            (
                Tok::Unsupported(rest.get(..3).unwrap_or_default().into()),
                3,
            )
        } else if ["&>", "&<", "&~", "!>", "!<"]
            .iter()
            .any(|op| rest.starts_with(op))
        {
            (
                Tok::Unsupported(rest.get(..2).unwrap_or_default().into()),
                2,
            )
        } else {
            let Some(c) = self.peek() else {
                return Ok(Token { tok: Tok::Eof, pos });
            };
            match c {
                '{' => (Tok::LBrace, 1),
                '}' => (Tok::RBrace, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                ',' => (Tok::Comma, 1),
                '|' => (Tok::Pipe, 1),
                '!' => (Tok::Not, 1),
                '=' => (Tok::Eq, 1),
                '>' => (Tok::Gt, 1),
                '<' => (Tok::Lt, 1),
                '~' => (Tok::Tilde, 1),
                '+' | '*' | '/' | '%' | '^' | '&' => (Tok::Unsupported(c.to_string()), 1),
                '"' => {
                    self.bump();
                    let s = self.string(pos)?;
                    return Ok(Token {
                        tok: Tok::Str(s),
                        pos,
                    });
                }
                '.' if rest
                    .chars()
                    .nth(1)
                    .is_some_and(|n| n == '"' || (is_attribute_char(n) && !n.is_ascii_digit())) =>
                {
                    self.bump();
                    let name = self.attribute_name(pos)?;
                    return Ok(Token {
                        tok: Tok::Attribute(Scope::Any, name),
                        pos,
                    });
                }
                c if c.is_ascii_digit()
                    || (c == '-' && rest.chars().nth(1).is_some_and(|n| n.is_ascii_digit())) =>
                {
                    let tok = self.number(pos)?;
                    return Ok(Token { tok, pos });
                }
                '-' => (Tok::Unsupported("-".into()), 1),
                c if c.is_alphabetic() || c == '_' => {
                    let word = self.word();
                    let tok = match self.peek() {
                        Some('.') if SCOPES_WITH_ATTRIBUTES.contains(&word.as_str()) => {
                            self.bump();
                            let name = self.attribute_name(pos)?;
                            let scope = if word == "span" {
                                Scope::Span
                            } else {
                                Scope::Resource
                            };
                            Tok::Attribute(scope, name)
                        }
                        Some('.' | ':') if UNSUPPORTED_SCOPES.contains(&word.as_str()) => {
                            Tok::Unsupported(format!("{word}{}", self.peek().unwrap_or('.')))
                        }
                        Some(':') if matches!(word.as_str(), "span" | "trace") => {
                            self.bump();
                            let name = self.word();
                            Tok::ScopedIntrinsic(word, name)
                        }
                        _ => Tok::Ident(word),
                    };
                    return Ok(Token { tok, pos });
                }
                other => {
                    return Err(self.error(pos, "a TraceQL token", format!("`{other}`")));
                }
            }
        };
        self.pos += len;
        Ok(Token { tok, pos })
    }
}

/// The tokens of `src`, ending with `Eof`.
pub fn tokens(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        let t = lexer.next()?;
        let end = t.tok == Tok::Eof;
        out.push(t);
        if end {
            return Ok(out);
        }
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

    fn toks(src: &str) -> Vec<Tok> {
        tokens(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_of_the_queries_people_write() {
        let cases: Vec<(&str, Vec<Tok>, &str)> = vec![
            (
                "{ span.http.status_code >= 500 }",
                vec![
                    Tok::LBrace,
                    Tok::Attribute(Scope::Span, "http.status_code".into()),
                    Tok::Gte,
                    Tok::Int(500),
                    Tok::RBrace,
                    Tok::Eof,
                ],
                "scoped attribute with dots",
            ),
            (
                "{resource.service.name=\"cart\"}",
                vec![
                    Tok::LBrace,
                    Tok::Attribute(Scope::Resource, "service.name".into()),
                    Tok::Eq,
                    Tok::Str("cart".into()),
                    Tok::RBrace,
                    Tok::Eof,
                ],
                "no spaces: the name stops at =",
            ),
            (
                ".user.id!=nil",
                vec![
                    Tok::Attribute(Scope::Any, "user.id".into()),
                    Tok::Neq,
                    Tok::Ident("nil".into()),
                    Tok::Eof,
                ],
                "unscoped attribute",
            ),
            (
                "duration > 1h30m",
                vec![
                    Tok::Ident("duration".into()),
                    Tok::Gt,
                    Tok::Duration(5_400_000_000_000),
                    Tok::Eof,
                ],
                "compound duration",
            ),
            (
                "150ms 1.5 -3 -5s",
                vec![
                    Tok::Duration(150_000_000),
                    Tok::Float(1.5),
                    Tok::Int(-3),
                    Tok::Duration(-5_000_000_000),
                    Tok::Eof,
                ],
                "literals",
            ),
            (
                "trace:duration",
                vec![
                    Tok::ScopedIntrinsic("trace".into(), "duration".into()),
                    Tok::Eof,
                ],
                "scoped intrinsic",
            ),
            (
                "span.\"a b\".c =~ \"x\\\"y\"",
                vec![
                    Tok::Attribute(Scope::Span, "a b.c".into()),
                    Tok::Re,
                    Tok::Str("x\"y".into()),
                    Tok::Eof,
                ],
                "quoted attribute part and escaped quote",
            ),
            (
                "{a} >> {b} << ~ > < | ,",
                vec![
                    Tok::LBrace,
                    Tok::Ident("a".into()),
                    Tok::RBrace,
                    Tok::Desc,
                    Tok::LBrace,
                    Tok::Ident("b".into()),
                    Tok::RBrace,
                    Tok::Ance,
                    Tok::Tilde,
                    Tok::Gt,
                    Tok::Lt,
                    Tok::Pipe,
                    Tok::Comma,
                    Tok::Eof,
                ],
                "structural operators",
            ),
            (
                "&>> !< +",
                vec![
                    Tok::Unsupported("&>>".into()),
                    Tok::Unsupported("!<".into()),
                    Tok::Unsupported("+".into()),
                    Tok::Eof,
                ],
                "refused later with a message",
            ),
        ];
        for (src, want, why) in cases {
            assert_eq!(toks(src), want, "{why}: {src}");
        }
    }

    #[test]
    fn lexing_errors_say_where() {
        for (src, at, why) in [
            ("{ name = \"open", 9, "unterminated string"),
            ("{ duration > 5xs }", 14, "unknown unit"),
            ("{ span. = 1 }", 2, "empty attribute name"),
            ("{ # }", 2, "stray character"),
        ] {
            let err = tokens(src)
                .err()
                .unwrap_or_else(|| panic!("{why}: accepted {src}"));
            assert_eq!(err.offset, at, "{why}: {err}");
        }
    }
}
