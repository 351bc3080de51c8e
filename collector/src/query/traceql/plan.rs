//! What the store's search entries can rule out before a trace is read: from the query's first
//! spanset, the conditions every matching trace must have on one span (its service, operation, tags
//! and duration bounds), turned into a `TraceQuery` whose scan finds the candidates. Each candidate is
//! then evaluated in full, so the plan may let too much through, never too little.

use super::ast::*;
use crate::query::aliases;
use crate::store::TraceQuery;

/// The candidates' filter (without window or limit, which the caller sets).
pub fn candidates(query: &Query) -> TraceQuery {
    let mut q = TraceQuery::default();
    if let Some(Stage::Spanset(expr)) = query.stages.first() {
        spanset(expr, &mut q);
    }
    q
}

/// How many conditions a filter carries (to pick the more selective side of a spanset operator).
fn weight(q: &TraceQuery) -> usize {
    usize::from(q.service.is_some()) * 2
        + usize::from(q.operation.is_some())
        + q.tags.len()
        + usize::from(q.min_duration_us.is_some() || q.max_duration_us.is_some())
}

fn spanset(expr: &SpansetExpr, q: &mut TraceQuery) {
    match expr {
        SpansetExpr::Filter(None) => {}
        SpansetExpr::Filter(Some(e)) => conjuncts(e, q),
        // Either side may be what matched: nothing is required of a single span.
        SpansetExpr::Op(SpansetOp::Or, _, _) => {}
        // Both sides need a span: the spans of one side are enough to find the trace.
        SpansetExpr::Op(_, l, r) => {
            let mut left = TraceQuery::default();
            spanset(l, &mut left);
            let mut right = TraceQuery::default();
            spanset(r, &mut right);
            *q = if weight(&left) > weight(&right) {
                left
            } else {
                right
            };
        }
    }
}

/// Adds what the `&&`-joined comparisons of `e` require of one span.
fn conjuncts(e: &FieldExpr, q: &mut TraceQuery) {
    match e {
        FieldExpr::And(a, b) => {
            conjuncts(a, q);
            conjuncts(b, q);
        }
        FieldExpr::Compare {
            left: Operand::Field(field),
            op,
            right: Operand::Static(value),
            ..
        } => condition(field, *op, value, q),
        FieldExpr::Compare {
            left: Operand::Static(value),
            op,
            right: Operand::Field(field),
            ..
        } => {
            let flipped = match op {
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Gte => CmpOp::Lte,
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Lte => CmpOp::Gte,
                other => *other,
            };
            condition(field, flipped, value, q)
        }
        _ => {}
    }
}

/// The string an attribute of this value is indexed under (the store hashes attributes' string forms).
fn indexed(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn condition(field: &Field, op: CmpOp, value: &Value, q: &mut TraceQuery) {
    let micros = |ns: i64| u64::try_from(ns / 1_000).unwrap_or(0);
    match (field, op, value) {
        (
            Field::Attribute {
                scope: Scope::Resource,
                name,
            },
            CmpOp::Eq,
            Value::Str(s),
        ) if name == "service.name" && q.service.is_none() => q.service = Some(s.clone()),
        (Field::Intrinsic(Intrinsic::Name), CmpOp::Eq, Value::Str(s)) if q.operation.is_none() => {
            q.operation = Some(s.clone())
        }
        (Field::Intrinsic(Intrinsic::Status), CmpOp::Eq, Value::Status(Status::Error)) => {
            q.tags.push(aliases::tag("error", "true"))
        }
        (Field::Intrinsic(Intrinsic::Kind), CmpOp::Eq, Value::Kind(k)) => {
            let name = match k {
                Kind::Server => "server",
                Kind::Client => "client",
                Kind::Internal => "internal",
                Kind::Producer => "producer",
                Kind::Consumer => "consumer",
                Kind::Unspecified => return,
            };
            q.tags.push(aliases::tag("span.kind", name))
        }
        (Field::Intrinsic(Intrinsic::Duration), CmpOp::Gt | CmpOp::Gte, Value::Duration(d)) => {
            q.min_duration_us = Some(q.min_duration_us.unwrap_or(0).max(micros(*d)))
        }
        (Field::Intrinsic(Intrinsic::Duration), CmpOp::Lt | CmpOp::Lte, Value::Duration(d)) => {
            // A span shorter than the bound is at most this long, rounded up to whole µs.
            let bound = micros(*d).saturating_add(1);
            q.max_duration_us = Some(q.max_duration_us.map_or(bound, |m| m.min(bound)))
        }
        (Field::Attribute { name, .. }, CmpOp::Eq, v) => {
            if let Some(s) = indexed(v) {
                q.tags.push(aliases::tag(name, &s))
            }
        }
        _ => {}
    }
}
