//! Answering queries from read transactions (MVCC snapshots: readers never block the writer).

use std::collections::{BTreeMap, HashMap, HashSet};

use redb::{ReadOnlyTable, ReadableTable};

use super::keys::{self, TraceSummary};
use super::schema::*;
use super::{Store, StoreError};
use crate::model::{kind_name, SpanRecord, TraceId};

/// Upper bound on index entries one search looks at, so a broad query cannot run unbounded.
const MAX_SCANNED: usize = 500_000;
/// Upper bound on traces the dependency graph reads.
const MAX_DEPENDENCY_TRACES: usize = 20_000;

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

/// An edge of the service dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

impl Store {
    pub fn services(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SERVICES)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            out.push(item?.0.value().to_string());
        }
        Ok(out)
    }

    /// Operations of a service as `(name, span kind name)`, optionally only one kind.
    pub fn operations(
        &self,
        service: &str,
        kind: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OPERATIONS)?;
        let prefix = keys::service_prefix(service);
        let mut out = Vec::new();
        for item in table.range(prefix.as_slice()..)? {
            let (k, _) = item?;
            let k = k.value();
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

    /// All spans of a trace, in key order.
    pub fn trace(&self, trace: &TraceId) -> Result<Vec<SpanRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let spans = txn.open_table(SPANS)?;
        read_trace(&spans, trace)
    }

    /// Trace ids matching `q`, newest first, at most `q.limit`.
    pub fn find_traces(&self, q: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let txn = self.db.begin_read()?;
        let spans = txn.open_table(SPANS)?;
        let use_duration_index = q.operation.is_none()
            && q.tags.is_empty()
            && (q.min_duration_us.is_some() || q.max_duration_us.is_some());
        let (table, prefix, verify_op, verify_tags) = if let Some((k, v)) = q.tags.first() {
            (
                txn.open_table(BY_TAG)?,
                keys::tag_prefix(&q.service, k, v),
                q.operation.is_some(),
                q.tags.len() > 1,
            )
        } else if let Some(op) = &q.operation {
            (
                txn.open_table(BY_OPERATION)?,
                keys::operation_prefix(&q.service, op),
                false,
                false,
            )
        } else if use_duration_index {
            (
                txn.open_table(BY_DURATION)?,
                keys::service_prefix(&q.service),
                false,
                false,
            )
        } else {
            (
                txn.open_table(BY_SERVICE)?,
                keys::service_prefix(&q.service),
                false,
                false,
            )
        };
        let (lo, hi) = if use_duration_index {
            (
                q.min_duration_us.unwrap_or(0),
                q.max_duration_us.unwrap_or(u64::MAX),
            )
        } else {
            (q.start_us, q.end_us)
        };
        let lower = [prefix.as_slice(), &lo.to_be_bytes()].concat();
        let upper = [
            prefix.as_slice(),
            &hi.to_be_bytes(),
            &[0xff; keys::SPAN_REF_LEN],
        ]
        .concat();

        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for item in table
            .range(lower.as_slice()..=upper.as_slice())?
            .rev()
            .take(MAX_SCANNED)
        {
            if found.len() >= q.limit {
                break;
            }
            let (k, v) = item?;
            let key = k.value();
            let Some(sref) = keys::span_ref_suffix(key) else {
                continue;
            };
            let Some(trace) = keys::trace_of(sref) else {
                continue;
            };
            if seen.contains(&trace) {
                continue;
            }
            let (start, duration) = if use_duration_index {
                (v.value(), keys::u64_before_ref(key).unwrap_or(0))
            } else {
                (keys::u64_before_ref(key).unwrap_or(0), v.value())
            };
            if start < q.start_us || start > q.end_us {
                continue;
            }
            if q.min_duration_us.is_some_and(|m| duration < m)
                || q.max_duration_us.is_some_and(|m| duration > m)
            {
                continue;
            }
            if verify_op || verify_tags {
                let Some(rec) = spans.get(sref)?.and_then(|v| SpanRecord::decode(v.value())) else {
                    continue;
                };
                if verify_op && q.operation.as_deref() != Some(rec.span.name.as_str()) {
                    continue;
                }
                if verify_tags {
                    let tags = rec.searchable_tags();
                    if !q.tags.iter().all(|want| tags.contains(want)) {
                        continue;
                    }
                }
            }
            seen.insert(trace);
            found.push(trace);
        }
        Ok(found)
    }

    /// Service-to-service call counts from traces that started in `[start_us, end_us]`.
    pub fn dependencies(&self, start_us: u64, end_us: u64) -> Result<Vec<Dependency>, StoreError> {
        let txn = self.db.begin_read()?;
        let spans = txn.open_table(SPANS)?;
        let age = txn.open_table(TRACE_AGE)?;
        let lower = keys::age_key(start_us, &[0; 16]);
        let upper = keys::age_key(end_us, &[0xff; 16]);
        let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
        for item in age
            .range(lower.as_slice()..=upper.as_slice())?
            .take(MAX_DEPENDENCY_TRACES)
        {
            let (k, _) = item?;
            let Some((_, trace)) = keys::age_key_parts(k.value()) else {
                continue;
            };
            let records = read_trace(&spans, &trace)?;
            let service_of: HashMap<[u8; 8], &str> = records
                .iter()
                .map(|r| (r.span_id, r.service_name()))
                .collect();
            for r in &records {
                let Some(parent) = r.parent_span_id() else {
                    continue;
                };
                let Some(parent_service) = service_of.get(&parent) else {
                    continue;
                };
                if *parent_service != r.service_name() {
                    *edges
                        .entry((parent_service.to_string(), r.service_name().to_string()))
                        .or_default() += 1;
                }
            }
        }
        Ok(edges
            .into_iter()
            .map(|((parent, child), call_count)| Dependency {
                parent,
                child,
                call_count,
            })
            .collect())
    }

    /// The summary of one trace, if stored.
    pub fn trace_summary(&self, trace: &TraceId) -> Result<Option<TraceSummary>, StoreError> {
        let txn = self.db.begin_read()?;
        let traces = txn.open_table(TRACES)?;
        Ok(traces
            .get(trace.as_slice())?
            .and_then(|v| TraceSummary::decode(v.value())))
    }
}

fn read_trace(
    spans: &ReadOnlyTable<&'static [u8], &'static [u8]>,
    trace: &TraceId,
) -> Result<Vec<SpanRecord>, StoreError> {
    let upper = [trace.as_slice(), &[0xff; 12]].concat();
    let mut out = Vec::new();
    for item in spans.range(trace.as_slice()..=upper.as_slice())? {
        let (_, v) = item?;
        if let Some(rec) = SpanRecord::decode(v.value()) {
            out.push(rec);
        }
    }
    Ok(out)
}
