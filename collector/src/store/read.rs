//! Answering queries from snapshots (MVCC: readers never block the writer and see whole batches only).

use std::collections::{BTreeMap, HashMap, HashSet};

use fjall::Snapshot;

use super::keys::{self, TraceSummary};
use super::{part, Store, StoreError};
use crate::model::{kind_name, SpanRecord, TraceId};

/// Upper bound on search entries one search looks at, so a broad query cannot run unbounded.
const MAX_SCANNED: usize = 500_000;
/// Upper bound on traces one search reads to check conditions the chosen index does not answer.
const MAX_VERIFIED: usize = 20_000;
/// Upper bound on traces the dependency graph reads.
const MAX_DEPENDENCY_TRACES: usize = 20_000;
/// A search entry carries the earliest start of the spans behind it; a part whose spans start up to this
/// long before the searched window may still hold a span inside it, so the scan reaches that far back
/// (and checks such candidates against their spans).
const PART_SPREAD_US: u64 = 3_600_000_000;

/// A trace search, as Jaeger's `/api/traces` asks it: a trace matches when one of its spans matches all
/// the conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub service: String,
    pub operation: Option<String>,
    pub tags: Vec<(String, String)>,
    pub start_us: u64,
    pub end_us: u64,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    pub limit: usize,
}

impl TraceQuery {
    /// Whether `rec` alone satisfies every condition.
    fn matches(&self, rec: &SpanRecord) -> bool {
        let start = rec.start_us();
        let duration = rec.duration_us();
        if rec.service_name() != self.service
            || start < self.start_us
            || start > self.end_us
            || self.min_duration_us.is_some_and(|m| duration < m)
            || self.max_duration_us.is_some_and(|m| duration > m)
            || self
                .operation
                .as_deref()
                .is_some_and(|op| op != rec.span.name)
        {
            return false;
        }
        if self.tags.is_empty() {
            return true;
        }
        let tags = rec.searchable_tags();
        self.tags.iter().all(|want| tags.contains(want))
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
        read_trace(&self.parts.snapshot(), trace)
    }

    /// Trace ids matching `q`, newest first, at most `q.limit`.
    ///
    /// Scans the service's search entries newest first within the window. An entry whose durations or
    /// operation and tag hashes rule the query out is skipped without reading anything else; the others
    /// are checked against the trace's spans, once per trace (a service-only search whose entry starts
    /// inside the window needs no check).
    pub fn find_traces(&self, q: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let at = self.keyspace.instant();
        let parts = self.parts.snapshot_at(at);
        let search = self.search.snapshot_at(at);
        let prefix = keys::service_prefix(&q.service);
        let mut wanted: Vec<u32> = q.tags.iter().map(|(k, v)| keys::tag_hash(k, v)).collect();
        wanted.extend(q.operation.as_deref().map(keys::operation_hash));
        let covered = wanted.is_empty()
            && q.min_duration_us.is_none()
            && q.max_duration_us.is_none()
            && q.service.len() <= keys::MAX_KEY_STRING;
        let lo = q.start_us.saturating_sub(PART_SPREAD_US);
        let lower = [prefix.as_slice(), &lo.to_be_bytes()].concat();
        let upper = [
            prefix.as_slice(),
            &q.end_us.to_be_bytes(),
            &[0xff; keys::PART_REF_LEN],
        ]
        .concat();

        let mut found = Vec::new();
        let mut decided = HashSet::new();
        let mut verified = 0usize;
        for item in search
            .range(lower.as_slice()..=upper.as_slice())
            .rev()
            .take(MAX_SCANNED)
        {
            if found.len() >= q.limit || verified >= MAX_VERIFIED {
                break;
            }
            let (key, value) = item?;
            let Some(trace) = keys::part_ref_suffix(&key).and_then(keys::trace_of) else {
                continue;
            };
            if decided.contains(&trace) {
                continue;
            }
            let Some(v) = keys::SearchValue::decode(&value) else {
                continue;
            };
            if q.min_duration_us.is_some_and(|m| v.max_dur < m)
                || q.max_duration_us.is_some_and(|m| v.min_dur > m)
                || !wanted.iter().all(|h| v.may_contain(*h))
            {
                continue;
            }
            let start = keys::u64_before_ref(&key).unwrap_or(0);
            let matched = if covered && start >= q.start_us {
                true
            } else {
                verified += 1;
                read_trace(&parts, &trace)?.iter().any(|r| q.matches(r))
            };
            decided.insert(trace);
            if matched {
                found.push(trace);
            }
        }
        Ok(found)
    }

    /// Service-to-service call counts from traces that started in `[start_us, end_us]`.
    pub fn dependencies(&self, start_us: u64, end_us: u64) -> Result<Vec<Dependency>, StoreError> {
        let at = self.keyspace.instant();
        let parts = self.parts.snapshot_at(at);
        let age = self.age.snapshot_at(at);
        let lower = keys::age_key(start_us, &[0; 16]);
        let upper = keys::age_key(end_us, &[0xff; 16]);
        let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        let mut seen = HashSet::new();
        for item in age.range(lower.as_slice()..=upper.as_slice()) {
            if seen.len() >= MAX_DEPENDENCY_TRACES {
                break;
            }
            let (k, _) = item?;
            let Some((_, trace)) = keys::age_key_parts(&k) else {
                continue;
            };
            if !seen.insert(trace) {
                continue;
            }
            let records = read_trace(&parts, &trace)?;
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
        summarize(&self.parts.snapshot(), trace)
    }
}

/// The summary of one trace from its parts' headers.
pub(super) fn summarize(
    parts: &Snapshot,
    trace: &TraceId,
) -> Result<Option<TraceSummary>, StoreError> {
    let mut out: Option<TraceSummary> = None;
    for item in parts.prefix(trace) {
        let (_, v) = item?;
        if let Some(s) = part::summary_of(&v) {
            out = Some(out.map_or(s, |o| o.merge(s)));
        }
    }
    Ok(out)
}

fn read_trace(parts: &Snapshot, trace: &TraceId) -> Result<Vec<SpanRecord>, StoreError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for item in parts.prefix(trace) {
        let (_, v) = item?;
        for rec in part::decode_value(&v).unwrap_or_default() {
            if seen.insert((rec.span_id, rec.discriminator())) {
                out.push(rec);
            }
        }
    }
    Ok(out)
}
