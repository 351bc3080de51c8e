//! A recursive-descent parser for the TraceQL subset (see `ast`). Precedence follows Tempo's grammar:
//! inside `{ }` comparisons bind tighter than `&&` and `||`, which bind equally, left to right; between
//! spansets the structural operators (`>`, `>>`, `<`, `<<`, `~`) bind tighter than `&&` and `||`.
//! Every error says where and what was expected.

use regex_lite::Regex;

use super::ast::*;
use super::lexer::{tokens, Tok, Token};
use super::ParseError;

const ARITHMETIC: [&str; 6] = ["+", "-", "*", "/", "%", "^"];
const AGGREGATES: [&str; 5] = ["count", "avg", "min", "max", "sum"];
const METRICS_FUNCTIONS: [&str; 10] = [
    "rate",
    "count_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
];

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    at: usize,
    /// Parentheses and `!` open around the current token.
    depth: usize,
    /// Binary operators (`&&`, `||`, structural) read so far.
    operators: usize,
}

/// Bounds on a query's shape. The parser, the evaluator and the tree's drop all recurse, so a query of
/// 100,000 `(` or a chain of 100,000 `&&` would overflow a thread's stack and take the collector down
/// (the `traceql` fuzz target did exactly that); Tempo's own queries stay far below these.
const MAX_DEPTH: usize = 64;
const MAX_OPERATORS: usize = 256;

fn intrinsic(word: &str) -> Option<Intrinsic> {
    Some(match word {
        "name" => Intrinsic::Name,
        "status" => Intrinsic::Status,
        "statusMessage" => Intrinsic::StatusMessage,
        "kind" => Intrinsic::Kind,
        "duration" => Intrinsic::Duration,
        "rootName" => Intrinsic::RootName,
        "rootServiceName" => Intrinsic::RootService,
        "traceDuration" => Intrinsic::TraceDuration,
        _ => return None,
    })
}

fn scoped_intrinsic(scope: &str, name: &str) -> Option<Intrinsic> {
    Some(match (scope, name) {
        ("span", "name") => Intrinsic::Name,
        ("span", "status") => Intrinsic::Status,
        ("span", "statusMessage") => Intrinsic::StatusMessage,
        ("span", "kind") => Intrinsic::Kind,
        ("span", "duration") => Intrinsic::Duration,
        ("span", "id") => Intrinsic::SpanId,
        ("span", "parentID") => Intrinsic::ParentId,
        ("trace", "duration") => Intrinsic::TraceDuration,
        ("trace", "rootName") => Intrinsic::RootName,
        ("trace", "rootService") => Intrinsic::RootService,
        ("trace", "id") => Intrinsic::TraceId,
        _ => return None,
    })
}

fn keyword(word: &str) -> Option<Value> {
    Some(match word {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "nil" => Value::Nil,
        "ok" => Value::Status(Status::Ok),
        "error" => Value::Status(Status::Error),
        "unset" => Value::Status(Status::Unset),
        "unspecified" => Value::Kind(Kind::Unspecified),
        "internal" => Value::Kind(Kind::Internal),
        "server" => Value::Kind(Kind::Server),
        "client" => Value::Kind(Kind::Client),
        "producer" => Value::Kind(Kind::Producer),
        "consumer" => Value::Kind(Kind::Consumer),
        "minInt" => Value::Int(i64::MIN),
        "maxInt" => Value::Int(i64::MAX),
        _ => return None,
    })
}

fn cmp_op(tok: &Tok) -> Option<CmpOp> {
    Some(match tok {
        Tok::Eq => CmpOp::Eq,
        Tok::Neq => CmpOp::Neq,
        Tok::Gt => CmpOp::Gt,
        Tok::Gte => CmpOp::Gte,
        Tok::Lt => CmpOp::Lt,
        Tok::Lte => CmpOp::Lte,
        Tok::Re => CmpOp::Re,
        Tok::Nre => CmpOp::Nre,
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.at).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek2(&self) -> &Tok {
        self.toks.get(self.at + 1).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.src.len(), |t| t.pos)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.at += 1;
        t
    }

    fn error(&self, expected: &str) -> ParseError {
        let found = match self.peek() {
            Tok::Unsupported(op) => format!("`{op}`, which this server does not support"),
            other => other.describe(),
        };
        ParseError::at(self.src, self.pos(), expected, found)
    }

    /// Enters a parenthesis or a `!`, refusing more than `MAX_DEPTH` of them open at once.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(&format!("at most {MAX_DEPTH} nested parentheses or `!`")));
        }
        Ok(())
    }

    /// Counts a binary operator, refusing more than `MAX_OPERATORS` in a query.
    fn operator(&mut self) -> Result<(), ParseError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(self.error(&format!(
                "the end of the query: at most {MAX_OPERATORS} `&&`, `||` and structural operators"
            )));
        }
        Ok(())
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<(), ParseError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        let first = self.stage()?;
        let mut stages = match first {
            Stage::Spanset(_) => vec![first],
            other => vec![Stage::Spanset(SpansetExpr::Filter(None)), other],
        };
        while *self.peek() == Tok::Pipe {
            self.bump();
            stages.push(self.stage()?);
        }
        if *self.peek() != Tok::Eof {
            let expected = if matches!(self.peek(), Tok::Ident(w) if w == "with") {
                "the end of the query (query hints `with (...)` are not supported)"
            } else {
                "`|` or the end of the query"
            };
            return Err(self.error(expected));
        }
        Ok(Query { stages })
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        const EXPECTED: &str = "a spanset `{ ... }`, an aggregate (`count()`, `avg(...)`, `min(...)`, `max(...)`, \
                                `sum(...)`) compared to a value, `by(...)`, `select(...)` or `coalesce()`";
        match self.peek().clone() {
            Tok::LBrace | Tok::LParen => Ok(Stage::Spanset(self.spanset_expr()?)),
            Tok::Ident(w) if AGGREGATES.contains(&w.as_str()) => {
                let aggregate = self.aggregate()?;
                let Some(op) = cmp_op(self.peek()).filter(|op| !matches!(op, CmpOp::Re | CmpOp::Nre)) else {
                    return Err(self.error("a comparison (`=`, `!=`, `>`, `>=`, `<`, `<=`) after the aggregate"));
                };
                self.bump();
                let value = self.literal("a value to compare the aggregate with")?;
                Ok(Stage::Scalar { aggregate, op, value })
            }
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) if matches!(self.peek2(), Tok::Eq | Tok::Neq | Tok::Gt | Tok::Gte | Tok::Lt | Tok::Lte) => {
                let value = self.literal("a value")?;
                let op = cmp_op(&self.bump()).unwrap_or(CmpOp::Eq);
                let aggregate = self.aggregate()?;
                // `5 < count()` reads as `count() > 5`.
                let op = match op {
                    CmpOp::Gt => CmpOp::Lt,
                    CmpOp::Gte => CmpOp::Lte,
                    CmpOp::Lt => CmpOp::Gt,
                    CmpOp::Lte => CmpOp::Gte,
                    other => other,
                };
                Ok(Stage::Scalar { aggregate, op, value })
            }
            Tok::Ident(w) if w == "by" => {
                self.bump();
                self.expect(Tok::LParen, "`(` after `by`")?;
                let field = self.field("a field to group by")?;
                self.expect(Tok::RParen, "`)` closing `by(`")?;
                Ok(Stage::By(field))
            }
            Tok::Ident(w) if w == "select" => {
                self.bump();
                self.expect(Tok::LParen, "`(` after `select`")?;
                let mut fields = vec![self.field("a field to select")?];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    fields.push(self.field("a field to select")?);
                }
                self.expect(Tok::RParen, "`,` or `)` closing `select(`")?;
                Ok(Stage::Select(fields))
            }
            Tok::Ident(w) if w == "coalesce" => {
                self.bump();
                self.expect(Tok::LParen, "`(` after `coalesce`")?;
                self.expect(Tok::RParen, "`)`: `coalesce()` takes no argument")?;
                Ok(Stage::Coalesce)
            }
            Tok::Ident(w) if METRICS_FUNCTIONS.contains(&w.as_str()) => Err(self.error(
                "a search stage (TraceQL metrics functions such as rate() are not supported by this server)",
            )),
            _ => Err(self.error(EXPECTED)),
        }
    }

    fn aggregate(&mut self) -> Result<Aggregate, ParseError> {
        let Tok::Ident(name) = self.bump() else {
            self.at -= 1;
            return Err(self.error(
                "an aggregate (`count()`, `avg(...)`, `min(...)`, `max(...)`, `sum(...)`)",
            ));
        };
        self.expect(Tok::LParen, &format!("`(` after `{name}`"))?;
        let aggregate = match name.as_str() {
            "count" => Aggregate::Count,
            "avg" | "min" | "max" | "sum" => {
                let field = self.field(&format!(
                    "a field for `{name}(`: `duration` or an attribute"
                ))?;
                match name.as_str() {
                    "avg" => Aggregate::Avg(field),
                    "min" => Aggregate::Min(field),
                    "max" => Aggregate::Max(field),
                    _ => Aggregate::Sum(field),
                }
            }
            _ => {
                self.at -= 2;
                return Err(self.error(
                    "an aggregate (`count()`, `avg(...)`, `min(...)`, `max(...)`, `sum(...)`)",
                ));
            }
        };
        let closing = if aggregate == Aggregate::Count {
            "`)`: `count()` takes no argument"
        } else {
            "`)` closing the aggregate"
        };
        self.expect(Tok::RParen, closing)?;
        Ok(aggregate)
    }

    fn spanset_expr(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut left = self.spanset_structural()?;
        loop {
            let op = match self.peek() {
                Tok::And => SpansetOp::And,
                Tok::Or => SpansetOp::Or,
                _ => return Ok(left),
            };
            self.operator()?;
            self.bump();
            let right = self.spanset_structural()?;
            left = SpansetExpr::Op(op, Box::new(left), Box::new(right));
        }
    }

    fn spanset_structural(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut left = self.spanset_primary()?;
        loop {
            let op = match self.peek() {
                Tok::Gt => SpansetOp::Child,
                Tok::Desc => SpansetOp::Descendant,
                Tok::Lt => SpansetOp::Parent,
                Tok::Ance => SpansetOp::Ancestor,
                Tok::Tilde => SpansetOp::Sibling,
                Tok::Nre | Tok::Unsupported(_) => {
                    return Err(self.error(
                        "a spanset operator this server supports: `&&`, `||`, `>`, `>>`, `<`, `<<`, `~` \
                         (the union and negated structural operators are not supported)",
                    ))
                }
                _ => return Ok(left),
            };
            self.operator()?;
            self.bump();
            let right = self.spanset_primary()?;
            left = SpansetExpr::Op(op, Box::new(left), Box::new(right));
        }
    }

    fn spanset_primary(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek() {
            Tok::LBrace => {
                self.bump();
                if *self.peek() == Tok::RBrace {
                    self.bump();
                    return Ok(SpansetExpr::Filter(None));
                }
                let expr = self.field_expr()?;
                self.expect(Tok::RBrace, "`&&`, `||` or `}` closing the spanset")?;
                Ok(SpansetExpr::Filter(Some(expr)))
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let expr = self.spanset_expr()?;
                if *self.peek() == Tok::Pipe {
                    return Err(self.error("`)`: pipelines inside parentheses are not supported"));
                }
                self.expect(Tok::RParen, "a spanset operator or `)`")?;
                self.depth -= 1;
                Ok(expr)
            }
            _ => Err(self.error("a spanset `{ ... }` or `(`")),
        }
    }

    fn field_expr(&mut self) -> Result<FieldExpr, ParseError> {
        let mut left = self.field_term()?;
        loop {
            let and = match self.peek() {
                Tok::And => true,
                Tok::Or => false,
                _ => return Ok(left),
            };
            self.operator()?;
            self.bump();
            let right = self.field_term()?;
            left = if and {
                FieldExpr::And(Box::new(left), Box::new(right))
            } else {
                FieldExpr::Or(Box::new(left), Box::new(right))
            };
        }
    }

    fn field_term(&mut self) -> Result<FieldExpr, ParseError> {
        match self.peek() {
            Tok::Not => {
                self.enter()?;
                self.bump();
                let inner = self.field_term()?;
                self.depth -= 1;
                Ok(FieldExpr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let inner = self.field_expr()?;
                self.expect(Tok::RParen, "`&&`, `||` or `)`")?;
                self.depth -= 1;
                Ok(inner)
            }
            _ => {
                let left = self.operand()?;
                let Some(op) = cmp_op(self.peek()) else {
                    if matches!(self.peek(), Tok::Unsupported(op) if ARITHMETIC.contains(&op.as_str()))
                    {
                        return Err(self.error("a comparison (arithmetic is not supported)"));
                    }
                    return Ok(FieldExpr::Truthy(left));
                };
                let op_at = self.pos();
                self.bump();
                let right = self.operand()?;
                if matches!(self.peek(), Tok::Unsupported(op) if ARITHMETIC.contains(&op.as_str()))
                {
                    return Err(self.error("`&&`, `||` or `}` (arithmetic is not supported)"));
                }
                let regex = match (op, &right) {
                    (CmpOp::Re | CmpOp::Nre, Operand::Static(Value::Str(pattern))) => {
                        Some(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                            ParseError::at(
                                self.src,
                                op_at,
                                "a valid regular expression",
                                format!("{pattern:?} ({e})"),
                            )
                        })?)
                    }
                    (CmpOp::Re | CmpOp::Nre, _) => {
                        return Err(ParseError::at(
                            self.src,
                            op_at,
                            "a string literal (the pattern) after `=~` or `!~`",
                            "something else".into(),
                        ))
                    }
                    _ => None,
                };
                // `nil = span.x` reads as `span.x = nil`.
                let (left, right) = match (left, right) {
                    (Operand::Static(Value::Nil), field @ Operand::Field(_)) => {
                        (field, Operand::Static(Value::Nil))
                    }
                    other => other,
                };
                Ok(FieldExpr::Compare {
                    left,
                    op,
                    right,
                    regex,
                })
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        const EXPECTED: &str = "a field (an intrinsic such as `name`, `status`, `duration`, or an attribute such as \
                                `span.http.method`, `resource.service.name`, `.user.id`) or a value";
        match self.peek().clone() {
            Tok::Ident(w) if keyword(&w).is_some() => {
                self.bump();
                Ok(Operand::Static(keyword(&w).unwrap_or(Value::Nil)))
            }
            Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) => {
                Ok(Operand::Static(self.literal(EXPECTED)?))
            }
            Tok::Ident(_) | Tok::ScopedIntrinsic(..) | Tok::Attribute(..) => {
                Ok(Operand::Field(self.field(EXPECTED)?))
            }
            _ => Err(self.error(EXPECTED)),
        }
    }

    fn literal(&mut self, expected: &str) -> Result<Value, ParseError> {
        let value = match self.peek() {
            Tok::Str(s) => Value::Str(s.clone()),
            Tok::Int(i) => Value::Int(*i),
            Tok::Float(f) => Value::Float(*f),
            Tok::Duration(d) => Value::Duration(*d),
            Tok::Ident(w) => match keyword(w) {
                Some(v) => v,
                None => return Err(self.error(expected)),
            },
            _ => return Err(self.error(expected)),
        };
        self.bump();
        Ok(value)
    }

    fn field(&mut self, expected: &str) -> Result<Field, ParseError> {
        let field = match self.peek() {
            Tok::Attribute(scope, name) => Field::Attribute {
                scope: *scope,
                name: name.clone(),
            },
            Tok::Ident(w) => match intrinsic(w) {
                Some(i) => Field::Intrinsic(i),
                None => {
                    return Err(self.error(&format!(
                        "{expected}; `{w}` is not an intrinsic this server knows (name, status, statusMessage, kind, \
                         duration, rootName, rootServiceName, traceDuration)"
                    )))
                }
            },
            Tok::ScopedIntrinsic(scope, name) => match scoped_intrinsic(scope, name) {
                Some(i) => Field::Intrinsic(i),
                None => return Err(self.error(&format!("{expected}; `{scope}:{name}` is not supported"))),
            },
            _ => return Err(self.error(expected)),
        };
        self.bump();
        Ok(field)
    }
}

/// Parses a query of the subset, or says where it stops being one.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    if src.trim().is_empty() {
        return Err(ParseError::at(
            src,
            0,
            "a query such as `{ }`",
            "an empty query".into(),
        ));
    }
    let toks = tokens(src)?;
    Parser {
        src,
        toks,
        at: 0,
        depth: 0,
        operators: 0,
    }
    .query()
}

/// Parses a single field (`resource.service.name`, `.user.id`, `name`, `span:status`), as the tag
/// endpoints name them.
pub fn parse_field(src: &str) -> Result<Field, ParseError> {
    let toks = tokens(src)?;
    let mut p = Parser {
        src,
        toks,
        at: 0,
        depth: 0,
        operators: 0,
    };
    let field = p.field("a field (an intrinsic or a scoped attribute)")?;
    if *p.peek() != Tok::Eof {
        return Err(p.error("the end of the field name"));
    }
    Ok(field)
}
