//! Adding spans. The ingest writer adds the trace parts of a group of submissions to one fjall batch
//! (`Store::add`), next to the export queue's and the pending set's writes, and commits it with the
//! journal fsynced: when the commit returns every span in it survives a crash, and after a crash the
//! batch is either wholly there or not at all.
//!
//! The spans of a submission are grouped by trace; each group is one trace part (see `keys`), an entry
//! of the submission's chunk's part table (`chunk`: the request's own bytes, compressed once, and each
//! part's summary and spans' layout), found by trace through `trace_index`; and one search entry per
//! service for all of them (`entry`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use fjall::{Batch, Slice};
use foldhash::fast::RandomState;

use super::chunk::{self, ChunkKey, PartEntry};
use super::entry;
use super::keys::{self, TraceSummary};
use super::recent::RecentParts;
use super::schema::*;
use super::trace_index;
use super::{Store, StoreError, WriterState};
use crate::model::{SpanBatch, SpanRecord, TraceId};

/// A trace part of a submission before its chunk is made: its spans' layout in the request's bytes.
struct NewPart<'a> {
    part_ref: keys::PartRef,
    fingerprint: u64,
    summary: TraceSummary,
    layout: Vec<u8>,
    /// The length of the spans, resources and scopes its layout refers to.
    content: usize,
    /// Its search items, one per service.
    items: Vec<entry::Item<'a>>,
}

/// A submission's trace parts, in their chunk, ready to insert (`Store::prepare`), and the names its
/// spans add to the listings: everything but the inserts is done before the writer (single-threaded,
/// holding the write lock) sees it. Keys and values are fjall's own `Slice`s, built here: fjall copies
/// whatever it is given into one (an allocation and a copy per key and value), which done on the writer
/// thread was about a tenth of its work; a `Slice` is reference-counted, so the writer's insert is a
/// count increment.
#[derive(Default)]
pub struct Prepared {
    /// The chunk holding the parts (`chunk`): its key, as the trace index takes it and as a `Slice`,
    /// and its value; none when no part is new.
    chunk: Option<(ChunkKey, Slice, Slice)>,
    /// The traces of its parts, each once, for the trace index.
    traces: Vec<TraceId>,
    fingerprints: Vec<u64>,
    /// The parts' bytes (their share of the chunk, the entries and the index).
    bytes: u64,
    /// The parts' search entries (`entry`), keys and values.
    search: Vec<(Slice, Slice)>,
    /// `s:` + service name and `o:` + operation key, each once.
    names: Vec<Vec<u8>>,
}

impl Prepared {
    /// Trace parts.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// The bytes of the parts, their index entries and their chunk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Parts added to a batch that is not committed yet; `committed` records them once it is. Holds the
/// store's write lock, so retention never interleaves with a group commit.
pub struct Written<'a> {
    state: MutexGuard<'a, WriterState>,
    stored_bytes: u64,
    new_names: Vec<Vec<u8>>,
    recent: &'a std::sync::Mutex<RecentParts>,
    fingerprints: Vec<u64>,
    sealer: &'a super::Sealer,
}

impl Written<'_> {
    /// The batch was committed: count its bytes, remember its names and its parts.
    pub fn committed(mut self) {
        self.state.stored_bytes = self.stored_bytes;
        self.state.known.extend(self.new_names);
        if let Ok(mut recent) = self.recent.lock() {
            for f in self.fingerprints {
                recent.insert(f);
            }
        }
        self.sealer.nudge();
    }
}

impl Store {
    /// Groups the spans of `batch` by trace and encodes each group as a trace part, leaving out parts
    /// already stored (a retried export of the same spans). Done by the caller (a receiver's task) so
    /// that the single writer only inserts and commits.
    pub fn prepare(&self, batch: &SpanBatch) -> Prepared {
        let mut order: Vec<(TraceId, Vec<u32>)> = Vec::new();
        let mut slot: HashMap<TraceId, usize, RandomState> =
            HashMap::with_capacity_and_hasher(batch.len(), RandomState::default());
        // (service, kind, name) borrowed from the batch: the keys are built once per distinct triple, not
        // per span.
        let mut seen: HashSet<(&str, i32, &str), RandomState> = HashSet::default();
        for (i, span) in batch.spans().enumerate() {
            let trace = span.trace_id();
            let at = *slot.entry(trace).or_insert_with(|| {
                order.push((trace, Vec::new()));
                order.len() - 1
            });
            if let Some((_, group)) = order.get_mut(at) {
                group.push(i as u32);
            }
            seen.insert((span.service_name(), span.kind(), span.name()));
        }
        let mut names: Vec<Vec<u8>> = Vec::with_capacity(seen.len() + 1);
        for (service, kind, name) in seen {
            names.push([b"s:", service.as_bytes()].concat());
            let op = keys::operation_key(service, kind, name);
            names.push([b"o:", op.as_slice()].concat());
        }
        names.sort_unstable();
        names.dedup();
        let mut parts: Vec<NewPart> = order
            .iter()
            .filter_map(|(trace, group)| new_part(batch, trace, &dedupe(batch, group)))
            .collect();
        // Parts committed lately are asked about in fjall; any other part is taken as new (see
        // `recent`). A part taken as new though stored (its retry came after the part was forgotten, or
        // after a restart), a read error here, or a retry racing its original in another group only
        // costs a duplicate write under the same key: the data is unchanged, the stored-bytes counter
        // counts that part twice.
        if let Ok(recent) = self.recent.lock() {
            parts.retain(|part| {
                !recent.may_contain(part.fingerprint)
                    || !self.has_part(&part.part_ref).unwrap_or(false)
            });
        }
        self.chunk_parts(batch.bytes(), parts, names)
    }

    /// Makes the chunk of `parts` (see `chunk`: their table and the request's bytes) and their search
    /// entries (`entry`). A part's bytes (the stored-bytes counter, size retention) count its share of
    /// the chunk and the entries, in proportion to its spans' length, and its index entry. The chunk
    /// holds the request's bytes whole, including those of parts left out as already stored (a retry
    /// regrouped with new spans: rare, and cheaper than encoding the new parts' spans anew).
    fn chunk_parts(&self, body: &[u8], mut parts: Vec<NewPart>, names: Vec<Vec<u8>>) -> Prepared {
        if parts.is_empty() {
            return Prepared {
                names,
                ..Prepared::default()
            };
        }
        let key = self.chunk_keys.next();
        let items = parts
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.items))
            .collect();
        let search = entry::entries(items, &key);
        let entry_keys: Vec<&[u8]> = search.iter().map(|e| e.key.as_slice()).collect();
        let entries_bytes = search
            .iter()
            .map(|e| e.key.len() + e.value.len())
            .sum::<usize>() as u64;
        let content = (parts.iter().map(|p| p.content as u64).sum::<u64>()).max(1);
        let share = |p: &NewPart, value_len: usize| {
            let chunk_bytes = (key.len() + value_len) as u64 + entries_bytes;
            trace_index::ENTRY_BYTES + chunk_bytes * p.content as u64 / content
        };
        let table: Vec<PartEntry> = parts
            .iter()
            .map(|p| PartEntry {
                part_ref: p.part_ref,
                summary: p.summary,
                layout: &p.layout,
            })
            .collect();
        let value = chunk::encode(&table, &entry_keys, body, |i, value_len| {
            parts.get(i).map_or(0, |p| share(p, value_len))
        });
        let bytes = parts.iter().map(|p| share(p, value.len())).sum();
        // One part per trace in a submission (`prepare` groups by trace).
        let traces = parts.iter().map(|p| keys::trace_of(&p.part_ref)).collect();
        Prepared {
            chunk: Some((key, Slice::from(key.as_slice()), value)),
            traces,
            fingerprints: parts.iter().map(|p| p.fingerprint).collect(),
            bytes,
            search: search
                .into_iter()
                .map(|e| (Slice::from(e.key), Slice::from(e.value)))
                .collect(),
            names,
        }
    }

    /// Stores `records` durably in a batch of their own (tests and tools; the collector's writer groups
    /// submissions with `add`).
    pub fn write_spans(&self, records: &[SpanRecord]) -> Result<(), StoreError> {
        self.write_batch(&SpanBatch::from_records(records))
    }

    /// Stores the spans of `batch` durably in a batch of their own.
    pub fn write_batch(&self, batch: &SpanBatch) -> Result<(), StoreError> {
        let mut fjall_batch = self.db.batch(true);
        let written = self.add(&mut fjall_batch, vec![self.prepare(batch)])?;
        if !fjall_batch.is_empty() {
            fjall_batch.commit()?;
        }
        written.committed();
        Ok(())
    }

    /// Adds prepared parts to `batch` and records their chunks in the trace index (`prepare` left out
    /// parts already stored; a part prepared twice in one group is stored twice, and spans stored twice
    /// are shown once). Call `Written::committed` once the batch is committed. The keys and values move
    /// into the batch, with no clone of each `Slice` (an atomic count) and no drop of the clone after the
    /// commit.
    pub fn add(
        &self,
        batch: &mut Batch,
        prepared: Vec<Prepared>,
    ) -> Result<Written<'_>, StoreError> {
        let state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut added = 0u64;
        let mut fingerprints = Vec::with_capacity(prepared.iter().map(Prepared::len).sum());
        let mut chunks = Vec::with_capacity(prepared.len());
        let mut new_names: Vec<Vec<u8>> = Vec::new();
        for p in prepared {
            if let Some((key, key_slice, value)) = p.chunk {
                batch.insert(&self.chunks, key_slice, value);
                chunks.push((key, p.traces));
            }
            for (key, value) in p.search {
                batch.insert(&self.search, key, value);
            }
            fingerprints.extend(p.fingerprints);
            added += p.bytes;
            for name in p.names {
                if state.known.contains(&name) || new_names.contains(&name) {
                    continue;
                }
                match name.split_at_checked(2) {
                    Some((b"s:", service)) => batch.insert(&self.services, service, []),
                    Some((_, op)) => batch.insert(&self.operations, op, []),
                    None => {}
                }
                new_names.push(name);
            }
        }
        self.index.record(batch, &chunks)?;
        let stored_bytes = state.stored_bytes + added;
        if added > 0 {
            batch.insert(
                self.db.meta(),
                META_STORED_BYTES,
                stored_bytes.to_be_bytes(),
            );
        }
        Ok(Written {
            state,
            stored_bytes,
            new_names,
            recent: &self.recent,
            fingerprints,
            sealer: &self.sealer,
        })
    }

    /// Whether the part `part_ref` is stored (its trace's chunks, as stored now).
    fn has_part(&self, part_ref: &keys::PartRef) -> Result<bool, StoreError> {
        for key in self.index.view()?.chunks_of(&keys::trace_of(part_ref))? {
            let Some(value) = self.chunks.get(key)? else {
                continue;
            };
            if chunk::Chunk::decode(&value)
                .is_some_and(|c| c.parts().any(|p| p.part_ref == *part_ref))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes whole traces and everything indexing them, in one atomic batch (not fsynced: a deletion
    /// lost in a crash is simply done again by the next retention pass). Returns the bytes freed.
    pub fn delete_traces(&self, traces: &[TraceId]) -> Result<u64, StoreError> {
        let mut state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let view = self.index.view()?;
        let mut by_chunk: HashMap<ChunkKey, HashSet<TraceId, RandomState>, RandomState> =
            HashMap::default();
        for trace in traces {
            for key in view.chunks_of(trace)? {
                by_chunk.entry(key).or_default().insert(*trace);
            }
        }
        let mut batch = self.db.batch(false);
        let mut freed = 0u64;
        for (key, deleted) in &by_chunk {
            freed += self.delete_from_chunk(&mut batch, key, deleted)?;
        }
        let stored = state.stored_bytes.saturating_sub(freed);
        batch.insert(self.db.meta(), META_STORED_BYTES, stored.to_be_bytes());
        batch.commit()?;
        state.stored_bytes = stored;
        Ok(freed)
    }

    /// Adds to `batch` the deletion of the parts of `traces` from the chunk `key`: the chunk and its
    /// search entries go with its last part; otherwise the chunk's table and its search entries are
    /// written without them (an entry left with no item goes). Returns the bytes freed.
    fn delete_from_chunk(
        &self,
        batch: &mut Batch,
        key: &ChunkKey,
        traces: &HashSet<TraceId, RandomState>,
    ) -> Result<u64, StoreError> {
        let Some(value) = self.chunks.get(key)? else {
            return Ok(0);
        };
        let Some(chunk) = chunk::Chunk::decode(&value) else {
            return Ok(0);
        };
        let deleted = |p: &PartEntry| traces.contains(&p.trace());
        let freed = chunk.parts().filter(deleted).map(|p| p.summary.bytes).sum();
        if chunk.parts().all(|p| deleted(&p)) {
            for entry_key in chunk.entries() {
                batch.remove(&self.search, entry_key);
            }
            batch.remove(&self.chunks, key);
        } else if let Some(trimmed) = chunk.without(deleted) {
            for entry_key in chunk.entries() {
                let (Some(start), Some(value)) =
                    (entry::key_start(entry_key), self.search.get(entry_key)?)
                else {
                    continue;
                };
                match entry::without(start, &value, |t| traces.contains(t)) {
                    entry::Trimmed::Unchanged => {}
                    entry::Trimmed::Kept(trimmed) => batch.insert(&self.search, entry_key, trimmed),
                    entry::Trimmed::Empty => batch.remove(&self.search, entry_key),
                }
            }
            batch.insert(&self.chunks, key, trimmed);
        }
        Ok(freed)
    }
}

/// The spans of a group with duplicates (same span id and discriminator) removed, the last copy kept, so
/// that the same spans always make the same part.
fn dedupe<'g>(batch: &SpanBatch, group: &'g [u32]) -> Cow<'g, [u32]> {
    let span_id = |i: &u32| batch.span(*i as usize).map(|s| s.span_id());
    // Most groups have no repeated span id at all: only then are discriminators worth computing.
    let repeated = group
        .iter()
        .enumerate()
        .any(|(n, i)| group.iter().skip(n + 1).any(|j| span_id(i) == span_id(j)));
    if !repeated {
        return Cow::Borrowed(group);
    }
    let mut seen = HashSet::new();
    let mut out: Vec<u32> = group
        .iter()
        .rev()
        .filter(|i| {
            batch
                .span(**i as usize)
                .is_some_and(|s| seen.insert((s.span_id(), s.discriminator())))
        })
        .copied()
        .collect();
    out.reverse();
    Cow::Owned(out)
}

/// The spans `group` of one trace as a trace part: their layout in the request's bytes, keyed by the
/// hash of what it refers to.
fn new_part<'a>(batch: &'a SpanBatch, trace: &TraceId, group: &[u32]) -> Option<NewPart<'a>> {
    let first = batch.span(*group.first()? as usize)?;
    // Counts and pieces are varints of one to three bytes: a run of two spans takes about 24.
    let mut layout = Vec::with_capacity(16 + 8 * group.len());
    let (hash, content) = batch.layout_into(group, &mut layout);
    let part_ref = keys::part_ref(trace, hash);
    let mut summary = TraceSummary {
        start_us: first.start_us(),
        end_us: first.end_ns() / 1_000,
        error: false,
        bytes: 0,
    };
    for span in group.iter().filter_map(|i| batch.span(*i as usize)) {
        summary.start_us = summary.start_us.min(span.start_us());
        summary.end_us = summary.end_us.max(span.end_ns() / 1_000);
        summary.error |= span.is_error();
    }
    Some(NewPart {
        fingerprint: RecentParts::fingerprint(&part_ref),
        part_ref,
        summary,
        layout,
        content,
        items: entry::part_items(batch, group, trace),
    })
}
