//! Chunks: the trace parts that one submission added, their spans compressed together.
//!
//! A chunk's body is the submission's request as it arrived (an OTLP `ExportTraceServiceRequest`, or
//! what another receiver's spans were encoded to): nothing is re-encoded on the way in, and a part's
//! spans are written as a `TracesData` when it is read, from their layout in the body
//! (`model::layout`). The receiving task compresses the body (LZ4, the same codec fjall uses for its
//! blocks) once, and the LSM stores chunks as they are (`CompressionType::None`): fjall's flushes and
//! its compactions, which rewrite everything at least twice, copy a request's spans as about a quarter of
//! their bytes instead of compressing, decompressing and compressing them again (issue 16, "Chunks" in
//! collector/DESIGN.md).
//!
//! Since format 9 the chunk also holds its **part table**: per part, its reference (`trace(16)
//! hash(8)`), its summary and its spans' layout. A part is no LSM key of its own; `trace_index` finds the
//! chunks of a trace, and retention rewrites a chunk's table without the parts it deletes (the body
//! stays as it is), or deletes the chunk with its last part.
//!
//! A chunk's value: the number of parts (u32), each part (reference, `TraceSummary`, layout length
//! (u32), layout), the number of search entries made with it (u32) and their keys (u16 length, then the
//! key, each), then the LZ4 block of the body with its decompressed size in front (u32 little-endian).
//! The entries' keys let retention delete or trim the chunk's search entries with it. Integers are
//! big-endian but the body's size, which is LZ4's own.
//!
//! A chunk's key: the microseconds since the epoch when it was prepared, then a counter (8 bytes each),
//! so chunks are in arrival order and never share a key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Slice, Snapshot};

use super::keys::{PartRef, TraceSummary, PART_REF_LEN};
use super::StoreError;
use crate::model::TraceId;

pub const KEY_LEN: usize = 16;
/// The largest body a chunk may claim (a submission's spans; receivers refuse far smaller requests).
const MAX_BODY: u32 = 1 << 30;
pub type ChunkKey = [u8; KEY_LEN];

/// One part in a chunk's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartEntry<'a> {
    pub part_ref: PartRef,
    pub summary: TraceSummary,
    /// Where its spans are in the chunk's body (`model::layout`).
    pub layout: &'a [u8],
}

impl PartEntry<'_> {
    pub fn trace(&self) -> TraceId {
        super::keys::trace_of(&self.part_ref)
    }

    /// Its length in a chunk's table.
    pub fn encoded_len(&self) -> usize {
        PART_REF_LEN + TraceSummary::LEN + 4 + self.layout.len()
    }

    fn write(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.part_ref)?;
        out.write_all(&self.summary.encode())?;
        out.write_all(&(self.layout.len() as u32).to_be_bytes())?;
        out.write_all(self.layout)
    }
}

/// Makes chunk keys: arrival time, then a counter that starts at a random value, so that keys made in
/// the same microsecond (or by a collector restarted with its clock set back) still differ.
pub struct KeyMaker {
    counter: AtomicU64,
}

impl KeyMaker {
    pub fn new() -> Self {
        use std::hash::BuildHasher;
        let start = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        Self {
            counter: AtomicU64::new(start),
        }
    }

    pub fn next(&self) -> ChunkKey {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut key = [0u8; KEY_LEN];
        key[..8].copy_from_slice(&now.to_be_bytes());
        key[8..].copy_from_slice(&n.to_be_bytes());
        key
    }
}

thread_local! {
    /// Where each receiving thread builds its chunks (`encode`): kept from one chunk to the next, so
    /// that the LZ4 block's worst-case room (about the body's size) is not a fresh allocation per
    /// submission, whose pages the kernel zeroes on first touch.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Builds a chunk's value from its parts, its search entries' keys and its body, in a `Slice` of its
/// exact size (the one copy of the compressed body). `bytes` gives the stored bytes of the part at an
/// index from the value's length (a part's summary counts its share of the chunk), once the body is
/// compressed.
pub fn encode(
    parts: &[PartEntry],
    entries: &[&[u8]],
    body: &[u8],
    bytes: impl Fn(usize, usize) -> u64,
) -> Slice {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let value = encode_in(&mut scratch, parts, entries, body, &bytes);
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
            value
        }
        Err(_) => encode_in(&mut Vec::new(), parts, entries, body, &bytes),
    })
}

/// The most `SCRATCH` keeps between chunks: room for requests of a few MB is not held for good.
const SCRATCH_KEPT: usize = 1 << 20;

fn header_len(parts: &[PartEntry], entries: &[&[u8]]) -> usize {
    4 + parts.iter().map(PartEntry::encoded_len).sum::<usize>()
        + 4
        + entries.iter().map(|key| 2 + key.len()).sum::<usize>()
        + 4
}

fn encode_in(
    out: &mut Vec<u8>,
    parts: &[PartEntry],
    entries: &[&[u8]],
    body: &[u8],
    bytes: &dyn Fn(usize, usize) -> u64,
) -> Slice {
    let header = header_len(parts, entries);
    // `out` keeps its length from one chunk to the next: only room it never had is zeroed (resizing
    // from empty zeroed the LZ4 block's whole worst-case room, about the body's size, per submission).
    let end = header + lz4_flex::block::get_maximum_output_size(body.len());
    if out.len() < end {
        out.resize(end, 0);
    }
    let Some((head, room)) = out.get_mut(..end).map(|o| o.split_at_mut(header)) else {
        return Slice::from(&[][..]);
    };
    let written = lz4_flex::block::compress_into(body, room)
        .ok()
        .and_then(|n| {
            write_header(head, parts, entries, body.len(), |i| bytes(i, header + n))
                .ok()
                .map(|()| n)
        });
    match written {
        Some(n) => Slice::from(out.get(..header + n).unwrap_or_default()),
        // Not reached (the header is sized above, the room is the codec's own bound).
        None => {
            let compressed = lz4_flex::block::compress(body);
            let len = header + compressed.len();
            let mut value = vec![0; header];
            let _ = write_header(&mut value, parts, entries, body.len(), |i| bytes(i, len));
            value.extend_from_slice(&compressed);
            Slice::from(value)
        }
    }
}

/// Writes a chunk's header into `head`, sized for it: the part table (each part's summary counting
/// `bytes` of it), the search entries' keys, then the body's decompressed size (little-endian, as
/// `decompress_size_prepended` reads it).
fn write_header(
    mut head: &mut [u8],
    parts: &[PartEntry],
    entries: &[&[u8]],
    body_len: usize,
    bytes: impl Fn(usize) -> u64,
) -> std::io::Result<()> {
    use std::io::Write;
    head.write_all(&(parts.len() as u32).to_be_bytes())?;
    for (i, part) in parts.iter().enumerate() {
        let mut part = *part;
        part.summary.bytes = bytes(i);
        part.write(&mut head)?;
    }
    head.write_all(&(entries.len() as u32).to_be_bytes())?;
    for key in entries {
        head.write_all(&(key.len() as u16).to_be_bytes())?;
        head.write_all(key)?;
    }
    head.write_all(&(body_len as u32).to_le_bytes())
}

/// A chunk's value, read in place.
pub struct Chunk<'a> {
    part_count: u32,
    parts: &'a [u8],
    entries: &'a [u8],
    entry_count: u32,
    compressed: &'a [u8],
}

/// The next part of a part table, and the rest of it.
fn next_part(table: &[u8]) -> Option<(PartEntry<'_>, &[u8])> {
    let (part_ref, rest) = table.split_first_chunk::<PART_REF_LEN>()?;
    let (summary, rest) = rest.split_at_checked(TraceSummary::LEN)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let (layout, rest) = rest.split_at_checked(u32::from_be_bytes(*len) as usize)?;
    Some((
        PartEntry {
            part_ref: *part_ref,
            summary: TraceSummary::decode(summary)?,
            layout,
        },
        rest,
    ))
}

impl<'a> Chunk<'a> {
    pub fn decode(value: &'a [u8]) -> Option<Self> {
        let (count, table) = value.split_first_chunk::<4>()?;
        let part_count = u32::from_be_bytes(*count);
        let mut rest = table;
        for _ in 0..part_count {
            rest = next_part(rest)?.1;
        }
        let parts = table.get(..table.len() - rest.len())?;
        let (entry_count, after) = rest.split_first_chunk::<4>()?;
        let entry_count = u32::from_be_bytes(*entry_count);
        let entries = after;
        let mut rest = after;
        for _ in 0..entry_count {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            rest = tail.get(usize::from(u16::from_be_bytes(*len))..)?;
        }
        Some(Self {
            part_count,
            parts,
            entries: entries.get(..entries.len() - rest.len())?,
            entry_count,
            compressed: rest,
        })
    }

    /// The keys of the search entries made with the chunk (`entry`).
    pub fn entries(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.entries;
        (0..self.entry_count).map_while(move |_| {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let (key, tail) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
            rest = tail;
            Some(key)
        })
    }

    /// The parts in the chunk's table.
    pub fn parts(&self) -> impl Iterator<Item = PartEntry<'a>> + 'a {
        let mut rest = self.parts;
        (0..self.part_count).map_while(move |_| {
            let (part, tail) = next_part(rest)?;
            rest = tail;
            Some(part)
        })
    }

    /// The parts of `trace` in the chunk.
    pub fn parts_of(&self, trace: &TraceId) -> impl Iterator<Item = PartEntry<'a>> + 'a {
        let trace = *trace;
        self.parts().filter(move |p| p.part_ref.starts_with(&trace))
    }

    /// The chunk's value without the parts `drop` picks: the same entries and body. `None` when no
    /// part is dropped.
    pub fn without(&self, drop: impl Fn(&PartEntry) -> bool) -> Option<Vec<u8>> {
        let kept: Vec<PartEntry> = self.parts().filter(|p| !drop(p)).collect();
        if kept.len() == self.part_count as usize {
            return None;
        }
        let mut out = Vec::with_capacity(
            8 + kept.iter().map(PartEntry::encoded_len).sum::<usize>()
                + self.entries.len()
                + self.compressed.len(),
        );
        out.extend_from_slice(&(kept.len() as u32).to_be_bytes());
        for part in &kept {
            let _ = part.write(&mut out);
        }
        out.extend_from_slice(&self.entry_count.to_be_bytes());
        out.extend_from_slice(self.entries);
        out.extend_from_slice(self.compressed);
        Some(out)
    }

    /// The decompressed body; `None` when it does not decompress (or claims an impossible size: the
    /// size in front is checked before anything is allocated for it).
    pub fn body(&self) -> Option<Vec<u8>> {
        let size = u32::from_le_bytes(*self.compressed.first_chunk::<4>()?);
        if size > MAX_BODY {
            return None;
        }
        lz4_flex::block::decompress_size_prepended(self.compressed).ok()
    }
}

/// Chunks read by one reader (a trace read, a search, a retention pass): the parts of one trace, and
/// the traces a search checks, are often in the same few chunks, so each is read and decompressed once.
pub struct ChunkCache {
    chunks: Snapshot,
    values: RefCell<HashMap<ChunkKey, Option<Slice>>>,
    bodies: RefCell<HashMap<ChunkKey, Option<Rc<Vec<u8>>>>>,
}

/// Decompressed bodies kept by one reader at most (about 60 KB each for the benchmark's requests).
const CACHED_BODIES: usize = 256;
/// Chunk values (part table and compressed body, about 10 KB each) kept by one reader at most: a search
/// checks up to 20,000 traces, mostly in chunks it read already.
const CACHED_VALUES: usize = 4_096;

impl ChunkCache {
    pub fn new(chunks: Snapshot) -> Self {
        Self {
            chunks,
            values: RefCell::default(),
            bodies: RefCell::default(),
        }
    }

    /// The value of the chunk `key`, if stored.
    pub fn value(&self, key: &ChunkKey) -> Result<Option<Slice>, StoreError> {
        if let Some(value) = self.values.borrow().get(key) {
            return Ok(value.clone());
        }
        let value = self.chunks.get(key)?;
        let mut values = self.values.borrow_mut();
        if values.len() >= CACHED_VALUES {
            values.clear();
        }
        values.insert(*key, value.clone());
        Ok(value)
    }

    /// The parts of `trace` in the chunk `key`, with their encoded spans (`None` when the chunk's body
    /// does not decode: such a part reads as no spans, as an undecodable part always did).
    pub fn for_each_part(
        &self,
        key: &ChunkKey,
        trace: &TraceId,
        mut f: impl FnMut(&PartEntry, Option<&[u8]>),
    ) -> Result<(), StoreError> {
        let Some(value) = self.value(key)? else {
            return Ok(());
        };
        let Some(chunk) = Chunk::decode(&value) else {
            return Ok(());
        };
        let mut spans = Vec::new();
        for part in chunk.parts_of(trace) {
            let body = self.body(key, &chunk);
            spans.clear();
            let encoded = body
                .as_deref()
                .and_then(|b| crate::model::layout::encode(b, part.layout, &mut spans))
                .map(|()| spans.as_slice());
            f(&part, encoded);
        }
        Ok(())
    }

    /// Whether the chunk `key` holds a part of `trace`.
    pub fn holds(&self, key: &ChunkKey, trace: &TraceId) -> Result<bool, StoreError> {
        Ok(self
            .value(key)?
            .is_some_and(|v| Chunk::decode(&v).is_some_and(|c| c.parts_of(trace).next().is_some())))
    }

    /// The summaries of the parts of `trace` in the chunk `key`, merged.
    pub fn summary(
        &self,
        key: &ChunkKey,
        trace: &TraceId,
    ) -> Result<Option<TraceSummary>, StoreError> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        Ok(Chunk::decode(&value).and_then(|chunk| {
            chunk
                .parts_of(trace)
                .map(|p| p.summary)
                .reduce(TraceSummary::merge)
        }))
    }

    /// The chunk's decompressed body (once per reader).
    fn body(&self, key: &ChunkKey, chunk: &Chunk) -> Option<Rc<Vec<u8>>> {
        if let Some(body) = self.bodies.borrow().get(key) {
            return body.clone();
        }
        let body = chunk.body().map(Rc::new);
        let mut bodies = self.bodies.borrow_mut();
        if bodies.len() >= CACHED_BODIES {
            bodies.clear();
        }
        bodies.insert(*key, body.clone());
        body
    }
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

    fn part(trace: u8, layout: &[u8]) -> PartEntry<'_> {
        let mut part_ref = [trace; PART_REF_LEN];
        part_ref[16..].copy_from_slice(&u64::from(trace).to_be_bytes());
        PartEntry {
            part_ref,
            summary: TraceSummary {
                start_us: 1,
                end_us: 2,
                error: trace.is_multiple_of(2),
                bytes: 0,
            },
            layout,
        }
    }

    fn counted(i: usize, len: usize) -> u64 {
        (len + i) as u64
    }

    #[test]
    fn a_chunk_round_trips_its_parts_and_body() {
        let parts = [part(1, &[1, 2, 3]), part(2, &[]), part(1, &[9])];
        let body: Vec<u8> = (0..5000u32).flat_map(|i| (i % 7).to_be_bytes()).collect();
        let entries: [&[u8]; 2] = [b"entry one", b""];
        let value = encode(&parts, &entries, &body, counted);
        assert!(value.len() < body.len() / 2, "the body is compressed");
        let chunk = Chunk::decode(&value).unwrap();
        let read: Vec<PartEntry> = chunk.parts().collect();
        assert_eq!(read.len(), 3);
        for (i, (read, written)) in read.iter().zip(&parts).enumerate() {
            assert_eq!(read.part_ref, written.part_ref);
            assert_eq!(read.layout, written.layout);
            assert_eq!(
                read.summary.bytes,
                (value.len() + i) as u64,
                "bytes counted from the value's final length"
            );
        }
        assert_eq!(
            chunk
                .parts_of(&[1; 16])
                .map(|p| p.layout)
                .collect::<Vec<_>>(),
            [&[1u8, 2, 3][..], &[9]]
        );
        assert_eq!(read[1].trace(), [2; 16]);
        assert_eq!(chunk.entries().collect::<Vec<_>>(), entries);
        assert_eq!(chunk.body().unwrap(), body);
    }

    #[test]
    fn a_chunk_without_some_parts_keeps_the_others_its_entries_and_body() {
        let parts = [part(1, &[1]), part(2, &[2, 2]), part(3, &[3])];
        let body = b"the spans of three parts".repeat(20);
        let value = encode(&parts, &[b"key"], &body, counted);
        let chunk = Chunk::decode(&value).unwrap();
        assert_eq!(chunk.without(|_| false), None, "nothing dropped");
        let trimmed = chunk.without(|p| p.trace() == [2; 16]).unwrap();
        let trimmed = Chunk::decode(&trimmed).unwrap();
        let kept: Vec<PartEntry> = trimmed.parts().collect();
        let original: Vec<PartEntry> = chunk.parts().collect();
        assert_eq!(kept, [original[0], original[2]]);
        assert_eq!(trimmed.entries().collect::<Vec<_>>(), [b"key"]);
        assert_eq!(trimmed.body().unwrap(), body);
        let empty = chunk.without(|_| true).unwrap();
        assert_eq!(Chunk::decode(&empty).unwrap().parts().count(), 0);
    }

    #[test]
    fn a_chunk_made_after_a_larger_one_carries_nothing_of_it() {
        let big: Vec<u8> = (0..40_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let large = encode(
            &[part(7, &[7; 40]); 3],
            &[b"a longer entry key"],
            &big,
            counted,
        );
        let small = encode(&[part(1, &[1])], &[b"key"], b"a few spans", counted);
        assert_eq!(
            &*small,
            &*encode_in(
                &mut Vec::new(),
                &[part(1, &[1])],
                &[b"key"],
                b"a few spans",
                &counted
            ),
            "the same bytes as a chunk built in a buffer of its own"
        );
        assert_eq!(
            Chunk::decode(&small).unwrap().body().unwrap(),
            b"a few spans"
        );
        assert_eq!(Chunk::decode(&large).unwrap().body().unwrap(), big);
    }

    #[test]
    fn damaged_chunks_decode_to_none_instead_of_panicking() {
        let value = encode(&[part(1, &[5, 6])], &[b"an entry"], b"some spans", counted);
        for cut in 0..value.len() {
            if let Some(chunk) = Chunk::decode(&value[..cut]) {
                assert_eq!(chunk.parts().count(), 1, "cut at {cut}");
                assert_eq!(
                    chunk.entries().collect::<Vec<_>>(),
                    [b"an entry"],
                    "cut at {cut}"
                );
                assert_ne!(
                    chunk.body().as_deref(),
                    Some(&b"some spans"[..]),
                    "cut at {cut}"
                );
            }
        }
        assert!(Chunk::decode(&[0xff, 0xff, 0xff, 0xff, 1]).is_none());
        assert!(
            Chunk::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 9, 1]).is_none(),
            "an entry key longer than the value"
        );
        let mut long_layout = value.to_vec();
        long_layout[4 + PART_REF_LEN + TraceSummary::LEN..][..4].copy_from_slice(&[0xff; 4]);
        assert!(
            Chunk::decode(&long_layout).is_none(),
            "a layout longer than the value"
        );
        let huge = [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
        assert!(
            Chunk::decode(&huge).unwrap().body().is_none(),
            "no 4 GiB allocation"
        );
    }

    #[test]
    fn keys_are_in_arrival_order_and_distinct() {
        let maker = KeyMaker::new();
        let a = maker.next();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = maker.next();
        let c = maker.next();
        assert!(a < b, "a later chunk sorts later");
        assert_ne!(b, c);
        let micros = |k: &ChunkKey| u64::from_be_bytes(k[..8].try_into().unwrap());
        assert!(
            micros(&b) >= micros(&a) + 1_000,
            "the arrival time leads the key"
        );
    }
}
