//! Scanning the search entries newest first, for every search API (Jaeger, Jaeger v3, Tempo's TraceQL,
//! Zipkin). A scan walks the `search` entries of one service, or of all services merged by start time,
//! skips each entry whose durations or hashes rule the filter out without reading anything else, and
//! hands every other trace once to a visitor, which reads what it needs from the same snapshot.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

use fjall::{KvPair, Snapshot};

use super::chunk::ChunkCache;
use super::keys::{self, SearchValue};
use super::read::{read_skeletons, read_trace};
use super::{SpanSkeleton, Store, StoreError};
use crate::model::{SpanRecord, TraceId};

/// Upper bound on search entries one scan looks at, so a broad query cannot run unbounded.
pub const MAX_SCANNED: usize = 500_000;
/// A search entry carries the earliest start of the spans behind it; a part whose spans start up to this
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
    /// The earliest start of the spans behind the entry that led here (µs).
    pub entry_start_us: u64,
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
    /// Search entries read.
    pub entries: usize,
    /// Distinct traces handed to the visitor.
    pub traces: usize,
    /// The entry bound or the deadline cut the scan short (there may be more matches).
    pub truncated: bool,
}

/// Reads traces from the scan's snapshot.
pub struct TraceReader {
    parts: Snapshot,
    chunks: ChunkCache,
}

impl TraceReader {
    pub fn records(&self, trace: &TraceId) -> Result<Vec<SpanRecord>, StoreError> {
        read_trace(&self.parts, &self.chunks, trace)
    }

    pub fn skeletons(&self, trace: &TraceId) -> Result<Vec<SpanSkeleton>, StoreError> {
        read_skeletons(&self.parts, &self.chunks, trace)
    }
}

type Entries = Box<dyn Iterator<Item = Result<KvPair, StoreError>>>;

/// The next entry of one service, ordered by (start, part) so that a max-heap yields newest first, or
/// the reverse when `oldest_first` (every head of one heap has the same).
struct Head {
    start_us: u64,
    part: keys::PartRef,
    source: usize,
    value: fjall::Slice,
    oldest_first: bool,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
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
        let newest_first = (self.start_us, self.part, self.source).cmp(&(
            other.start_us,
            other.part,
            other.source,
        ));
        if self.oldest_first {
            newest_first.reverse()
        } else {
            newest_first
        }
    }
}

/// The entries of several services merged newest first (or oldest first).
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
            let start = keys::u64_before_ref(&key);
            let part = keys::part_ref_suffix(&key).and_then(|p| keys::PartRef::try_from(p).ok());
            if let (Some(start_us), Some(part)) = (start, part) {
                self.heap.push(Head {
                    start_us,
                    part,
                    source: i,
                    value,
                    oldest_first: self.oldest_first,
                });
                return Ok(());
            }
        }
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Head>, StoreError> {
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        self.pull(head.source)?;
        Ok(Some(head))
    }
}

fn hashes(condition: &Condition) -> Vec<u32> {
    match condition {
        Condition::Operation(op) => vec![keys::operation_hash(op)],
        Condition::Tag(t) => t.keys.iter().map(|k| keys::tag_hash(k, &t.value)).collect(),
    }
}

impl Store {
    /// Visits the traces of the entries `filter` allows, newest entry first, each trace once, until the
    /// visitor says stop, `MAX_SCANNED` entries were read or `deadline` passed. The visitor reads traces
    /// from the same snapshot the entries come from.
    pub fn scan(
        &self,
        filter: &ScanFilter,
        deadline: Option<Instant>,
        mut visit: impl FnMut(Candidate, &TraceReader) -> Result<Flow, StoreError>,
    ) -> Result<ScanReport, StoreError> {
        let at = self.keyspace.instant();
        let reader = TraceReader {
            parts: self.parts.snapshot_at(at),
            chunks: self.chunk_cache(at),
        };
        let services = match &filter.service {
            Some(s) => vec![keys::service_prefix(s)],
            None => self.service_prefixes(at)?,
        };
        let sources = self.service_ranges(
            at,
            &services,
            filter.start_us.saturating_sub(PART_SPREAD_US),
            filter.end_us,
            false,
        );
        let wanted: Vec<Vec<u32>> = filter.conditions.iter().map(hashes).collect();
        let mut merged = Merged::new(sources, false)?;
        let mut report = ScanReport::default();
        let mut decided = HashSet::new();
        while let Some(head) = merged.next()? {
            if report.entries >= MAX_SCANNED || deadline.is_some_and(|d| Instant::now() >= d) {
                report.truncated = true;
                break;
            }
            report.entries += 1;
            let Some(trace) = keys::trace_of(&head.part) else {
                continue;
            };
            if decided.contains(&trace) {
                continue;
            }
            let Some(v) = SearchValue::decode(&head.value) else {
                continue;
            };
            if filter.min_duration_us.is_some_and(|m| v.max_dur < m)
                || filter.max_duration_us.is_some_and(|m| v.min_dur > m)
                || !wanted
                    .iter()
                    .all(|any| any.iter().any(|h| v.may_contain(*h)))
            {
                continue;
            }
            decided.insert(trace);
            report.traces += 1;
            let candidate = Candidate {
                trace,
                entry_start_us: head.start_us,
            };
            if visit(candidate, &reader)? == Flow::Stop {
                break;
            }
        }
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

    /// The search entries of each service in `prefixes` whose start is in `[lo_us, hi_us]`, newest first
    /// or oldest first.
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
                    &[0xff; keys::PART_REF_LEN],
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

    /// The store in time order: every trace part's search entries that start in `[start_us, end_us]`,
    /// all services merged oldest first, as (start, trace), from the snapshot at `at`. Retention and the
    /// dependencies window walk it (no index of its own: a part has one search entry per service among
    /// its spans, and its earliest entry starts with its earliest span). A trace comes once per part and
    /// service; the first time is its oldest.
    pub(super) fn oldest_first(
        &self,
        at: fjall::Instant,
        start_us: u64,
        end_us: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, TraceId), StoreError>>, StoreError> {
        let prefixes = self.service_prefixes(at)?;
        let mut merged = Merged::new(
            self.service_ranges(at, &prefixes, start_us, end_us, true),
            true,
        )?;
        Ok(std::iter::from_fn(move || loop {
            match merged.next() {
                Ok(Some(head)) => {
                    if let Some(trace) = keys::trace_of(&head.part) {
                        return Some(Ok((head.start_us, trace)));
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }))
    }
}
