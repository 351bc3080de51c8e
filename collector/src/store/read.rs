//! Answering queries from snapshots (MVCC: readers never block the writer and see whole batches only).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use super::chunk::ChunkCache;
use super::keys::{self, TraceSummary};
use super::scan::{Candidate, Condition, Flow, ScanFilter, ScanReport, TagMatch, TraceReader};
use super::skeleton::{decode_skeletons, SpanSkeleton};
use super::trace_index::View;
use super::{part, Store, StoreError};
use crate::model::{kind_name, SpanRecord, TraceId};

/// Upper bound on traces one search reads to check conditions the chosen index does not answer.
const MAX_VERIFIED: usize = 20_000;
/// Upper bound on traces the dependency graph reads.
const MAX_DEPENDENCY_TRACES: usize = 20_000;

/// A trace search, as Jaeger's `/api/traces` asks it: a trace matches when one of its spans matches all
/// the conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    /// The span's service; `None`: any service.
    pub service: Option<String>,
    pub operation: Option<String>,
    pub tags: Vec<TagMatch>,
    pub start_us: u64,
    pub end_us: u64,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    pub limit: usize,
}

impl TraceQuery {
    /// Whether `rec` alone satisfies every condition.
    pub fn matches(&self, rec: &SpanRecord) -> bool {
        let start = rec.start_us();
        let duration = rec.duration_us();
        !(self
            .service
            .as_deref()
            .is_some_and(|s| s != rec.service_name())
            || start < self.start_us
            || start > self.end_us
            || self.min_duration_us.is_some_and(|m| duration < m)
            || self.max_duration_us.is_some_and(|m| duration > m)
            || self
                .operation
                .as_deref()
                .is_some_and(|op| op != rec.span.name)
            || !self.tags.iter().all(|t| t.matches(rec)))
    }

    /// The entries this query can only be found through.
    pub fn scan_filter(&self) -> ScanFilter {
        ScanFilter {
            service: self.service.clone(),
            start_us: self.start_us,
            end_us: self.end_us,
            min_duration_us: self.min_duration_us,
            max_duration_us: self.max_duration_us,
            conditions: self
                .operation
                .iter()
                .map(|op| Condition::Operation(op.clone()))
                .chain(self.tags.iter().cloned().map(Condition::Tag))
                .collect(),
        }
    }

    /// Whether an entry of the query's service that starts inside the window is a match by itself (no
    /// condition is left for the spans to decide).
    fn entry_suffices(&self, c: &Candidate) -> bool {
        self.service
            .as_deref()
            .is_none_or(|s| s.len() <= keys::MAX_KEY_STRING)
            && self.operation.is_none()
            && self.tags.is_empty()
            && self.min_duration_us.is_none()
            && self.max_duration_us.is_none()
            && c.entry_start_us >= self.start_us
    }
}

/// An edge of the service dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    /// Calls where the parent or the child span is an error.
    pub error_count: u64,
}

impl Store {
    pub fn services(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in self.services.snapshot().keys() {
            out.push(String::from_utf8_lossy(&item?).into_owned());
        }
        Ok(out)
    }

    /// Operations of a service as `(name, span kind name)`, optionally only one kind.
    pub fn operations(
        &self,
        service: &str,
        kind: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = keys::service_prefix(service);
        let mut out = Vec::new();
        for item in self.operations.snapshot().prefix(&prefix) {
            let (k, _) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let Some((kind_byte, name)) = rest.split_first() else {
                continue;
            };
            let kind_name = kind_name(i32::from(*kind_byte)).to_string();
            if kind.is_some_and(|want| !want.is_empty() && want != kind_name) {
                continue;
            }
            out.push((String::from_utf8_lossy(name).into_owned(), kind_name));
        }
        Ok(out)
    }

    /// All spans of a trace (each once).
    pub fn trace(&self, trace: &TraceId) -> Result<Vec<SpanRecord>, StoreError> {
        self.reader(self.keyspace.instant())?.records(trace)
    }

    /// The lean view of every span of a trace (each once).
    pub fn trace_skeletons(&self, trace: &TraceId) -> Result<Vec<SpanSkeleton>, StoreError> {
        self.reader(self.keyspace.instant())?.skeletons(trace)
    }

    /// Trace ids matching `q`, newest first, at most `q.limit`.
    pub fn find_traces(&self, q: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let mut found = Vec::new();
        if q.limit == 0 {
            return Ok(found);
        }
        self.search(q, None, |trace, _| {
            found.push(*trace);
            Ok(Flow::stop_if(found.len() >= q.limit))
        })?;
        Ok(found)
    }

    /// Visits the traces matching `q` (one of their spans matches every condition), newest first, until
    /// the visitor says stop, the scan ends (see `scan`) or `MAX_VERIFIED` traces were checked against
    /// their spans. Entries whose durations or hashes rule the query out are skipped unread; the traces
    /// behind the others are checked against their spans, once per trace (a search with no condition
    /// but the service and the window needs no check for an entry that starts inside the window).
    pub fn search(
        &self,
        q: &TraceQuery,
        deadline: Option<Instant>,
        mut visit: impl FnMut(&TraceId, &TraceReader) -> Result<Flow, StoreError>,
    ) -> Result<ScanReport, StoreError> {
        let mut verified = 0usize;
        let mut report = self.scan(&q.scan_filter(), deadline, |c, reader| {
            let matched = if q.entry_suffices(&c) {
                reader.exists(&c)?
            } else {
                verified += 1;
                reader.records(&c.trace)?.iter().any(|r| q.matches(r))
            };
            if matched && visit(&c.trace, reader)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            Ok(Flow::stop_if(verified >= MAX_VERIFIED))
        })?;
        report.truncated |= verified >= MAX_VERIFIED;
        Ok(report)
    }

    /// Service-to-service call counts from traces that started in `[start_us, end_us]`.
    pub fn dependencies(&self, start_us: u64, end_us: u64) -> Result<Vec<Dependency>, StoreError> {
        let at = self.keyspace.instant();
        let reader = self.reader(at)?;
        let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        let mut seen = HashSet::new();
        for item in self.oldest_first(at, start_us, end_us)? {
            if seen.len() >= MAX_DEPENDENCY_TRACES {
                break;
            }
            let trace = item?.trace;
            if !seen.insert(trace) {
                continue;
            }
            let records = reader.records(&trace)?;
            let service_of: HashMap<[u8; 8], (&str, bool)> = records
                .iter()
                .map(|r| (r.span_id, (r.service_name(), r.is_error())))
                .collect();
            for r in &records {
                let Some(parent) = r.parent_span_id() else {
                    continue;
                };
                let Some((parent_service, parent_error)) = service_of.get(&parent) else {
                    continue;
                };
                if *parent_service != r.service_name() {
                    let counts = edges
                        .entry((parent_service.to_string(), r.service_name().to_string()))
                        .or_default();
                    counts.0 += 1;
                    counts.1 += u64::from(*parent_error || r.is_error());
                }
            }
        }
        Ok(edges
            .into_iter()
            .map(|((parent, child), (call_count, error_count))| Dependency {
                parent,
                child,
                call_count,
                error_count,
            })
            .collect())
    }

    /// The summary of one trace (all its parts), if stored.
    pub fn trace_summary(&self, trace: &TraceId) -> Result<Option<TraceSummary>, StoreError> {
        self.reader(self.keyspace.instant())?.summary(trace)
    }
}

/// The summary of one trace from its parts' summaries.
pub(super) fn summarize(
    index: &View,
    chunks: &ChunkCache,
    trace: &TraceId,
) -> Result<Option<TraceSummary>, StoreError> {
    let mut out: Option<TraceSummary> = None;
    for key in index.chunks_of(trace)? {
        if let Some(s) = chunks.summary(&key, trace)? {
            out = Some(out.map_or(s, |o| o.merge(s)));
        }
    }
    Ok(out)
}

pub(super) fn read_trace(
    index: &View,
    chunks: &ChunkCache,
    trace: &TraceId,
) -> Result<Vec<SpanRecord>, StoreError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for key in index.chunks_of(trace)? {
        chunks.for_each_part(&key, trace, |_, spans| {
            for rec in spans.and_then(part::records_in).unwrap_or_default() {
                if seen.insert((rec.span_id, rec.discriminator())) {
                    out.push(rec);
                }
            }
        })?;
    }
    Ok(out)
}

pub(super) fn read_skeletons(
    index: &View,
    chunks: &ChunkCache,
    trace: &TraceId,
) -> Result<Vec<SpanSkeleton>, StoreError> {
    let mut out = Vec::new();
    for key in index.chunks_of(trace)? {
        chunks.for_each_part(&key, trace, |_, spans| {
            if let Some(spans) = spans {
                decode_skeletons(spans, &mut out);
            }
        })?;
    }
    let mut seen = HashSet::new();
    out.retain(|s| seen.insert((s.span_id, s.discriminator())));
    Ok(out)
}
