//! Adding spans. One call is one redb transaction committed with `Durability::Immediate` (fsync), so when
//! `write_spans` returns `Ok` every span in it survives a crash.

use redb::{ReadableTable, Table, WriteTransaction};

use super::keys::{self, Index, IndexEntry, TraceSummary};
use super::schema::*;
use super::{Store, StoreError};
use crate::model::{SpanRecord, TraceId};

impl Store {
    /// Stores `records` in one durable transaction. A span already stored under the same key is replaced
    /// (a retried export is idempotent).
    pub fn write_spans(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut tables = Tables::open(&txn)?;
            let mut stored = tables
                .meta
                .get(META_STORED_BYTES)?
                .map(|v| v.value())
                .unwrap_or(0);
            for rec in records {
                stored = tables.put_span(rec, stored)?;
            }
            tables.meta.insert(META_STORED_BYTES, stored)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes whole traces and everything indexing them, in one transaction.
    pub fn delete_traces(&self, traces: &[TraceId]) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut freed = 0u64;
        {
            let mut tables = Tables::open(&txn)?;
            for trace in traces {
                freed += tables.delete_trace(trace)?;
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

struct Tables<'txn> {
    spans: Table<'txn, &'static [u8], &'static [u8]>,
    traces: Table<'txn, &'static [u8], &'static [u8]>,
    age: Table<'txn, &'static [u8], ()>,
    by_service: Table<'txn, &'static [u8], u64>,
    by_operation: Table<'txn, &'static [u8], u64>,
    by_tag: Table<'txn, &'static [u8], u64>,
    by_duration: Table<'txn, &'static [u8], u64>,
    services: Table<'txn, &'static str, ()>,
    operations: Table<'txn, &'static [u8], ()>,
    meta: Table<'txn, &'static str, u64>,
}

fn span_bytes(key_len: usize, value_len: usize, entries: &[IndexEntry]) -> u64 {
    (key_len + value_len + entries.iter().map(|e| e.key.len() + 8).sum::<usize>()) as u64
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            spans: txn.open_table(SPANS)?,
            traces: txn.open_table(TRACES)?,
            age: txn.open_table(TRACE_AGE)?,
            by_service: txn.open_table(BY_SERVICE)?,
            by_operation: txn.open_table(BY_OPERATION)?,
            by_tag: txn.open_table(BY_TAG)?,
            by_duration: txn.open_table(BY_DURATION)?,
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
            Index::Duration => &mut self.by_duration,
        }
    }

    /// Stores one span; returns the new stored-bytes total.
    fn put_span(&mut self, rec: &SpanRecord, mut stored: u64) -> Result<u64, StoreError> {
        let key = keys::span_ref(rec);
        let value = rec.encode();
        let previous = self.spans.get(key.as_slice())?.map(|v| v.value().to_vec());
        let mut summary = self
            .traces
            .get(rec.trace_id.as_slice())?
            .and_then(|v| TraceSummary::decode(v.value()));
        if let Some(previous) = previous {
            if previous == value {
                return Ok(stored);
            }
            if let Some(old) = SpanRecord::decode(&previous) {
                let old_entries = keys::index_entries(&old);
                for e in &old_entries {
                    self.index(e.index).remove(e.key.as_slice())?;
                }
                let old_bytes = span_bytes(key.len(), previous.len(), &old_entries);
                stored = stored.saturating_sub(old_bytes);
                if let Some(s) = summary.as_mut() {
                    s.bytes = s.bytes.saturating_sub(old_bytes);
                }
            }
        }
        self.spans.insert(key.as_slice(), value.as_slice())?;
        let entries = keys::index_entries(rec);
        for e in &entries {
            self.index(e.index).insert(e.key.as_slice(), e.value)?;
        }
        let added = span_bytes(key.len(), value.len(), &entries);
        let service = rec.service_name();
        self.services.insert(service, ())?;
        self.operations.insert(
            keys::operation_key(service, rec.span.kind, &rec.span.name).as_slice(),
            (),
        )?;

        let start = rec.start_us();
        let end = rec.span.end_time_unix_nano / 1_000;
        let new_summary = match summary {
            Some(s) => {
                if start < s.start_us {
                    self.age
                        .remove(keys::age_key(s.start_us, &rec.trace_id).as_slice())?;
                }
                TraceSummary {
                    start_us: s.start_us.min(start),
                    end_us: s.end_us.max(end),
                    error: s.error || rec.is_error(),
                    bytes: s.bytes + added,
                }
            }
            None => TraceSummary {
                start_us: start,
                end_us: end,
                error: rec.is_error(),
                bytes: added,
            },
        };
        self.age.insert(
            keys::age_key(new_summary.start_us, &rec.trace_id).as_slice(),
            (),
        )?;
        self.traces
            .insert(rec.trace_id.as_slice(), new_summary.encode().as_slice())?;
        Ok(stored + added)
    }

    /// Deletes one trace; returns the bytes freed.
    fn delete_trace(&mut self, trace: &TraceId) -> Result<u64, StoreError> {
        let mut records = Vec::new();
        {
            let upper = [trace.as_slice(), &[0xff; 12]].concat();
            for item in self.spans.range(trace.as_slice()..=upper.as_slice())? {
                let (k, v) = item?;
                records.push((k.value().to_vec(), v.value().to_vec()));
            }
        }
        let mut freed = 0u64;
        for (key, value) in records {
            self.spans.remove(key.as_slice())?;
            let entries = SpanRecord::decode(&value)
                .map(|r| keys::index_entries(&r))
                .unwrap_or_default();
            for e in &entries {
                self.index(e.index).remove(e.key.as_slice())?;
            }
            freed += span_bytes(key.len(), value.len(), &entries);
        }
        let summary = self
            .traces
            .remove(trace.as_slice())?
            .and_then(|v| TraceSummary::decode(v.value()));
        if let Some(s) = summary {
            self.age
                .remove(keys::age_key(s.start_us, trace).as_slice())?;
        }
        Ok(freed)
    }
}
