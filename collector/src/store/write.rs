//! Adding spans. One call is one fjall batch, appended to the journal and fsynced
//! (`PersistMode::SyncAll`) before `write_spans` returns, so when it returns `Ok` every span in it
//! survives a crash. The batch is atomic: after a crash it is either wholly there or not at all.
//!
//! The spans of a call are grouped by trace; each group is one trace part (see `keys`): one value, one
//! age entry and one search entry per service, instead of one value and ~20 index entries per span.

use std::collections::{HashMap, HashSet};

use fjall::{Batch, PersistMode};

use super::keys::{self, TraceSummary};
use super::schema::*;
use super::{part, Store, StoreError};
use crate::model::{SpanRecord, TraceId};

/// One trace part, encoded and ready to insert: everything but the insert itself is done before the
/// writer (single-threaded, holding the write lock) sees it.
pub struct PreparedPart {
    trace: TraceId,
    part_ref: keys::PartRef,
    value: Vec<u8>,
    start_us: u64,
    search: Vec<keys::SearchEntry>,
    bytes: u64,
    /// `s:` + service name and `o:` + operation key of its spans, for the listings.
    names: Vec<Vec<u8>>,
}

/// The trace parts of one submission (`Store::prepare`).
#[derive(Default)]
pub struct Prepared(Vec<PreparedPart>);

impl Prepared {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Store {
    /// Groups `records` by trace and encodes each group as a trace part. Pure CPU work, done by the
    /// caller (a receiver's task) so that the single writer only inserts and commits.
    pub fn prepare(records: &[SpanRecord]) -> Prepared {
        let mut order: Vec<TraceId> = Vec::new();
        let mut groups: HashMap<TraceId, Vec<&SpanRecord>> = HashMap::new();
        for rec in records {
            groups
                .entry(rec.trace_id)
                .or_insert_with(|| {
                    order.push(rec.trace_id);
                    Vec::new()
                })
                .push(rec);
        }
        Prepared(
            order
                .iter()
                .filter_map(|trace| groups.get(trace).map(|g| prepare_part(trace, &dedupe(g))))
                .flatten()
                .collect(),
        )
    }

    /// Stores `records` durably in one batch (`prepare` + `write_prepared`).
    pub fn write_spans(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
        self.write_prepared(&[Self::prepare(records)])
    }

    /// Stores prepared parts durably in one batch, fsynced before this returns. A part that is already
    /// stored (a retried export of the same spans) adds nothing; spans stored twice in different parts
    /// are shown once.
    pub fn write_prepared(&self, prepared: &[Prepared]) -> Result<(), StoreError> {
        let mut state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
        let mut added = 0u64;
        let mut new_known: HashSet<&[u8]> = HashSet::new();
        let mut in_batch: HashSet<&keys::PartRef> = HashSet::new();
        for part in prepared.iter().flat_map(|p| p.0.iter()) {
            if !in_batch.insert(&part.part_ref) || self.parts.contains_key(part.part_ref)? {
                continue;
            }
            batch.insert(&self.parts, part.part_ref, part.value.as_slice());
            batch.insert(&self.age, keys::age_key(part.start_us, &part.trace), []);
            for e in &part.search {
                batch.insert(&self.search, e.key.as_slice(), e.value.as_slice());
            }
            added += part.bytes;
            for name in &part.names {
                if state.known.contains(name) || !new_known.insert(name) {
                    continue;
                }
                match name.split_at_checked(2) {
                    Some((b"s:", service)) => batch.insert(&self.services, service, []),
                    Some((_, op)) => batch.insert(&self.operations, op, []),
                    None => {}
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let stored = state.stored_bytes + added;
        batch.insert(&self.meta, META_STORED_BYTES, stored.to_be_bytes());
        batch.commit()?;
        state.stored_bytes = stored;
        state
            .known
            .extend(new_known.into_iter().map(<[u8]>::to_vec));
        Ok(())
    }

    /// Removes whole traces and everything indexing them, in one atomic batch (not fsynced: a deletion
    /// lost in a crash is simply done again by the next retention pass).
    pub fn delete_traces(&self, traces: &[TraceId]) -> Result<u64, StoreError> {
        let mut state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = self.keyspace.batch();
        let mut freed = 0u64;
        for trace in traces {
            freed += self.delete_trace(&mut batch, trace)?;
        }
        let stored = state.stored_bytes.saturating_sub(freed);
        batch.insert(&self.meta, META_STORED_BYTES, stored.to_be_bytes());
        batch.commit()?;
        state.stored_bytes = stored;
        Ok(freed)
    }

    /// Adds the deletion of one trace (all its parts) to `batch`; returns the bytes freed.
    fn delete_trace(&self, batch: &mut Batch, trace: &TraceId) -> Result<u64, StoreError> {
        let mut freed = 0u64;
        for item in self.parts.prefix(trace) {
            let (key, value) = item?;
            batch.remove(&self.parts, key.clone());
            let Ok(part_ref) = keys::PartRef::try_from(&*key) else {
                continue;
            };
            if let Some(summary) = part::summary_of(&value) {
                batch.remove(&self.age, keys::age_key(summary.start_us, trace));
                freed += summary.bytes;
            }
            let records = part::decode_value(&value).unwrap_or_default();
            for e in keys::part_search_entries(records.iter(), &part_ref) {
                batch.remove(&self.search, e.key);
            }
        }
        Ok(freed)
    }
}

/// The spans of a group with duplicates (same span id and discriminator) removed, the last copy kept, so
/// that the same spans always make the same part.
fn dedupe<'a>(group: &[&'a SpanRecord]) -> Vec<&'a SpanRecord> {
    let mut seen = HashSet::new();
    let mut out: Vec<&SpanRecord> = group
        .iter()
        .rev()
        .filter(|r| seen.insert((r.span_id, r.discriminator())))
        .copied()
        .collect();
    out.reverse();
    out
}

fn prepare_part(trace: &TraceId, group: &[&SpanRecord]) -> Option<PreparedPart> {
    let first = group.first()?;
    let spans = part::encode_spans(group);
    let part_ref = keys::part_ref(trace, keys::fnv64(&spans));
    let search = keys::part_search_entries(group.iter().copied(), &part_ref);
    let mut summary = TraceSummary {
        start_us: first.start_us(),
        end_us: first.span.end_time_unix_nano / 1_000,
        error: false,
        bytes: 0,
    };
    let mut names: Vec<Vec<u8>> = Vec::new();
    for rec in group {
        summary.start_us = summary.start_us.min(rec.start_us());
        summary.end_us = summary.end_us.max(rec.span.end_time_unix_nano / 1_000);
        summary.error |= rec.is_error();
        let service = rec.service_name();
        names.push([b"s:", service.as_bytes()].concat());
        let op = keys::operation_key(service, rec.span.kind, &rec.span.name);
        names.push([b"o:", op.as_slice()].concat());
    }
    names.sort_unstable();
    names.dedup();
    summary.bytes = (part_ref.len()
        + TraceSummary::LEN
        + spans.len()
        + keys::age_key(0, trace).len()
        + search
            .iter()
            .map(|e| e.key.len() + e.value.len())
            .sum::<usize>()) as u64;
    Some(PreparedPart {
        trace: *trace,
        part_ref,
        value: part::encode_value(&summary, &spans),
        start_us: summary.start_us,
        search,
        bytes: summary.bytes,
        names,
    })
}
