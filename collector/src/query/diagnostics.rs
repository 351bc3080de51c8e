//! What only a mesh-wide tracer can tell about a trace: where its tree is broken. A pure function over the
//! trace's spans, served as `GET /api/meshtrace/traces/{traceId}/diagnostics` and summed up in every v3
//! trace summary.
//!
//! - orphans: spans whose parent id is set but is not in the trace (the parent never arrived);
//! - roots: spans without a parent (more than one: the trace was split);
//! - untraced callees: CLIENT spans without a SERVER child (the callee is not traced, or dropped it);
//! - clock skew: children that start before their parent;
//! - context sources: for each SERVER span the meshtrace filter made, the format its context arrived in.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::model::SpanId;
use crate::store::SpanSkeleton;

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub span_id: String,
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    pub span_id: String,
    pub service: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UntracedCallee {
    pub span_id: String,
    pub service: String,
    pub name: String,
    /// `server.address`, `peer.service` or `net.peer.name` of the CLIENT span; empty when none is set.
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockSkew {
    pub span_id: String,
    pub parent_span_id: String,
    /// How much earlier than its parent the span starts (always > 0).
    pub skew_nanos: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextSource {
    pub span_id: String,
    pub service: String,
    pub name: String,
    /// `tracecontext`, `b3`, `b3multi`, `jaeger`, `x-request-id` or `none`, as the filter wrote it.
    pub source: String,
}

/// The diagnostics of one trace; every list is ordered by span start, then span id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    pub orphans: Vec<Orphan>,
    pub roots: Vec<Root>,
    pub untraced_callees: Vec<UntracedCallee>,
    pub clock_skew: Vec<ClockSkew>,
    pub context_sources: Vec<ContextSource>,
}

/// One of the problems a search can ask for (`query.meshtrace.diagnostics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Orphans,
    MultipleRoots,
    UntracedCallees,
    ClockSkew,
}

impl Problem {
    pub const NAMES: [&'static str; 4] =
        ["orphans", "multipleRoots", "untracedCallees", "clockSkew"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "orphans" => Some(Self::Orphans),
            "multipleRoots" => Some(Self::MultipleRoots),
            "untracedCallees" => Some(Self::UntracedCallees),
            "clockSkew" => Some(Self::ClockSkew),
            _ => None,
        }
    }
}

/// How many of each problem a trace has (what a summary carries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub orphans: usize,
    pub roots: usize,
    pub untraced_callees: usize,
    pub clock_skew: usize,
}

impl Counts {
    pub fn has(&self, problem: Problem) -> bool {
        match problem {
            Problem::Orphans => self.orphans > 0,
            Problem::MultipleRoots => self.roots > 1,
            Problem::UntracedCallees => self.untraced_callees > 0,
            Problem::ClockSkew => self.clock_skew > 0,
        }
    }
}

#[cfg(test)]
impl Diagnostics {
    fn counts(&self) -> Counts {
        Counts {
            orphans: self.orphans.len(),
            roots: self.roots.len(),
            untraced_callees: self.untraced_callees.len(),
            clock_skew: self.clock_skew.len(),
        }
    }
}

fn id(span: &SpanId) -> String {
    hex::encode(span)
}

/// One problem (or context source) found on one span.
enum Finding<'a> {
    Root(&'a SpanSkeleton),
    Orphan(&'a SpanSkeleton, SpanId),
    ClockSkew(&'a SpanSkeleton, SpanId, u64),
    UntracedCallee(&'a SpanSkeleton),
    ContextSource(&'a SpanSkeleton, &'a str),
}

/// Calls `f` with every finding, spans in start order: the one rule behind `diagnose` and `count`.
fn findings<'a>(spans: &'a [SpanSkeleton], mut f: impl FnMut(Finding<'a>)) {
    let mut order: Vec<&SpanSkeleton> = spans.iter().collect();
    order.sort_by_key(|s| (s.start_ns, s.span_id));
    let by_id: HashMap<SpanId, &SpanSkeleton> =
        order.iter().rev().map(|s| (s.span_id, *s)).collect();
    let called: HashSet<SpanId> = spans
        .iter()
        .filter(|s| s.kind == SERVER)
        .filter_map(|s| s.parent)
        .collect();
    for s in order {
        match s.parent {
            None => f(Finding::Root(s)),
            Some(parent_id) => match by_id.get(&parent_id) {
                None => f(Finding::Orphan(s, parent_id)),
                Some(parent) if s.start_ns < parent.start_ns => f(Finding::ClockSkew(
                    s,
                    parent_id,
                    parent.start_ns - s.start_ns,
                )),
                Some(_) => {}
            },
        }
        if s.kind == CLIENT && !called.contains(&s.span_id) {
            f(Finding::UntracedCallee(s));
        }
        if let (SERVER, Some(source)) = (s.kind, &s.context_source) {
            f(Finding::ContextSource(s, source));
        }
    }
}

/// The diagnostics of the trace made of `spans` (each span once).
pub fn diagnose(spans: &[SpanSkeleton]) -> Diagnostics {
    let mut out = Diagnostics::default();
    findings(spans, |finding| match finding {
        Finding::Root(s) => out.roots.push(Root {
            span_id: id(&s.span_id),
            service: s.service.to_string(),
            name: s.name.clone(),
        }),
        Finding::Orphan(s, parent) => out.orphans.push(Orphan {
            span_id: id(&s.span_id),
            parent_span_id: id(&parent),
            service: s.service.to_string(),
            name: s.name.clone(),
        }),
        Finding::ClockSkew(s, parent, skew_nanos) => out.clock_skew.push(ClockSkew {
            span_id: id(&s.span_id),
            parent_span_id: id(&parent),
            skew_nanos,
        }),
        Finding::UntracedCallee(s) => out.untraced_callees.push(UntracedCallee {
            span_id: id(&s.span_id),
            service: s.service.to_string(),
            name: s.name.clone(),
            peer: s.peer.clone().unwrap_or_default(),
        }),
        Finding::ContextSource(s, source) => out.context_sources.push(ContextSource {
            span_id: id(&s.span_id),
            service: s.service.to_string(),
            name: s.name.clone(),
            source: source.to_string(),
        }),
    });
    out
}

/// How many of each problem the trace has, without building the lists (what summaries need).
pub fn count(spans: &[SpanSkeleton]) -> Counts {
    let mut c = Counts::default();
    findings(spans, |finding| match finding {
        Finding::Root(_) => c.roots += 1,
        Finding::Orphan(..) => c.orphans += 1,
        Finding::ClockSkew(..) => c.clock_skew += 1,
        Finding::UntracedCallee(_) => c.untraced_callees += 1,
        Finding::ContextSource(..) => {}
    });
    c
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
    use std::sync::Arc;

    fn sk(id: u8, parent: Option<u8>, service: &str, kind: i32, start: u64) -> SpanSkeleton {
        SpanSkeleton {
            span_id: [id; 8],
            parent: parent.map(|p| [p; 8]),
            service: Arc::from(service),
            name: format!("op{id}"),
            kind,
            start_ns: start,
            end_ns: start + 100,
            error: false,
            context_source: None,
            peer: None,
        }
    }

    fn hex8(b: u8) -> String {
        hex::encode([b; 8])
    }

    #[test]
    fn a_healthy_trace_has_nothing_to_report_but_its_root() {
        let mut server = sk(3, Some(2), "cart", SERVER, 20);
        server.context_source = Some("tracecontext".into());
        let spans = [
            sk(1, None, "front", SERVER, 0),
            sk(2, Some(1), "front", CLIENT, 10),
            server,
        ];
        let d = diagnose(&spans);
        assert_eq!(d.roots.len(), 1);
        assert!(d.orphans.is_empty() && d.untraced_callees.is_empty() && d.clock_skew.is_empty());
        assert_eq!(
            d.context_sources,
            vec![ContextSource {
                span_id: hex8(3),
                service: "cart".into(),
                name: "op3".into(),
                source: "tracecontext".into()
            }]
        );
    }

    #[test]
    fn each_problem_is_found_with_its_reason() {
        let mut callee_unknown = sk(4, Some(1), "front", CLIENT, 30);
        callee_unknown.peer = Some("payments.internal".into());
        let mut untagged_server = sk(7, Some(6), "billing", SERVER, 12);
        untagged_server.context_source = None;
        let spans = [
            sk(1, None, "front", SERVER, 10),
            // A client whose server half arrived: fine.
            sk(2, Some(1), "front", CLIENT, 15),
            sk(3, Some(2), "cart", SERVER, 16),
            callee_unknown,
            // A second root: the trace was split by a hop that dropped the context.
            sk(5, None, "cart", SERVER, 50),
            // Its parent never arrived.
            untagged_server,
            // Starts 4 ns before its parent (span 1 at 10).
            sk(8, Some(1), "front", 1, 6),
            // An INTERNAL child does not make a CLIENT span traced.
            sk(9, Some(10), "front", CLIENT, 60),
            sk(11, Some(9), "front", 1, 61),
        ];
        let d = diagnose(&spans);
        assert_eq!(count(&spans), d.counts(), "counting agrees with the lists");
        let roots: Vec<&str> = d.roots.iter().map(|r| r.span_id.as_str()).collect();
        assert_eq!(roots, [hex8(1), hex8(5)], "two spans without parent");
        let orphans: Vec<(&str, &str)> = d
            .orphans
            .iter()
            .map(|o| (o.span_id.as_str(), o.parent_span_id.as_str()))
            .collect();
        assert_eq!(
            orphans,
            [
                (hex8(7).as_str(), hex8(6).as_str()),
                (hex8(9).as_str(), hex8(10).as_str())
            ],
            "parents 6 and 10 never arrived"
        );
        assert_eq!(
            d.clock_skew,
            vec![ClockSkew {
                span_id: hex8(8),
                parent_span_id: hex8(1),
                skew_nanos: 4
            }],
            "a child starting before its parent"
        );
        let callees: Vec<(&str, &str)> = d
            .untraced_callees
            .iter()
            .map(|c| (c.span_id.as_str(), c.peer.as_str()))
            .collect();
        assert_eq!(
            callees,
            [
                (hex8(4).as_str(), "payments.internal"),
                (hex8(9).as_str(), "")
            ],
            "client spans without a SERVER child, with their peer when known"
        );
        let c = d.counts();
        assert!(c.has(Problem::Orphans) && c.has(Problem::MultipleRoots));
        assert!(c.has(Problem::UntracedCallees) && c.has(Problem::ClockSkew));
    }

    #[test]
    fn counts_say_which_problems_a_trace_has() {
        let cases: &[(Counts, Problem, bool, &str)] = &[
            (
                Counts {
                    roots: 1,
                    ..Default::default()
                },
                Problem::MultipleRoots,
                false,
                "one root is normal",
            ),
            (
                Counts {
                    roots: 2,
                    ..Default::default()
                },
                Problem::MultipleRoots,
                true,
                "two roots",
            ),
            (
                Counts {
                    roots: 0,
                    orphans: 3,
                    ..Default::default()
                },
                Problem::Orphans,
                true,
                "orphans",
            ),
            (Counts::default(), Problem::ClockSkew, false, "nothing"),
        ];
        for (counts, problem, want, why) in cases {
            assert_eq!(counts.has(*problem), *want, "{why}");
        }
        for name in Problem::NAMES {
            assert!(Problem::parse(name).is_some(), "{name} parses");
        }
        assert_eq!(Problem::parse("orphan"), None, "names are exact");
    }
}
