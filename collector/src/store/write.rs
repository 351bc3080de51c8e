//! Adding spans. The ingest writer adds the trace parts of a group of submissions to one fjall batch
//! (`Store::add`), next to the export queue's and the pending set's writes, and commits it with the
//! journal fsynced: when the commit returns every span in it survives a crash, and after a crash the
//! batch is either wholly there or not at all.
//!
//! The spans of a submission are grouped by trace; each group is one trace part (see `keys`): one value
//! each holding its spans' layout (`model::layout`) in the submission's chunk (`chunk`: the request's
//! own bytes, compressed once), and one search entry per service for all of them (`entry`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use fjall::{Batch, Slice};
use foldhash::fast::RandomState;

use super::chunk;
use super::entry;
use super::keys::{self, TraceSummary};
use super::recent::RecentParts;
use super::schema::*;
use super::{part, Store, StoreError, WriterState};
use crate::model::{SpanBatch, SpanRecord, TraceId};

/// One trace part, encoded and ready to insert: everything but the insert itself is done before the
/// writer (single-threaded, holding the write lock) sees it. Keys and values are fjall's own `Slice`s,
/// built here: fjall copies whatever it is given into one (an allocation and a copy per key and value),
/// which done on the writer thread was about a tenth of its work; a `Slice` is reference-counted, so the
/// writer's insert is a count increment.
struct PreparedPart {
    part_ref: keys::PartRef,
    fingerprint: u64,
    key: Slice,
    value: Slice,
    bytes: u64,
}

/// A trace part of a submission before its chunk is made: its spans' layout in the request's bytes;
/// its summary counts the bytes of its key and its value without its spans' place.
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

/// The trace parts of one submission (`Store::prepare`), and the names its spans add to the listings.
#[derive(Default)]
pub struct Prepared {
    parts: Vec<PreparedPart>,
    /// The chunk holding the parts' spans (`chunk`), key and value; none when no part is new.
    chunk: Option<(Slice, Slice)>,
    /// The parts' search entries (`entry`), keys and values.
    search: Vec<(Slice, Slice)>,
    /// `s:` + service name and `o:` + operation key, each once.
    names: Vec<Vec<u8>>,
}

impl Prepared {
    /// Trace parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The bytes of the parts, their index entries and their chunk.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
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
                    || !self.parts.contains_key(part.part_ref).unwrap_or(false)
            });
        }
        self.chunk_parts(batch.bytes(), parts, names)
    }

    /// Makes the chunk of `parts` (see `chunk`), their search entries (`entry`) and their values: each
    /// part's summary and where its spans are in the chunk. A part's bytes (the stored-bytes counter,
    /// size retention) count its share of the chunk and the entries, in proportion to its spans' length.
    /// The chunk holds the request's bytes whole, including those of parts left out as already stored
    /// (a retry regrouped with new spans: rare, and cheaper than encoding the new parts' spans anew).
    fn chunk_parts(&self, body: &[u8], mut parts: Vec<NewPart>, names: Vec<Vec<u8>>) -> Prepared {
        if parts.is_empty() {
            return Prepared {
                names,
                ..Prepared::default()
            };
        }
        let key = self.chunk_keys.next();
        let refs: Vec<keys::PartRef> = parts.iter().map(|p| p.part_ref).collect();
        let items = parts
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.items))
            .collect();
        let search = entry::entries(items, &key);
        let entry_keys: Vec<&[u8]> = search.iter().map(|e| e.key.as_slice()).collect();
        let value = chunk::encode(&refs, &entry_keys, body);
        let chunk_bytes = (key.len()
            + value.len()
            + search
                .iter()
                .map(|e| e.key.len() + e.value.len())
                .sum::<usize>()) as u64;
        let content = (parts.iter().map(|p| p.content as u64).sum::<u64>()).max(1);
        let prepared = parts
            .into_iter()
            .map(|part| {
                let at = chunk::Location {
                    chunk: key,
                    layout: &part.layout,
                };
                let mut summary = part.summary;
                summary.bytes += at.len() as u64 + chunk_bytes * part.content as u64 / content;
                let mut value = Vec::with_capacity(TraceSummary::LEN + at.len());
                value.extend_from_slice(&summary.encode());
                at.encode_into(&mut value);
                PreparedPart {
                    key: Slice::from(part.part_ref.as_slice()),
                    part_ref: part.part_ref,
                    fingerprint: part.fingerprint,
                    value: Slice::from(value),
                    bytes: summary.bytes,
                }
            })
            .collect();
        Prepared {
            parts: prepared,
            chunk: Some((Slice::from(key.as_slice()), value)),
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

    /// Adds prepared parts to `batch` (a part prepared twice in one group goes in once; `prepare` left out
    /// those already stored; spans stored twice in different parts are shown once). Call
    /// `Written::committed` once the batch is committed. The keys and values move into the batch, with no
    /// clone of each `Slice` (an atomic count) and no drop of the clone after the commit.
    pub fn add(
        &self,
        batch: &mut Batch,
        prepared: Vec<Prepared>,
    ) -> Result<Written<'_>, StoreError> {
        let state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut added = 0u64;
        let parts: usize = prepared.iter().map(Prepared::len).sum();
        let mut in_batch: HashSet<keys::PartRef, RandomState> =
            HashSet::with_capacity_and_hasher(parts, RandomState::default());
        let mut fingerprints = Vec::with_capacity(parts);
        let mut new_names: Vec<Vec<u8>> = Vec::new();
        for p in prepared {
            if let Some((key, value)) = p.chunk {
                batch.insert(&self.chunks, key, value);
            }
            for (key, value) in p.search {
                batch.insert(&self.search, key, value);
            }
            for part in p.parts {
                if !in_batch.insert(part.part_ref) {
                    continue;
                }
                fingerprints.push(part.fingerprint);
                batch.insert(&self.parts, part.key, part.value);
                added += part.bytes;
            }
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
        })
    }

    /// Removes whole traces and everything indexing them, in one atomic batch (not fsynced: a deletion
    /// lost in a crash is simply done again by the next retention pass).
    pub fn delete_traces(&self, traces: &[TraceId]) -> Result<u64, StoreError> {
        let mut state = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut batch = self.db.batch(false);
        let mut freed = 0u64;
        let mut deleted = Deleted::default();
        for trace in traces {
            freed += self.delete_trace(&mut batch, trace, &mut deleted)?;
        }
        self.delete_from_chunks(&mut batch, &deleted)?;
        let stored = state.stored_bytes.saturating_sub(freed);
        batch.insert(self.db.meta(), META_STORED_BYTES, stored.to_be_bytes());
        batch.commit()?;
        state.stored_bytes = stored;
        Ok(freed)
    }

    /// Adds the deletion of one trace's parts to `batch`, noting the trace, its parts and their chunks
    /// in `deleted`; returns the bytes freed.
    fn delete_trace(
        &self,
        batch: &mut Batch,
        trace: &TraceId,
        deleted: &mut Deleted,
    ) -> Result<u64, StoreError> {
        let mut freed = 0u64;
        deleted.traces.insert(*trace);
        for item in self.parts.prefix(trace) {
            let (key, value) = item?;
            batch.remove(&self.parts, key.clone());
            if let Some(summary) = part::summary_of(&value) {
                freed += summary.bytes;
            }
            if let Some(at) = chunk::Location::of_part(&value) {
                deleted.chunks.insert(at.chunk);
            }
            if let Ok(part_ref) = keys::PartRef::try_from(&*key) {
                deleted.parts.insert(part_ref);
            }
        }
        Ok(freed)
    }

    /// Adds to `batch`, for every chunk in `deleted`: when none of its parts is left, the deletion of
    /// the chunk and its search entries; otherwise its search entries without the deleted traces' items
    /// (an entry left with none goes). A part is left when it is stored, not deleted in this batch, and
    /// its spans are in that chunk (a part written again later has its spans in the later chunk). The
    /// chunk's and the entries' bytes were counted in its parts'.
    fn delete_from_chunks(&self, batch: &mut Batch, deleted: &Deleted) -> Result<(), StoreError> {
        for key in &deleted.chunks {
            let Some(value) = self.chunks.get(key)? else {
                continue;
            };
            if self.chunk_is_alive(key, &value, &deleted.parts)? {
                self.trim_entries(batch, &value, &deleted.traces)?;
            } else {
                self.delete_chunk(batch, key, &value);
            }
        }
        Ok(())
    }

    /// Adds the deletion of the chunk `key` (value `value`) and of its search entries to `batch`.
    pub(super) fn delete_chunk(&self, batch: &mut Batch, key: &[u8], value: &[u8]) {
        if let Some(chunk) = chunk::Chunk::decode(value) {
            for entry_key in chunk.entries() {
                batch.remove(&self.search, entry_key);
            }
        }
        batch.remove(&self.chunks, key);
    }

    /// Adds to `batch` the search entries of the chunk whose value is `value` without the items of
    /// `traces`.
    fn trim_entries(
        &self,
        batch: &mut Batch,
        value: &[u8],
        traces: &HashSet<TraceId, RandomState>,
    ) -> Result<(), StoreError> {
        let Some(chunk) = chunk::Chunk::decode(value) else {
            return Ok(());
        };
        for key in chunk.entries() {
            let (Some(start), Some(value)) = (entry::key_start(key), self.search.get(key)?) else {
                continue;
            };
            match entry::without(start, &value, |t| traces.contains(t)) {
                entry::Trimmed::Unchanged => {}
                entry::Trimmed::Kept(trimmed) => batch.insert(&self.search, key, trimmed),
                entry::Trimmed::Empty => batch.remove(&self.search, key),
            }
        }
        Ok(())
    }

    /// Whether any part the chunk `key` was written for is stored, not in `deleted`, and still has its
    /// spans there. A chunk that does not decode is kept (nothing of it can be read, nor known dead).
    pub(super) fn chunk_is_alive(
        &self,
        key: &[u8],
        value: &[u8],
        deleted: &HashSet<keys::PartRef, RandomState>,
    ) -> Result<bool, StoreError> {
        let Some(chunk) = chunk::Chunk::decode(value) else {
            return Ok(true);
        };
        for part_ref in chunk.parts() {
            if deleted.contains(&part_ref) {
                continue;
            }
            let here = self
                .parts
                .get(part_ref)?
                .is_some_and(|v| chunk::Location::of_part(&v).is_some_and(|at| at.chunk == key));
            if here {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What one retention batch deletes: traces, their parts, and the chunks their spans are in.
#[derive(Default)]
struct Deleted {
    traces: HashSet<TraceId, RandomState>,
    parts: HashSet<keys::PartRef, RandomState>,
    chunks: HashSet<chunk::ChunkKey, RandomState>,
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
        bytes: (part_ref.len() + TraceSummary::LEN) as u64,
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
