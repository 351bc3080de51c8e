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

impl Store {
    /// Stores `records` durably in one batch. Writing a trace part that is already stored (a retried
    /// export of the same spans) adds nothing; spans stored twice in different parts are shown once.
    pub fn write_spans(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
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
        let mut state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
        let mut added = 0u64;
        let mut new_known: HashSet<Vec<u8>> = HashSet::new();
        for trace in &order {
            let Some(group) = groups.get(trace) else {
                continue;
            };
            let group = dedupe(group);
            added += self.put_part(&mut batch, trace, &group)?;
            for rec in &group {
                let service = rec.service_name();
                let service_key = [b"s:", service.as_bytes()].concat();
                if !state.known.contains(&service_key) && new_known.insert(service_key) {
                    batch.insert(&self.services, service.as_bytes(), []);
                }
                let op = keys::operation_key(service, rec.span.kind, &rec.span.name);
                let op_key = [b"o:", op.as_slice()].concat();
                if !state.known.contains(&op_key) && new_known.insert(op_key) {
                    batch.insert(&self.operations, op, []);
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
        state.known.extend(new_known);
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

    /// Adds one trace part to `batch`; returns the bytes it adds (0 when it is already stored).
    fn put_part(
        &self,
        batch: &mut Batch,
        trace: &TraceId,
        group: &[&SpanRecord],
    ) -> Result<u64, StoreError> {
        let Some(first) = group.first() else {
            return Ok(0);
        };
        let spans = part::encode_spans(group);
        let part_ref = keys::part_ref(trace, keys::fnv64(&spans));
        if self.parts.contains_key(part_ref)? {
            return Ok(0);
        }
        let entries = keys::part_search_entries(group.iter().copied(), &part_ref);
        let mut summary = TraceSummary {
            start_us: first.start_us(),
            end_us: first.span.end_time_unix_nano / 1_000,
            error: false,
            bytes: 0,
        };
        for rec in group {
            summary.start_us = summary.start_us.min(rec.start_us());
            summary.end_us = summary.end_us.max(rec.span.end_time_unix_nano / 1_000);
            summary.error |= rec.is_error();
        }
        summary.bytes = (part_ref.len()
            + TraceSummary::LEN
            + spans.len()
            + keys::age_key(0, trace).len()
            + entries.iter().map(|e| e.key.len() + 8).sum::<usize>())
            as u64;
        batch.insert(&self.parts, part_ref, part::encode_value(&summary, &spans));
        batch.insert(&self.age, keys::age_key(summary.start_us, trace), []);
        for e in entries {
            batch.insert(&self.search, e.key, e.value);
        }
        Ok(summary.bytes)
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
