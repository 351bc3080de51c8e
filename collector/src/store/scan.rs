//! Scanning the search entries newest first, for every search API (Jaeger, Jaeger v3, Tempo's TraceQL,
//! Zipkin). A scan walks the `search` entries (`entry`) of one service, or of all services merged by
//! start time, skips each item whose durations or hashes rule the filter out without reading anything
//! else, and hands every other trace once, newest first, to a visitor, which reads what it needs from the
//! same snapshot.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

use fjall::KvPair;

use super::chunk::{ChunkCache, ChunkKey, KEY_LEN as CHUNK_KEY_LEN};
use super::entry::{self, EntryView, ENTRY_SPREAD_US};
use super::keys;
use super::keys::TraceSummary;
use super::read::{read_skeletons, read_trace, summarize};
use super::trace_index::View;
use super::{SpanSkeleton, Store, StoreError};
use crate::model::{SpanRecord, TraceId};

/// Upper bound on search items one scan reads, so a broad query cannot run unbounded.
pub const MAX_SCANNED: usize = 500_000;
/// A search item carries the earliest start of the spans behind it; a part whose spans start up to this
/// long before the searched window may still hold a span inside it, so the scan reaches that far back
/// (and the visitor checks such candidates against their spans).
pub const PART_SPREAD_US: u64 = 3_600_000_000;

/// A tag condition on one span: one of `keys` (a name and its aliases) has `value` (compared as the
/// attribute's string form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMatch {
    pub keys: Vec<String>,
    pub value: String,
}

impl TagMatch {
    /// A condition on exactly one key.
    pub fn exact(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            keys: vec![key.into()],
            value: value.into(),
        }
    }

    /// Whether `rec` carries the tag (span or resource attribute, or a derived tag such as `error`).
    pub fn matches(&self, rec: &SpanRecord) -> bool {
        let mut found = false;
        rec.for_each_tag(|k, v| found |= v == self.value && self.keys.iter().any(|want| want == k));
        found
    }
}

/// A condition a search entry must allow. Entries hold hashes of their spans' operations and tags, so a
/// condition that holds on a span is always allowed by that span's entry; the converse is checked on the
/// spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Operation(String),
    Tag(TagMatch),
}

/// Which entries a scan visits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanFilter {
    /// One service's entries, or every service's (merged newest first).
    pub service: Option<String>,
    pub start_us: u64,
    pub end_us: u64,
    /// The entry must hold a span at least this long.
    pub min_duration_us: Option<u64>,
    /// The entry must hold a span at most this long.
    pub max_duration_us: Option<u64>,
    /// All must be allowed by the entry: they describe one span.
    pub conditions: Vec<Condition>,
}

/// A trace found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub trace: TraceId,
    /// The earliest start of the spans behind the item that led here (µs).
    pub entry_start_us: u64,
    /// The chunk whose search entry held that item.
    pub chunk: ChunkKey,
}

/// What the visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

impl Flow {
    /// `Stop` once `done`: a scan that has what it came for.
    pub fn stop_if(done: bool) -> Flow {
        if done {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// Why a scan ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Search items in the entries read.
    pub entries: usize,
    /// Distinct traces handed to the visitor.
    pub traces: usize,
    /// The entry bound or the deadline cut the scan short (there may be more matches).
    pub truncated: bool,
}

/// Reads traces from one snapshot of the chunks, found through the trace index.
pub struct TraceReader {
    index: View,
    chunks: ChunkCache,
}

impl TraceReader {
    pub fn records(&self, trace: &TraceId) -> Result<Vec<SpanRecord>, StoreError> {
        read_trace(&self.index, &self.chunks, trace)
    }

    /// Whether the candidate's chunk still holds a part of its trace (retention deletes a trace's parts
    /// and trims its items in one batch, but an item can outlive its part: see `Store::oldest`): one
    /// chunk read, most often cached, instead of a lookup of the trace.
    pub fn exists(&self, c: &Candidate) -> Result<bool, StoreError> {
        self.chunks.holds(&c.chunk, &c.trace)
    }

    /// The summary of all the parts of `trace`, if any is stored.
    pub fn summary(&self, trace: &TraceId) -> Result<Option<TraceSummary>, StoreError> {
        summarize(&self.index, &self.chunks, trace)
    }

    pub fn skeletons(&self, trace: &TraceId) -> Result<Vec<SpanSkeleton>, StoreError> {
        read_skeletons(&self.index, &self.chunks, trace)
    }
}

impl Store {
    /// A reader of the chunks as of `at`, through the trace index as of now (which holds every chunk
    /// committed by `at`: the writer records chunks before it commits them).
    pub(super) fn reader(&self, at: fjall::Instant) -> Result<TraceReader, StoreError> {
        Ok(TraceReader {
            index: self.index.view()?,
            chunks: self.chunk_cache(at),
        })
    }
}

type Entries = Box<dyn Iterator<Item = Result<KvPair, StoreError>>>;

/// The next entry of one service, ordered by (start, chunk) so that a max-heap yields newest first, or
/// the reverse when `oldest_first` (every head of one heap has the same).
struct Head {
    start_us: u64,
    chunk: ChunkKey,
    source: usize,
    value: fjall::Slice,
    oldest_first: bool,
}

impl Head {
    fn order(&self) -> (u64, ChunkKey, usize) {
        (self.start_us, self.chunk, self.source)
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        let newest_first = self.order().cmp(&other.order());
        if self.oldest_first {
            newest_first.reverse()
        } else {
            newest_first
        }
    }
}

/// The entries of several services merged newest first (or oldest first) by their keys' start.
struct Merged {
    sources: Vec<Entries>,
    heap: BinaryHeap<Head>,
    oldest_first: bool,
}

impl Merged {
    fn new(sources: Vec<Entries>, oldest_first: bool) -> Result<Self, StoreError> {
        let mut merged = Self {
            heap: BinaryHeap::with_capacity(sources.len()),
            sources,
            oldest_first,
        };
        for i in 0..merged.sources.len() {
            merged.pull(i)?;
        }
        Ok(merged)
    }

    /// Moves the next well-formed entry of source `i` onto the heap.
    fn pull(&mut self, i: usize) -> Result<(), StoreError> {
        let Some(source) = self.sources.get_mut(i) else {
            return Ok(());
        };
        for item in source.by_ref() {
            let (key, value) = item?;
            if let (Some(start_us), Some(chunk)) = (entry::key_start(&key), entry::key_chunk(&key))
            {
                self.heap.push(Head {
                    start_us,
                    chunk,
                    source: i,
                    value,
                    oldest_first: self.oldest_first,
                });
                return Ok(());
            }
        }
        Ok(())
    }

    /// The start of the entry `next` returns.
    fn peek_start(&self) -> Option<u64> {
        self.heap.peek().map(|h| h.start_us)
    }

    fn next(&mut self) -> Result<Option<Head>, StoreError> {
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        self.pull(head.source)?;
        Ok(Some(head))
    }
}

/// An item read from an entry, waiting for its turn: ordered by (start, trace, chunk) for a max-heap.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Waiting {
    start_us: u64,
    trace: TraceId,
    /// The chunk of the entry it came from.
    chunk: ChunkKey,
}

/// When a walk stops reading entries early.
struct Budget {
    items: usize,
    deadline: Option<Instant>,
}

/// The items of merged entries newest first, in exact start order. Entries come by their latest start
/// (`entry`); an item waits until the next entry's latest start is before it.
struct Walk {
    merged: Merged,
    waiting: BinaryHeap<Waiting>,
    budget: Budget,
    /// Items in the entries read.
    items_read: usize,
    /// The budget ran out before the entries did: the items already read are handed out, newest
    /// first, and the walk ends.
    truncated: bool,
    /// The items an entry lets through, reused.
    taken: Vec<(u64, TraceId)>,
}

/// An item a walk hands out: its start, its trace, and its entry's chunk.
type Taken = (u64, TraceId, ChunkKey);

impl Walk {
    fn new(sources: Vec<Entries>, budget: Budget) -> Result<Self, StoreError> {
        Ok(Self {
            merged: Merged::new(sources, false)?,
            waiting: BinaryHeap::new(),
            budget,
            items_read: 0,
            truncated: false,
            taken: Vec::new(),
        })
    }

    /// The next item `take` lets through: `take` is handed each entry read and pushes the items it
    /// wants, as (start, trace).
    fn next(
        &mut self,
        take: &mut impl FnMut(&EntryView<'_>, &mut Vec<(u64, TraceId)>),
    ) -> Result<Option<Taken>, StoreError> {
        loop {
            let next_entry = self.merged.peek_start();
            let top = self.waiting.peek().map(|w| w.start_us);
            if self.truncated || top.is_some_and(|t| next_entry.is_none_or(|next| t >= next)) {
                return Ok(self.waiting.pop().map(|w| (w.start_us, w.trace, w.chunk)));
            }
            if next_entry.is_some()
                && (self.items_read >= self.budget.items
                    || self.budget.deadline.is_some_and(|d| Instant::now() >= d))
            {
                self.truncated = true;
                continue;
            }
            let Some(head) = self.merged.next()? else {
                return Ok(None);
            };
            let Some(view) = EntryView::decode(head.start_us, &head.value) else {
                continue;
            };
            self.items_read += usize::try_from(view.len()).unwrap_or(usize::MAX);
            take(&view, &mut self.taken);
            let chunk = head.chunk;
            self.waiting
                .extend(self.taken.drain(..).map(|(start_us, trace)| Waiting {
                    start_us,
                    trace,
                    chunk,
                }));
        }
    }
}

fn hashes(condition: &Condition) -> Vec<u32> {
    match condition {
        Condition::Operation(op) => vec![keys::operation_hash(op)],
        Condition::Tag(t) => t.keys.iter().map(|k| keys::tag_hash(k, &t.value)).collect(),
    }
}

impl Store {
    /// Visits the traces of the items `filter` allows, newest first, each trace once, until the visitor
    /// says stop, the entries holding `MAX_SCANNED` items were read or `deadline` passed. The visitor
    /// reads traces from the same snapshot the entries come from.
    pub fn scan(
        &self,
        filter: &ScanFilter,
        deadline: Option<Instant>,
        mut visit: impl FnMut(Candidate, &TraceReader) -> Result<Flow, StoreError>,
    ) -> Result<ScanReport, StoreError> {
        let at = self.keyspace.instant();
        let reader = self.reader(at)?;
        let services = match &filter.service {
            Some(s) => vec![keys::service_prefix(s)],
            None => self.service_prefixes(at)?,
        };
        let lo = filter.start_us.saturating_sub(PART_SPREAD_US);
        let hi = filter.end_us;
        let sources =
            self.service_ranges(at, &services, lo, hi.saturating_add(ENTRY_SPREAD_US), false);
        let wanted: Vec<Vec<u32>> = filter.conditions.iter().map(hashes).collect();
        let budget = Budget {
            items: MAX_SCANNED,
            deadline,
        };
        let mut walk = Walk::new(sources, budget)?;
        // Per entry: each condition's hashes that the entry's dictionary has, as indexes.
        let mut indexes: Vec<Vec<u32>> = Vec::new();
        let mut take = |entry: &EntryView<'_>, out: &mut Vec<(u64, TraceId)>| {
            indexes.clear();
            for any in &wanted {
                let found: Vec<u32> = any.iter().filter_map(|h| entry.index_of(*h)).collect();
                if found.is_empty() {
                    return;
                }
                indexes.push(found);
            }
            for item in entry.items() {
                if item.start_us < lo
                    || item.start_us > hi
                    || filter.min_duration_us.is_some_and(|m| item.max_dur < m)
                    || filter.max_duration_us.is_some_and(|m| item.min_dur > m)
                    || !indexes.iter().all(|any| any.iter().any(|i| item.has(*i)))
                {
                    continue;
                }
                out.push((item.start_us, item.trace));
            }
        };
        let mut report = ScanReport::default();
        let mut decided = HashSet::new();
        while let Some((start_us, trace, chunk)) = walk.next(&mut take)? {
            if !decided.insert(trace) {
                continue;
            }
            report.traces += 1;
            let candidate = Candidate {
                trace,
                entry_start_us: start_us,
                chunk,
            };
            if visit(candidate, &reader)? == Flow::Stop {
                break;
            }
        }
        report.entries = walk.items_read;
        report.truncated = walk.truncated;
        Ok(report)
    }
}

impl Store {
    /// The key prefix of every service's search entries (services sharing their first
    /// `MAX_KEY_STRING` bytes share one).
    fn service_prefixes(&self, at: fjall::Instant) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut all = Vec::new();
        for name in self.services.snapshot_at(at).keys() {
            all.push(keys::service_prefix(&String::from_utf8_lossy(&name?)));
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The search entries of each service in `prefixes` whose key's start is in `[lo_us, hi_us]`, newest
    /// first or oldest first.
    fn service_ranges(
        &self,
        at: fjall::Instant,
        prefixes: &[Vec<u8>],
        lo_us: u64,
        hi_us: u64,
        oldest_first: bool,
    ) -> Vec<Entries> {
        let search = self.search.snapshot_at(at);
        prefixes
            .iter()
            .map(|prefix| {
                let lower = [prefix.as_slice(), &lo_us.to_be_bytes()].concat();
                let upper = [
                    prefix.as_slice(),
                    &hi_us.to_be_bytes(),
                    &[0xff; CHUNK_KEY_LEN],
                ]
                .concat();
                let range = search
                    .range(lower..=upper)
                    .map(|r| r.map_err(StoreError::from));
                if oldest_first {
                    Box::new(range) as Entries
                } else {
                    Box::new(range.rev()) as Entries
                }
            })
            .collect()
    }

    /// The store in time order: every item (a trace part's spans of one service) that starts in
    /// `[start_us, end_us]`, all services merged, from the snapshot at `at`, oldest entry first (the
    /// items of an entry in start order; entries by their latest start, so not in exact start order).
    /// Each comes with a floor: no item after it starts before that. Retention and the dependencies
    /// window walk it (no index of its own: a part has one item per service among its spans, and its
    /// earliest item starts with its earliest span).
    pub(super) fn oldest_first(
        &self,
        at: fjall::Instant,
        start_us: u64,
        end_us: u64,
    ) -> Result<impl Iterator<Item = Result<Oldest, StoreError>>, StoreError> {
        let prefixes = self.service_prefixes(at)?;
        let sources = self.service_ranges(
            at,
            &prefixes,
            start_us,
            end_us.saturating_add(ENTRY_SPREAD_US),
            true,
        );
        let mut merged = Merged::new(sources, true)?;
        let mut items: std::vec::IntoIter<Oldest> = Vec::new().into_iter();
        Ok(std::iter::from_fn(move || loop {
            if let Some(item) = items.next() {
                return Some(Ok(item));
            }
            let head = match merged.next() {
                Ok(Some(head)) => head,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            // Later entries' latest starts are at least this one's, and their items start at most
            // `ENTRY_SPREAD_US` before that.
            let floor_us = head.start_us.saturating_sub(ENTRY_SPREAD_US);
            let Some(view) = EntryView::decode(head.start_us, &head.value) else {
                continue;
            };
            // An entry's items are in start order.
            items = view
                .items()
                .filter(|i| (start_us..=end_us).contains(&i.start_us))
                .map(|i| Oldest {
                    start_us: i.start_us,
                    floor_us,
                    trace: i.trace,
                })
                .collect::<Vec<_>>()
                .into_iter();
        }))
    }
}

/// An item of `Store::oldest_first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Oldest {
    pub start_us: u64,
    /// No item after this one starts before this.
    pub floor_us: u64,
    pub trace: TraceId,
}
