//! The trace index (format 9): which chunks hold a trace's parts.
//!
//! Before format 9 every trace part was an LSM key of its own (`trace(16) hash(8)`), one per trace and
//! request: about a fifth of the collector's CPU went into fjall flushing, filtering and compacting those
//! keys (issue 16, "Where the store's cost is, by partition" in collector/DESIGN.md). A part now lives in
//! the table of its chunk (`chunk`), and this index finds the chunks of a trace. It is built the way an
//! LSM builds its tables, but with a run per window of commits instead of a key per part:
//!
//! - **The open window**, in memory: the chunks each trace has parts in, for the commits since the last
//!   seal. The writer adds a group commit's chunks to it before it commits (`TraceIndex::record`), and
//!   writes in the same batch one `pending` key naming them (`seq(8)` -> their chunk keys), so that a
//!   crash loses nothing: on open, the pending keys' chunks are read again into the window.
//! - **Runs**: a sealed window, sorted by a hash of the trace (`order`: trace ids are random, or 64-bit
//!   ids widened with zeros, or built by a load generator from a counter; their hash spreads them all
//!   alike, so sealing sorts by buckets), in pages of `PAGE_ENTRIES` entries (`trace(16) chunk(16)`
//!   each) keyed `run(8) last hash(8) page(4)`, with a Bloom filter per run kept in memory
//!   (and stored, `run(8)` -> last chunk, entry count, filter). Sealing writes the pages, the run's
//!   filter and the deletion of the window's pending keys in one batch, on a background thread.
//!
//! A lookup asks the open window, the windows being sealed, and every run whose filter may hold the
//! trace (one range read each). An entry can name a chunk that no longer holds the trace (retention
//! deleted the trace, or the commit that recorded it failed): readers check the chunk's part table, so a
//! stale entry costs a read, never a wrong answer. A run goes once every chunk it can name is deleted
//! (`TraceIndex::drop_runs_before`).

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fjall::{Batch, PartitionCreateOptions, PartitionHandle};
use foldhash::fast::RandomState;

use super::chunk::{self, ChunkKey, KEY_LEN as CHUNK_KEY_LEN};
use super::database::Database;
use super::{schema, StoreError};
use crate::model::TraceId;

/// A window is sealed into a run once it holds this many entries (about 40 bytes each in memory)...
pub const SEAL_ENTRIES: usize = 262_144;
/// ... or once its first entry is this old, so that a quiet collector's restart replays little.
pub const SEAL_AGE: Duration = Duration::from_secs(60);
/// Entries per run page (4 KiB).
const PAGE_ENTRIES: usize = 128;
const ENTRY_LEN: usize = 16 + CHUNK_KEY_LEN;
/// `run(8) last hash(8) page(4)`.
const PAGE_KEY_LEN: usize = 8 + 8 + 4;
/// Bloom filter bits per entry, and probes: about 1% false positives.
const BLOOM_BITS_PER_ENTRY: usize = 10;
const BLOOM_PROBES: u64 = 7;
/// What one part costs the index on disk (its run entry), counted in its stored bytes.
pub const ENTRY_BYTES: u64 = ENTRY_LEN as u64;

/// The chunks of the trace parts recorded since a seal: per trace, a list through `links`.
#[derive(Default)]
pub struct Window {
    heads: HashMap<TraceId, u32, RandomState>,
    /// A trace, a chunk, and the previous entry of the same trace (`u32::MAX`: none). The trace is kept
    /// here too so that sealing reads the entries in order instead of looking each trace up.
    links: Vec<Link>,
    /// The last pending key recorded in the window.
    last_seq: Option<u64>,
    started: Option<Instant>,
}

struct Link {
    trace: TraceId,
    chunk: ChunkKey,
    previous: u32,
}

impl Window {
    fn insert(&mut self, trace: TraceId, chunk: ChunkKey) {
        let Ok(at) = u32::try_from(self.links.len()) else {
            return;
        };
        let previous = self.heads.insert(trace, at).unwrap_or(u32::MAX);
        self.links.push(Link {
            trace,
            chunk,
            previous,
        });
        self.started.get_or_insert_with(Instant::now);
    }

    fn lookup(&self, trace: &TraceId, out: &mut Vec<ChunkKey>) {
        let mut at = self.heads.get(trace).copied().unwrap_or(u32::MAX);
        while let Some(link) = self.links.get(at as usize) {
            out.push(link.chunk);
            at = link.previous;
        }
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Empties the window and keeps its allocations, for the next open window: one grown to
    /// `SEAL_ENTRIES` from nothing reallocates its table and its list some seventeen times each, mostly
    /// into fresh memory the kernel zeroes first.
    fn clear(&mut self) {
        self.heads.clear();
        self.links.clear();
        self.last_seq = None;
        self.started = None;
    }

    /// Every (hash, trace, chunk), sorted (`order`), each once, the trace and the chunk as big-endian
    /// integers (their order is their bytes'; two words each to compare instead of a `memcmp`). Placed
    /// in buckets by the hash's top 16 bits first (a few entries each), then each bucket sorted.
    fn sorted(&self) -> Vec<(u64, u128, u128)> {
        const BUCKETS: usize = 1 << 16;
        let hashes: Vec<u64> = self.links.iter().map(|l| order(&l.trace)).collect();
        let bucket = |hash: u64| (hash >> 48) as usize;
        let mut counts = vec![0usize; BUCKETS];
        for hash in &hashes {
            if let Some(n) = counts.get_mut(bucket(*hash)) {
                *n += 1;
            }
        }
        let mut starts = Vec::with_capacity(BUCKETS);
        let mut total = 0;
        for n in &counts {
            starts.push(total);
            total += n;
        }
        let mut next = starts.clone();
        let mut keyed = vec![(0u64, 0u128, 0u128); self.links.len()];
        for (link, hash) in self.links.iter().zip(hashes) {
            let Some(at) = next.get_mut(bucket(hash)) else {
                continue;
            };
            if let Some(slot) = keyed.get_mut(*at) {
                *slot = (
                    hash,
                    u128::from_be_bytes(link.trace),
                    u128::from_be_bytes(link.chunk),
                );
            }
            *at += 1;
        }
        for (start, n) in starts.iter().zip(&counts) {
            if let Some(run) = keyed.get_mut(*start..start + n) {
                run.sort_unstable();
            }
        }
        keyed.dedup();
        keyed
    }
}

/// The order of entries in a run: by this hash of the trace, then the trace.
fn order(trace: &TraceId) -> u64 {
    xxhash_rust::xxh3::xxh3_64(trace)
}

/// A Bloom filter over trace ids (double hashing of the id's xxh3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    fn new(entries: usize) -> Self {
        let bits = (entries.max(1) * BLOOM_BITS_PER_ENTRY).next_multiple_of(64);
        Self {
            words: vec![0; bits / 64],
        }
    }

    /// The bits of `trace`, for a filter of `words` words.
    fn probes(words: usize, trace: &TraceId) -> impl Iterator<Item = usize> {
        let hash = xxhash_rust::xxh3::xxh3_128(trace);
        let (h1, h2) = (hash as u64, ((hash >> 64) as u64) | 1);
        let bits = (words * 64).max(1) as u64;
        (0..BLOOM_PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % bits) as usize)
    }

    fn insert(&mut self, trace: &TraceId) {
        for bit in Self::probes(self.words.len(), trace) {
            if let Some(word) = self.words.get_mut(bit / 64) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    pub fn may_contain(&self, trace: &TraceId) -> bool {
        Self::probes(self.words.len(), trace).all(|bit| {
            self.words
                .get(bit / 64)
                .is_some_and(|w| w & (1 << (bit % 64)) != 0)
        })
    }
}

/// A sealed window: its pages are in `RUNS`, this is what lookups need in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    id: u64,
    /// The last chunk it names (the run goes once every chunk up to it is deleted).
    max_chunk: ChunkKey,
    entries: u32,
    bloom: Bloom,
}

impl Run {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHUNK_KEY_LEN + 4 + self.bloom.words.len() * 8);
        out.extend_from_slice(&self.max_chunk);
        out.extend_from_slice(&self.entries.to_be_bytes());
        for word in &self.bloom.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }

    fn decode(id: u64, value: &[u8]) -> Option<Self> {
        let (max_chunk, rest) = value.split_first_chunk::<CHUNK_KEY_LEN>()?;
        let (entries, words) = rest.split_first_chunk::<4>()?;
        let entries = u32::from_be_bytes(*entries);
        // The filter's size follows from the entry count: a value cut short is refused.
        if words.len() != Bloom::new(entries as usize).words.len() * 8 {
            return None;
        }
        Some(Self {
            id,
            max_chunk: *max_chunk,
            entries,
            bloom: Bloom {
                words: words
                    .chunks_exact(8)
                    .filter_map(|w| Some(u64::from_le_bytes(w.try_into().ok()?)))
                    .collect(),
            },
        })
    }
}

fn page_key(run: u64, last: u64, page: u32) -> [u8; PAGE_KEY_LEN] {
    let mut key = [0u8; PAGE_KEY_LEN];
    for (slot, byte) in key.iter_mut().zip(
        run.to_be_bytes()
            .into_iter()
            .chain(last.to_be_bytes())
            .chain(page.to_be_bytes()),
    ) {
        *slot = byte;
    }
    key
}

/// Open and sealing windows and runs, swapped together so that a reader sees every entry once a window
/// moves from one to the next.
struct State {
    open: Arc<Mutex<Window>>,
    sealing: Vec<Arc<Mutex<Window>>>,
    runs: Vec<Arc<Run>>,
}

pub struct TraceIndex {
    state: RwLock<State>,
    next_seq: AtomicU64,
    next_run: AtomicU64,
    /// Serializes seals (the background thread's, and tests'), and holds the last sealed window, emptied,
    /// for the next open one (`Window::clear`).
    sealing: Mutex<Window>,
    pages: PartitionHandle,
    runs: PartitionHandle,
    pending: PartitionHandle,
    /// Makes the next seal fail before its batch is committed (tests).
    #[cfg(test)]
    pub(super) fail_next_seal: std::sync::atomic::AtomicBool,
}

/// What a reader consults: the index as it was when the view was taken, or later.
pub struct View {
    windows: Vec<Arc<Mutex<Window>>>,
    runs: Vec<Arc<Run>>,
    pages: PartitionHandle,
}

impl View {
    /// The chunks that may hold parts of `trace`, each once, oldest first.
    pub fn chunks_of(&self, trace: &TraceId) -> Result<Vec<ChunkKey>, StoreError> {
        let mut out = Vec::new();
        for window in &self.windows {
            if let Ok(window) = window.lock() {
                window.lookup(trace, &mut out);
            }
        }
        let want = (order(trace), trace.as_slice());
        for run in self.runs.iter().filter(|r| r.bloom.may_contain(trace)) {
            let from = page_key(run.id, want.0, 0);
            let to = page_key(run.id.saturating_add(1), 0, 0);
            'pages: for item in self
                .pages
                .range::<&[u8], _>((Bound::Included(&from[..]), Bound::Excluded(&to[..])))
            {
                let (_, page) = item?;
                for entry in page.chunks_exact(ENTRY_LEN) {
                    let (entry_trace, chunk) = entry.split_at(16);
                    let hash = TraceId::try_from(entry_trace).map_or(0, |t| order(&t));
                    match (hash, entry_trace).cmp(&want) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => {
                            if let Ok(chunk) = ChunkKey::try_from(chunk) {
                                out.push(chunk);
                            }
                        }
                        std::cmp::Ordering::Greater => break 'pages,
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

impl TraceIndex {
    /// Opens the index's partitions in `db`, loads the runs' filters and reads the chunks of the pending
    /// keys (commits since the last seal) into the open window.
    pub fn open(db: &Database, chunks: &PartitionHandle) -> Result<Self, StoreError> {
        // Pages are trace ids and chunk keys, which do not compress; they are read by range only.
        let pages = db.partition(
            schema::INDEX_PAGES,
            PartitionCreateOptions::default()
                .compression(fjall::CompressionType::None)
                .bloom_filter_bits(None),
        )?;
        let runs_partition = db.partition(schema::INDEX_RUNS, PartitionCreateOptions::default())?;
        let pending = db.partition(schema::INDEX_PENDING, PartitionCreateOptions::default())?;
        let mut runs = Vec::new();
        for item in runs_partition.iter() {
            let (key, value) = item?;
            let id = schema::u64_value(&key).ok_or_else(|| damaged("a run's key"))?;
            runs.push(Arc::new(
                Run::decode(id, &value).ok_or_else(|| damaged("a run's filter"))?,
            ));
        }
        let mut window = Window::default();
        let mut last_seq = None;
        for item in pending.iter() {
            let (key, value) = item?;
            last_seq = schema::u64_value(&key).or(last_seq);
            for chunk_key in value.chunks_exact(CHUNK_KEY_LEN) {
                let Some(chunk_value) = chunks.get(chunk_key)? else {
                    continue;
                };
                let (Ok(chunk_key), Some(chunk)) = (
                    ChunkKey::try_from(chunk_key),
                    chunk::Chunk::decode(&chunk_value),
                ) else {
                    continue;
                };
                for part in chunk.parts() {
                    window.insert(part.trace(), chunk_key);
                }
            }
        }
        window.last_seq = last_seq;
        let next_run = runs.last().map_or(0, |r: &Arc<Run>| r.id + 1);
        Ok(Self {
            state: RwLock::new(State {
                open: Arc::new(Mutex::new(window)),
                sealing: Vec::new(),
                runs,
            }),
            next_seq: AtomicU64::new(last_seq.map_or(0, |s| s + 1)),
            next_run: AtomicU64::new(next_run),
            sealing: Mutex::new(Window::default()),
            #[cfg(test)]
            fail_next_seal: std::sync::atomic::AtomicBool::new(false),
            pages,
            runs: runs_partition,
            pending,
        })
    }

    pub fn view(&self) -> Result<View, StoreError> {
        let state = self.state.read().map_err(|_| StoreError::Poisoned)?;
        let mut windows = Vec::with_capacity(state.sealing.len() + 1);
        windows.push(state.open.clone());
        windows.extend(state.sealing.iter().cloned());
        Ok(View {
            windows,
            runs: state.runs.clone(),
            pages: self.pages.clone(),
        })
    }

    /// Records the parts of a group commit (each chunk's key and the traces it holds) in the open window
    /// and adds their pending key to `batch`. Called before the batch is committed: an entry whose commit
    /// fails names a chunk that is not there, which readers skip.
    pub fn record(
        &self,
        batch: &mut Batch,
        chunks: &[(ChunkKey, Vec<TraceId>)],
    ) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let state = self.state.read().map_err(|_| StoreError::Poisoned)?;
        let mut window = state.open.lock().map_err(|_| StoreError::Poisoned)?;
        // Taken under the state's lock: every pending key of a window is at most its `last_seq`, and
        // above every earlier window's.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut keys = Vec::with_capacity(chunks.len() * CHUNK_KEY_LEN);
        for (chunk, traces) in chunks {
            keys.extend_from_slice(chunk);
            for trace in traces {
                window.insert(*trace, *chunk);
            }
        }
        window.last_seq = Some(seq);
        batch.insert(&self.pending, seq.to_be_bytes(), keys);
        Ok(())
    }

    /// Whether the open window is due to be sealed.
    /// (A window whose seal failed is due at once.)
    pub fn due(&self) -> bool {
        let Ok(state) = self.state.read() else {
            return false;
        };
        let Ok(window) = state.open.lock() else {
            return false;
        };
        !state.sealing.is_empty()
            || window.len() >= SEAL_ENTRIES
            || window.started.is_some_and(|t| t.elapsed() >= SEAL_AGE)
    }

    /// Seals a window into a run: the oldest one whose seal failed (it stayed readable, its pending keys
    /// stayed), or else the open window if it holds anything. Its pages, its filter and the deletion of
    /// its pending keys go in one batch (not fsynced: lost in a crash, the pending keys are still there
    /// and the window is read again). Windows are sealed in order, so that deleting the pending keys up
    /// to a window's last never deletes those of an older window not sealed. Returns whether a run was
    /// written.
    pub fn seal(&self, db: &Database) -> Result<bool, StoreError> {
        let mut spare = self.sealing.lock().map_err(|_| StoreError::Poisoned)?;
        let window = {
            let mut state = self.state.write().map_err(|_| StoreError::Poisoned)?;
            match state.sealing.first() {
                Some(failed) => failed.clone(),
                None => {
                    if state.open.lock().map_err(|_| StoreError::Poisoned)?.len() == 0 {
                        return Ok(false);
                    }
                    let fresh = Arc::new(Mutex::new(std::mem::take(&mut *spare)));
                    let window = std::mem::replace(&mut state.open, fresh);
                    state.sealing.push(window.clone());
                    window
                }
            }
        };
        let (entries, last_seq) = {
            let w = window.lock().map_err(|_| StoreError::Poisoned)?;
            (w.sorted(), w.last_seq)
        };
        let id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let mut bloom = Bloom::new(entries.len());
        let mut max_chunk = [0; CHUNK_KEY_LEN];
        let mut batch = db.batch(false);
        for (n, page) in entries.chunks(PAGE_ENTRIES).enumerate() {
            let mut value = Vec::with_capacity(page.len() * ENTRY_LEN);
            for (_, trace, chunk) in page {
                let (trace, chunk) = (trace.to_be_bytes(), chunk.to_be_bytes());
                value.extend_from_slice(&trace);
                value.extend_from_slice(&chunk);
                bloom.insert(&trace);
                max_chunk = max_chunk.max(chunk);
            }
            let last = page.last().map_or(0, |(hash, _, _)| *hash);
            batch.insert(&self.pages, page_key(id, last, n as u32), value);
        }
        let run = Run {
            id,
            max_chunk,
            entries: u32::try_from(entries.len()).unwrap_or(u32::MAX),
            bloom,
        };
        batch.insert(&self.runs, id.to_be_bytes(), run.encode());
        if let Some(last_seq) = last_seq {
            for item in self.pending.range(..=last_seq.to_be_bytes()) {
                let (key, _) = item?;
                batch.remove(&self.pending, key);
            }
        }
        #[cfg(test)]
        if self.fail_next_seal.swap(false, Ordering::Relaxed) {
            return Err(StoreError::Unusable("a failed seal (test)".into()));
        }
        batch.commit()?;
        {
            let mut state = self.state.write().map_err(|_| StoreError::Poisoned)?;
            state.runs.push(Arc::new(run));
            state.sealing.retain(|w| !Arc::ptr_eq(w, &window));
        }
        // Reused unless a reader's view still holds it (then it goes with the view).
        if let Some(mut sealed) = Arc::into_inner(window).and_then(|w| w.into_inner().ok()) {
            sealed.clear();
            *spare = sealed;
        }
        Ok(true)
    }

    /// Deletes the runs that name only chunks before `oldest` (the oldest chunk stored; `None`: no chunk
    /// is left), in `batch`; they leave lookups once it is committed (`forget`). Returns their ids.
    pub fn drop_runs_before(
        &self,
        batch: &mut Batch,
        oldest: Option<&ChunkKey>,
    ) -> Result<Vec<u64>, StoreError> {
        let runs = self
            .state
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .runs
            .clone();
        let mut dropped = Vec::new();
        for run in runs
            .iter()
            .filter(|r| oldest.is_none_or(|o| r.max_chunk < *o))
        {
            let from = page_key(run.id, 0, 0);
            let to = page_key(run.id.saturating_add(1), 0, 0);
            for item in self
                .pages
                .range::<&[u8], _>((Bound::Included(&from[..]), Bound::Excluded(&to[..])))
            {
                let (key, _) = item?;
                batch.remove(&self.pages, key);
            }
            batch.remove(&self.runs, run.id.to_be_bytes());
            dropped.push(run.id);
        }
        Ok(dropped)
    }

    /// Takes the runs `dropped` (their deletion committed) out of lookups.
    pub fn forget(&self, dropped: &[u64]) -> Result<(), StoreError> {
        if !dropped.is_empty() {
            let mut state = self.state.write().map_err(|_| StoreError::Poisoned)?;
            state.runs.retain(|r| !dropped.contains(&r.id));
        }
        Ok(())
    }

    /// Runs, and entries in windows not sealed yet.
    pub fn counts(&self) -> (usize, usize) {
        let Ok(state) = self.state.read() else {
            return (0, 0);
        };
        let open = state.open.lock().map_or(0, |w| w.len())
            + state
                .sealing
                .iter()
                .map(|w| w.lock().map_or(0, |w| w.len()))
                .sum::<usize>();
        (state.runs.len(), open)
    }
}

fn damaged(what: &str) -> StoreError {
    StoreError::Unusable(format!(
        "the trace index is damaged ({what} does not decode): move the data directory away to start an \
         empty store"
    ))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn a_window_lists_every_chunk_of_a_trace_and_sorts_once_each() {
        let mut w = Window::default();
        w.insert([1; 16], [10; 16]);
        w.insert([2; 16], [10; 16]);
        w.insert([1; 16], [11; 16]);
        w.insert([1; 16], [11; 16]);
        let mut out = Vec::new();
        w.lookup(&[1; 16], &mut out);
        assert_eq!(out, vec![[11; 16], [11; 16], [10; 16]]);
        let mut expected = vec![
            (order(&[1; 16]), [1; 16], [10; 16]),
            (order(&[1; 16]), [1; 16], [11; 16]),
            (order(&[2; 16]), [2; 16], [10; 16]),
        ];
        expected.sort_unstable();
        assert_eq!(sorted_bytes(&w), expected);
        out.clear();
        w.lookup(&[3; 16], &mut out);
        assert!(out.is_empty());
    }

    /// `Window::sorted` as byte arrays.
    fn sorted_bytes(w: &Window) -> Vec<(u64, TraceId, ChunkKey)> {
        w.sorted()
            .into_iter()
            .map(|(h, t, c)| (h, t.to_be_bytes(), c.to_be_bytes()))
            .collect()
    }

    #[test]
    fn a_cleared_window_is_empty_and_keeps_its_room() {
        let mut w = Window::default();
        for i in 0..1_000u32 {
            let mut trace = [0u8; 16];
            trace[..4].copy_from_slice(&i.to_be_bytes());
            w.insert(trace, [1; 16]);
        }
        w.last_seq = Some(7);
        let room = (w.heads.capacity(), w.links.capacity());
        w.clear();
        assert_eq!((w.len(), w.last_seq, w.started), (0, None, None));
        assert!(w.sorted().is_empty());
        let mut out = Vec::new();
        w.lookup(&[0; 16], &mut out);
        assert!(out.is_empty());
        assert_eq!((w.heads.capacity(), w.links.capacity()), room);
        w.insert([9; 16], [2; 16]);
        w.lookup(&[9; 16], &mut out);
        assert_eq!(out, vec![[2; 16]]);
    }

    #[test]
    fn a_window_sorts_random_and_clustered_ids_as_a_plain_sort_would() {
        let mut w = Window::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut expected = Vec::new();
        for i in 0..5_000u64 {
            let mut trace = [0u8; 16];
            // Half random, half 64-bit ids widened with zeros (one bucket), some repeated.
            let low = next() % if i % 3 == 0 { 50 } else { u64::MAX };
            trace[8..].copy_from_slice(&low.to_be_bytes());
            if i % 2 == 0 {
                trace[..8].copy_from_slice(&next().to_be_bytes());
            }
            let chunk = [(next() % 4) as u8; 16];
            w.insert(trace, chunk);
            expected.push((order(&trace), trace, chunk));
        }
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(sorted_bytes(&w), expected);
    }

    #[test]
    fn the_filter_holds_what_was_inserted_and_few_others() {
        let mut bloom = Bloom::new(10_000);
        let id = |i: u32| -> TraceId {
            let mut t = [0u8; 16];
            t[12..].copy_from_slice(&i.to_be_bytes());
            t
        };
        for i in 0..10_000 {
            bloom.insert(&id(i));
        }
        assert!((0..10_000).all(|i| bloom.may_contain(&id(i))));
        let false_positives = (10_000..110_000)
            .filter(|i| bloom.may_contain(&id(*i)))
            .count();
        assert!(
            false_positives < 2_000,
            "{false_positives} of 100,000 absent ids"
        );
    }

    #[test]
    fn a_run_round_trips_and_a_damaged_one_is_refused() {
        let mut bloom = Bloom::new(3);
        bloom.insert(&[7; 16]);
        let run = Run {
            id: 4,
            max_chunk: [2; 16],
            entries: 3,
            bloom,
        };
        let value = run.encode();
        assert_eq!(Run::decode(4, &value), Some(run));
        for cut in 0..value.len() {
            assert_eq!(Run::decode(4, &value[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn page_keys_sort_by_run_then_hash_then_page() {
        assert!(page_key(1, u64::MAX, 5) < page_key(2, 0, 0));
        assert!(page_key(1, 1, 5) < page_key(1, 2, 0));
        assert!(page_key(1, 1, 0) < page_key(1, 1, 1));
    }
}
