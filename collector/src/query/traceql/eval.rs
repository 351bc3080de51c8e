//! Running a query on one trace, with Tempo's semantics: a spanset filter selects the spans that match
//! its condition; `&&`/`||` between spansets need both/either sides to find spans and keep the spans of
//! both; structural operators keep the right side's spans that stand in the relation to a left side's
//! span; the pipeline's later stages filter, group (`by`), count or aggregate the spansets. A trace
//! matches when spansets are left at the end.
//!
//! Comparisons are typed as in Tempo (a string never equals a number), with one leniency for spans that
//! arrive over Zipkin, whose tags are all strings: a string attribute that reads as a number compares
//! with a number literal. Attributes named by a legacy name (`http.status_code`) also read the stable
//! one (`http.response.status_code`) and the reverse.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use regex_lite::Regex;

use super::ast::*;
use crate::model::{SpanId, SpanRecord};
use crate::query::aliases::ALIASES;

/// A set of spans (indices into `TraceView::spans`, in start order) and the values it was grouped by.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanset {
    pub spans: Vec<usize>,
    /// `("by(resource.service.name)", value)` for each `by` it went through.
    pub attributes: Vec<(String, Value)>,
}

/// One trace, indexed for evaluation.
pub struct TraceView<'a> {
    pub spans: Vec<&'a SpanRecord>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// The root: the earliest span without a parent.
    pub root: Option<usize>,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl<'a> TraceView<'a> {
    pub fn new(records: &'a [SpanRecord]) -> Self {
        let mut spans: Vec<&SpanRecord> = records.iter().collect();
        spans.sort_by_key(|r| (r.span.start_time_unix_nano, r.span_id));
        let index: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .rev()
            .map(|(i, r)| (r.span_id, i))
            .collect();
        let parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.parent_span_id()
                    .and_then(|p| index.get(&p).copied())
                    .filter(|p| *p != i)
            })
            .collect();
        let mut children = vec![Vec::new(); spans.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(list) = p.and_then(|p| children.get_mut(p)) {
                list.push(i);
            }
        }
        let root = spans.iter().position(|r| r.parent_span_id().is_none());
        let start_ns = spans
            .iter()
            .map(|r| r.span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end_ns = spans
            .iter()
            .map(|r| r.span.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        Self {
            spans,
            parent,
            children,
            root,
            start_ns,
            end_ns,
        }
    }

    /// The ancestors of span `i`, nearest first (bounded, so a cycle of parent ids cannot loop).
    fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut at = i;
        (0..self.spans.len()).map_while(move |_| {
            let p = self.parent.get(at).copied().flatten()?;
            at = p;
            Some(p)
        })
    }

    /// The value of `field` on span `i`.
    pub fn value(&self, i: usize, field: &Field) -> Value {
        let Some(rec) = self.spans.get(i) else {
            return Value::Nil;
        };
        match field {
            Field::Intrinsic(intrinsic) => self.intrinsic(rec, *intrinsic),
            Field::Attribute { scope, name } => {
                let span = || attribute(&rec.span.attributes, name);
                let resource = || attribute(&rec.resource.attributes, name);
                match scope {
                    Scope::Span => span(),
                    Scope::Resource => resource(),
                    Scope::Any => span().or_else(resource),
                }
                .map_or(Value::Nil, any_value)
            }
        }
    }

    fn intrinsic(&self, rec: &SpanRecord, intrinsic: Intrinsic) -> Value {
        let root = self.root.and_then(|r| self.spans.get(r));
        match intrinsic {
            Intrinsic::Name => Value::Str(rec.span.name.clone()),
            Intrinsic::Status => Value::Status(match rec.span.status.as_ref().map(|s| s.code) {
                Some(2) => Status::Error,
                Some(1) => Status::Ok,
                _ => Status::Unset,
            }),
            Intrinsic::StatusMessage => Value::Str(
                rec.span
                    .status
                    .as_ref()
                    .map(|s| s.message.clone())
                    .unwrap_or_default(),
            ),
            Intrinsic::Kind => Value::Kind(match rec.span.kind {
                1 => Kind::Internal,
                2 => Kind::Server,
                3 => Kind::Client,
                4 => Kind::Producer,
                5 => Kind::Consumer,
                _ => Kind::Unspecified,
            }),
            Intrinsic::Duration => Value::Duration(nanos(
                rec.span
                    .end_time_unix_nano
                    .saturating_sub(rec.span.start_time_unix_nano),
            )),
            Intrinsic::RootName => root.map_or(Value::Nil, |r| Value::Str(r.span.name.clone())),
            Intrinsic::RootService => {
                root.map_or(Value::Nil, |r| Value::Str(r.service_name().to_string()))
            }
            Intrinsic::TraceDuration => {
                Value::Duration(nanos(self.end_ns.saturating_sub(self.start_ns)))
            }
            Intrinsic::TraceId => Value::Str(hex::encode(rec.trace_id)),
            Intrinsic::SpanId => Value::Str(hex::encode(rec.span_id)),
            Intrinsic::ParentId => rec
                .parent_span_id()
                .map_or(Value::Nil, |p| Value::Str(hex::encode(p))),
        }
    }
}

fn nanos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn alias(name: &str) -> Option<&'static str> {
    ALIASES.iter().find_map(|(legacy, stable)| {
        if *legacy == name {
            Some(*stable)
        } else if *stable == name {
            Some(*legacy)
        } else {
            None
        }
    })
}

fn attribute<'a>(attrs: &'a [KeyValue], name: &str) -> Option<&'a AnyValue> {
    let find = |key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
    };
    find(name).or_else(|| alias(name).and_then(find))
}

fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::Float(*d),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_value).collect())
        }
        _ => Value::Nil,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn ordered(ord: std::cmp::Ordering, op: CmpOp) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Neq => ord != Equal,
        CmpOp::Gt => ord == Greater,
        CmpOp::Gte => ord != Less,
        CmpOp::Lt => ord == Less,
        CmpOp::Lte => ord != Greater,
        CmpOp::Re | CmpOp::Nre => false,
    }
}

/// `left op right`, typed (see the module documentation); `regex` is the anchored pattern of `=~`/`!~`.
pub fn compare(left: &Value, op: CmpOp, right: &Value, regex: Option<&Regex>) -> bool {
    match (left, right) {
        // `= nil` / `!= nil`: whether the field is missing (the parser puts the literal on the right).
        (v, Value::Nil) => match op {
            CmpOp::Eq => matches!(v, Value::Nil),
            CmpOp::Neq => !matches!(v, Value::Nil),
            _ => false,
        },
        // A missing field compares with nothing.
        (Value::Nil, _) => false,
        (Value::Array(items), other) => match op {
            CmpOp::Neq | CmpOp::Nre => {
                let positive = if op == CmpOp::Neq {
                    CmpOp::Eq
                } else {
                    CmpOp::Re
                };
                !items.iter().any(|i| compare(i, positive, other, regex))
            }
            _ => items.iter().any(|i| compare(i, op, other, regex)),
        },
        (Value::Str(s), _) if matches!(op, CmpOp::Re | CmpOp::Nre) => {
            regex.is_some_and(|re| re.is_match(s)) == (op == CmpOp::Re)
        }
        (Value::Str(a), Value::Str(b)) => ordered(a.cmp(b), op),
        (Value::Duration(a), Value::Duration(b)) => ordered(a.cmp(b), op),
        (Value::Int(a), Value::Int(b)) => ordered(a.cmp(b), op),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, CmpOp::Eq | CmpOp::Neq) => {
            (a == b) == (op == CmpOp::Eq)
        }
        (Value::Status(a), Value::Status(b)) if matches!(op, CmpOp::Eq | CmpOp::Neq) => {
            (a == b) == (op == CmpOp::Eq)
        }
        (Value::Kind(a), Value::Kind(b)) if matches!(op, CmpOp::Eq | CmpOp::Neq) => {
            (a == b) == (op == CmpOp::Eq)
        }
        (Value::Str(s), n) if number(n).is_some() => s
            .trim()
            .parse::<f64>()
            .ok()
            .zip(number(n))
            .and_then(|(a, b)| a.partial_cmp(&b))
            .is_some_and(|o| ordered(o, op)),
        (a, b) => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).is_some_and(|o| ordered(o, op)),
            _ => false,
        },
    }
}

fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl TraceView<'_> {
    fn operand(&self, i: usize, o: &Operand) -> Value {
        match o {
            Operand::Field(f) => self.value(i, f),
            Operand::Static(v) => v.clone(),
        }
    }

    /// Whether span `i` satisfies `e`.
    pub fn test(&self, e: &FieldExpr, i: usize) -> bool {
        match e {
            FieldExpr::And(a, b) => self.test(a, i) && self.test(b, i),
            FieldExpr::Or(a, b) => self.test(a, i) || self.test(b, i),
            FieldExpr::Not(a) => !self.test(a, i),
            FieldExpr::Compare {
                left,
                op,
                right,
                regex,
            } => compare(
                &self.operand(i, left),
                *op,
                &self.operand(i, right),
                regex.as_ref(),
            ),
            FieldExpr::Truthy(o) => self.operand(i, o) == Value::Bool(true),
        }
    }

    /// The spans of `universe` that `expr` selects.
    pub fn spanset(&self, expr: &SpansetExpr, universe: &[usize]) -> Vec<usize> {
        match expr {
            SpansetExpr::Filter(None) => universe.to_vec(),
            SpansetExpr::Filter(Some(e)) => universe
                .iter()
                .copied()
                .filter(|i| self.test(e, *i))
                .collect(),
            SpansetExpr::Op(op, l, r) => {
                let left = self.spanset(l, universe);
                let right = self.spanset(r, universe);
                let in_left: HashSet<usize> = left.iter().copied().collect();
                match op {
                    SpansetOp::And if left.is_empty() || right.is_empty() => Vec::new(),
                    SpansetOp::And | SpansetOp::Or => union(&left, &right),
                    SpansetOp::Child => right
                        .into_iter()
                        .filter(|j| {
                            self.parent
                                .get(*j)
                                .copied()
                                .flatten()
                                .is_some_and(|p| in_left.contains(&p))
                        })
                        .collect(),
                    SpansetOp::Descendant => right
                        .into_iter()
                        .filter(|j| self.ancestors(*j).any(|a| in_left.contains(&a)))
                        .collect(),
                    SpansetOp::Parent => right
                        .into_iter()
                        .filter(|j| {
                            self.children
                                .get(*j)
                                .is_some_and(|c| c.iter().any(|k| in_left.contains(k)))
                        })
                        .collect(),
                    SpansetOp::Ancestor => {
                        let above: HashSet<usize> =
                            left.iter().flat_map(|i| self.ancestors(*i)).collect();
                        right.into_iter().filter(|j| above.contains(j)).collect()
                    }
                    SpansetOp::Sibling => right
                        .into_iter()
                        .filter(|j| {
                            let parent = self.parent.get(*j).copied().flatten();
                            parent.is_some_and(|p| {
                                left.iter().any(|k| {
                                    k != j && self.parent.get(*k).copied().flatten() == Some(p)
                                })
                            })
                        })
                        .collect(),
                }
            }
        }
    }

    fn aggregate(&self, aggregate: &Aggregate, set: &[usize]) -> Value {
        let (field, how) = match aggregate {
            Aggregate::Count => return Value::Int(i64::try_from(set.len()).unwrap_or(i64::MAX)),
            Aggregate::Avg(f) => (f, "avg"),
            Aggregate::Min(f) => (f, "min"),
            Aggregate::Max(f) => (f, "max"),
            Aggregate::Sum(f) => (f, "sum"),
        };
        let values: Vec<Value> = set.iter().map(|i| self.value(*i, field)).collect();
        let durations: Vec<f64> = values
            .iter()
            .filter_map(|v| match v {
                Value::Duration(d) => Some(*d as f64),
                _ => None,
            })
            .collect();
        let is_duration = !durations.is_empty();
        let numbers: Vec<f64> = if is_duration {
            durations
        } else {
            values.iter().filter_map(number).collect()
        };
        if numbers.is_empty() {
            return Value::Nil;
        }
        let all_ints = !is_duration
            && values
                .iter()
                .all(|v| matches!(v, Value::Int(_) | Value::Nil));
        let result = match how {
            "avg" => numbers.iter().sum::<f64>() / numbers.len() as f64,
            "min" => numbers.iter().copied().fold(f64::INFINITY, f64::min),
            "max" => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            _ => numbers.iter().sum(),
        };
        if is_duration {
            Value::Duration(result as i64)
        } else if all_ints && how != "avg" {
            Value::Int(result as i64)
        } else {
            Value::Float(result)
        }
    }

    /// Runs the pipeline; the trace matches when the result is not empty.
    pub fn run(&self, query: &Query) -> Vec<Spanset> {
        let all: Vec<usize> = (0..self.spans.len()).collect();
        let mut sets: Vec<Spanset> = vec![Spanset {
            spans: all,
            attributes: Vec::new(),
        }];
        for stage in &query.stages {
            sets = match stage {
                Stage::Spanset(expr) => sets
                    .into_iter()
                    .map(|s| Spanset {
                        spans: self.spanset(expr, &s.spans),
                        attributes: s.attributes,
                    })
                    .collect(),
                Stage::Scalar {
                    aggregate,
                    op,
                    value,
                } => sets
                    .into_iter()
                    .filter(|s| compare(&self.aggregate(aggregate, &s.spans), *op, value, None))
                    .collect(),
                Stage::By(field) => {
                    let label = format!("by({})", field.label());
                    let mut out = Vec::new();
                    for s in sets {
                        let mut groups: Vec<(Value, Vec<usize>)> = Vec::new();
                        for i in s.spans {
                            let v = self.value(i, field);
                            match groups.iter_mut().find(|(g, _)| *g == v) {
                                Some((_, members)) => members.push(i),
                                None => groups.push((v, vec![i])),
                            }
                        }
                        for (v, spans) in groups {
                            let mut attributes = s.attributes.clone();
                            attributes.push((label.clone(), v));
                            out.push(Spanset { spans, attributes });
                        }
                    }
                    out
                }
                Stage::Select(_) => sets,
                Stage::Coalesce => {
                    let spans = sets.iter().fold(Vec::new(), |acc, s| union(&acc, &s.spans));
                    vec![Spanset {
                        spans,
                        attributes: Vec::new(),
                    }]
                }
            };
            sets.retain(|s| !s.spans.is_empty());
            if sets.is_empty() {
                break;
            }
        }
        sets
    }
}
