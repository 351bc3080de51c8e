//! Adding spans. One call is one redb transaction committed with `Durability::Immediate` (fsync), so when
//! `write_spans` returns `Ok` every span in it survives a crash.
//!
//! The spans of a call are grouped by trace; each group is one trace part (see `keys`): one value and a
//! handful of deduplicated index entries, instead of one value and ~20 index entries per span.

use std::collections::{HashMap, HashSet};

use redb::{ReadableTable, Table, WriteTransaction};

use super::keys::{self, Index, TraceSummary};
use super::schema::*;
use super::{part, Store, StoreError};
use crate::model::{SpanRecord, TraceId};

impl Store {
    /// Stores `records` in one durable transaction. Writing a trace part that is already stored (a
    /// retried export of the same spans) adds nothing; spans stored twice in different parts are shown
    /// once.
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
        let known = self.known.lock().map(|k| k.clone()).unwrap_or_default();
        let mut new_known: HashSet<Vec<u8>> = HashSet::new();
        let txn = self.db.begin_write()?;
        {
            let mut tables = Tables::open(&txn)?;
            let mut stored = tables
                .meta
                .get(META_STORED_BYTES)?
                .map(|v| v.value())
                .unwrap_or(0);
            for trace in &order {
                let Some(group) = groups.get(trace) else {
                    continue;
                };
                let group = dedupe(group);
                stored += tables.put_part(trace, &group, &self.unindexed)?;
                for rec in &group {
                    let service = rec.service_name();
                    let service_key = [b"s:", service.as_bytes()].concat();
                    if !known.contains(&service_key) && new_known.insert(service_key) {
                        tables.services.insert(service, ())?;
                    }
                    let op = keys::operation_key(service, rec.span.kind, &rec.span.name);
                    let op_key = [b"o:", op.as_slice()].concat();
                    if !known.contains(&op_key) && new_known.insert(op_key) {
                        tables.operations.insert(op.as_slice(), ())?;
                    }
                }
            }
            tables.meta.insert(META_STORED_BYTES, stored)?;
        }
        txn.commit()?;
        if !new_known.is_empty() {
            if let Ok(mut k) = self.known.lock() {
                k.extend(new_known);
            }
        }
        Ok(())
    }

    /// Removes whole traces and everything indexing them, in one transaction.
    pub fn delete_traces(&self, traces: &[TraceId]) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut freed = 0u64;
        {
            let mut tables = Tables::open(&txn)?;
            for trace in traces {
                freed += tables.delete_trace(trace, &self.unindexed)?;
            }
            let stored = tables
                .meta
                .get(META_STORED_BYTES)?
                .map(|v| v.value())
                .unwrap_or(0);
            tables
                .meta
                .insert(META_STORED_BYTES, stored.saturating_sub(freed))?;
        }
        txn.commit()?;
        Ok(freed)
    }
}

/// The spans of a group with duplicates (same span id and discriminator) removed, the last copy kept, in
/// a canonical order, so that the same spans always make the same part.
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

struct Tables<'txn> {
    parts: Table<'txn, &'static [u8], &'static [u8]>,
    age: Table<'txn, &'static [u8], ()>,
    by_service: Table<'txn, &'static [u8], u64>,
    by_operation: Table<'txn, &'static [u8], u64>,
    by_tag: Table<'txn, &'static [u8], u64>,
    services: Table<'txn, &'static str, ()>,
    operations: Table<'txn, &'static [u8], ()>,
    meta: Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            parts: txn.open_table(PARTS)?,
            age: txn.open_table(TRACE_AGE)?,
            by_service: txn.open_table(BY_SERVICE)?,
            by_operation: txn.open_table(BY_OPERATION)?,
            by_tag: txn.open_table(BY_TAG)?,
            services: txn.open_table(SERVICES)?,
            operations: txn.open_table(OPERATIONS)?,
            meta: txn.open_table(META)?,
        })
    }

    fn index(&mut self, index: Index) -> &mut Table<'txn, &'static [u8], u64> {
        match index {
            Index::Service => &mut self.by_service,
            Index::Operation => &mut self.by_operation,
            Index::Tag => &mut self.by_tag,
        }
    }

    /// Stores one trace part; returns the bytes it added (0 when it was already stored).
    fn put_part(
        &mut self,
        trace: &TraceId,
        group: &[&SpanRecord],
        unindexed: &HashSet<String>,
    ) -> Result<u64, StoreError> {
        let Some(first) = group.first() else {
            return Ok(0);
        };
        let spans = part::encode_spans(group);
        let part_ref = keys::part_ref(trace, keys::fnv64(&spans));
        if self.parts.get(part_ref.as_slice())?.is_some() {
            return Ok(0);
        }
        let entries = keys::part_index_entries(group.iter().copied(), &part_ref, unindexed);
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
        let compressed = part::compress(&spans);
        summary.bytes = (part_ref.len()
            + TraceSummary::LEN
            + compressed.len()
            + keys::age_key(0, trace).len()
            + entries.iter().map(|e| e.key.len() + 8).sum::<usize>())
            as u64;
        let value = part::encode_value(&summary, &compressed);
        self.parts.insert(part_ref.as_slice(), value.as_slice())?;
        self.age
            .insert(keys::age_key(summary.start_us, trace).as_slice(), ())?;
        for e in &entries {
            self.index(e.index).insert(e.key.as_slice(), e.value)?;
        }
        Ok(summary.bytes)
    }

    /// Deletes one trace (all its parts); returns the bytes freed.
    fn delete_trace(
        &mut self,
        trace: &TraceId,
        unindexed: &HashSet<String>,
    ) -> Result<u64, StoreError> {
        let mut parts = Vec::new();
        {
            let upper = keys::part_ref(trace, u64::MAX);
            for item in self.parts.range(trace.as_slice()..=upper.as_slice())? {
                let (k, v) = item?;
                parts.push((k.value().to_vec(), v.value().to_vec()));
            }
        }
        let mut freed = 0u64;
        for (key, value) in parts {
            self.parts.remove(key.as_slice())?;
            let Ok(part_ref) = keys::PartRef::try_from(key.as_slice()) else {
                continue;
            };
            if let Some(summary) = part::summary_of(&value) {
                self.age
                    .remove(keys::age_key(summary.start_us, trace).as_slice())?;
                freed += summary.bytes;
            }
            let records = part::decode_value(&value).unwrap_or_default();
            for e in keys::part_index_entries(records.iter(), &part_ref, unindexed) {
                self.index(e.index).remove(e.key.as_slice())?;
            }
        }
        Ok(freed)
    }
}
