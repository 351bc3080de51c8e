//! Chunks: the spans of the trace parts that one submission added, compressed together.
//!
//! A part's value in `parts` holds its summary and where its spans are (`Location`): a chunk's key, and
//! their layout in the chunk's decompressed body (`model::layout`), which is the submission's request as
//! it arrived (an OTLP `ExportTraceServiceRequest`, or what another receiver's spans were encoded to):
//! nothing is re-encoded on the way in, and a part's spans are written as a `TracesData` when it is
//! read. The receiving task compresses the body (LZ4, the same codec fjall uses for its blocks) once,
//! and the LSM stores chunks as they are
//! (`CompressionType::None`): fjall's flushes and its compactions, which rewrite everything at least
//! twice, copy a request's spans as about a quarter of their bytes instead of compressing, decompressing
//! and compressing them again (issue 16, "Chunks" in collector/DESIGN.md).
//!
//! A chunk's value: the number of parts (u32), the part references (`trace(16) hash(8)` each) of the
//! parts it was written for, the number of search entries made with it (u32) and their keys (u16
//! length, then the key, each), then the LZ4 block of the body with its decompressed size in front. The
//! references let retention delete a chunk once none of its parts is left (`Store::chunk_is_alive`),
//! and the entries' keys let it delete or trim the chunk's search entries with it.
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

pub const KEY_LEN: usize = 16;
/// The largest body a chunk may claim (a submission's spans; receivers refuse far smaller requests).
const MAX_BODY: u32 = 1 << 30;
pub type ChunkKey = [u8; KEY_LEN];

/// Where a part's spans are: a part value is `TraceSummary` + the chunk's key + their layout in the
/// chunk's body (the rest of the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    pub chunk: ChunkKey,
    pub layout: &'a [u8],
}

impl<'a> Location<'a> {
    /// Its length in a part's value.
    pub fn len(&self) -> usize {
        KEY_LEN + self.layout.len()
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chunk);
        out.extend_from_slice(self.layout);
    }

    /// The location in a part's value (after its summary).
    pub fn of_part(value: &'a [u8]) -> Option<Self> {
        let (chunk, layout) = value
            .get(TraceSummary::LEN..)?
            .split_first_chunk::<KEY_LEN>()?;
        Some(Self {
            chunk: *chunk,
            layout,
        })
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

/// Builds a chunk's value from its parts' references, its search entries' keys and its body, in a
/// `Slice` of its exact size (the one copy of the compressed body).
pub fn encode(parts: &[PartRef], entries: &[&[u8]], body: &[u8]) -> Slice {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let value = encode_in(&mut scratch, parts, entries, body);
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
            value
        }
        Err(_) => encode_in(&mut Vec::new(), parts, entries, body),
    })
}

/// The most `SCRATCH` keeps between chunks: room for requests of a few MB is not held for good.
const SCRATCH_KEPT: usize = 1 << 20;

fn encode_in(out: &mut Vec<u8>, parts: &[PartRef], entries: &[&[u8]], body: &[u8]) -> Slice {
    let header = 4
        + parts.len() * PART_REF_LEN
        + 4
        + entries.iter().map(|key| 2 + key.len()).sum::<usize>()
        + 4;
    // `out` keeps its length from one chunk to the next: only room it never had is zeroed (resizing
    // from empty zeroed the LZ4 block's whole worst-case room, about the body's size, per submission).
    let end = header + lz4_flex::block::get_maximum_output_size(body.len());
    if out.len() < end {
        out.resize(end, 0);
    }
    let Some((head, room)) = out.get_mut(..end).map(|o| o.split_at_mut(header)) else {
        return Slice::from(&[][..]);
    };
    let written = write_header(head, parts, entries, body.len())
        .ok()
        .and_then(|()| lz4_flex::block::compress_into(body, room).ok());
    match written {
        Some(n) => Slice::from(out.get(..header + n).unwrap_or_default()),
        // Not reached (the header is sized above, the room is the codec's own bound).
        None => {
            let mut value = Vec::with_capacity(end);
            value.resize(header, 0);
            let _ = write_header(&mut value, parts, entries, body.len());
            value.extend_from_slice(&lz4_flex::block::compress(body));
            Slice::from(value)
        }
    }
}

/// Writes a chunk's header into `head`, sized for it: the part references, the search entries' keys,
/// then the body's decompressed size (little-endian, as `decompress_size_prepended` reads it).
fn write_header(
    mut head: &mut [u8],
    parts: &[PartRef],
    entries: &[&[u8]],
    body_len: usize,
) -> std::io::Result<()> {
    use std::io::Write;
    head.write_all(&(parts.len() as u32).to_be_bytes())?;
    for part in parts {
        head.write_all(part)?;
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
    parts: &'a [u8],
    entries: &'a [u8],
    entry_count: u32,
    compressed: &'a [u8],
}

impl<'a> Chunk<'a> {
    pub fn decode(value: &'a [u8]) -> Option<Self> {
        let (count, rest) = value.split_first_chunk::<4>()?;
        let refs_len = (u32::from_be_bytes(*count) as usize).checked_mul(PART_REF_LEN)?;
        let (parts, rest) = rest.split_at_checked(refs_len)?;
        let (entry_count, mut rest) = rest.split_first_chunk::<4>()?;
        let entry_count = u32::from_be_bytes(*entry_count);
        let entries = rest;
        for _ in 0..entry_count {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            rest = tail.get(usize::from(u16::from_be_bytes(*len))..)?;
        }
        Some(Self {
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

    /// The references of the parts the chunk was written for.
    pub fn parts(&self) -> impl Iterator<Item = PartRef> + 'a {
        self.parts
            .chunks_exact(PART_REF_LEN)
            .filter_map(|r| PartRef::try_from(r).ok())
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

/// Chunks decompressed by one reader (a trace read, a search, a retention pass): the parts of one
/// trace, and the traces a search checks, are often in the same few chunks.
pub struct ChunkCache {
    chunks: Snapshot,
    bodies: RefCell<HashMap<ChunkKey, Option<Rc<Vec<u8>>>>>,
}

/// Bodies kept by one reader at most (about 60 KB each for the benchmark's requests).
const CACHED_BODIES: usize = 256;

impl ChunkCache {
    pub fn new(chunks: Snapshot) -> Self {
        Self {
            chunks,
            bodies: RefCell::default(),
        }
    }

    /// Calls `f` with the encoded spans of the part whose value is `part_value`; `None` when the part's
    /// chunk is missing or damaged (the part is then read as empty, as an undecodable part always was).
    pub fn with_spans<R>(
        &self,
        part_value: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StoreError> {
        let Some(at) = Location::of_part(part_value) else {
            return Ok(None);
        };
        let body = self.body(&at.chunk)?;
        let mut spans = Vec::new();
        Ok(body
            .as_deref()
            .and_then(|b| crate::model::layout::encode(b, at.layout, &mut spans))
            .map(|()| f(&spans)))
    }

    fn body(&self, key: &ChunkKey) -> Result<Option<Rc<Vec<u8>>>, StoreError> {
        if let Some(body) = self.bodies.borrow().get(key) {
            return Ok(body.clone());
        }
        let body = self
            .chunks
            .get(key)?
            .and_then(|v| Chunk::decode(&v)?.body())
            .map(Rc::new);
        let mut bodies = self.bodies.borrow_mut();
        if bodies.len() >= CACHED_BODIES {
            bodies.clear();
        }
        bodies.insert(*key, body.clone());
        Ok(body)
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

    #[test]
    fn a_chunk_round_trips_its_parts_and_body() {
        let parts = [[1u8; PART_REF_LEN], [2u8; PART_REF_LEN]];
        let body: Vec<u8> = (0..5000u32).flat_map(|i| (i % 7).to_be_bytes()).collect();
        let entries: [&[u8]; 2] = [b"entry one", b""];
        let value = encode(&parts, &entries, &body);
        assert!(value.len() < body.len() / 2, "the body is compressed");
        let chunk = Chunk::decode(&value).unwrap();
        assert_eq!(chunk.parts().collect::<Vec<_>>(), parts);
        assert_eq!(chunk.entries().collect::<Vec<_>>(), entries);
        assert_eq!(chunk.body().unwrap(), body);
    }

    #[test]
    fn a_chunk_made_after_a_larger_one_carries_nothing_of_it() {
        let big: Vec<u8> = (0..40_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let large = encode(&[[7u8; PART_REF_LEN]; 3], &[b"a longer entry key"], &big);
        let small = encode(&[[1u8; PART_REF_LEN]], &[b"key"], b"a few spans");
        assert_eq!(
            &*small,
            &*encode_in(
                &mut Vec::new(),
                &[[1u8; PART_REF_LEN]],
                &[b"key"],
                b"a few spans"
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
        let value = encode(&[[1u8; PART_REF_LEN]], &[b"an entry"], b"some spans");
        for cut in 0..value.len() {
            if let Some(chunk) = Chunk::decode(&value[..cut]) {
                let _ = chunk.parts().count();
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
        let huge = [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
        assert!(
            Chunk::decode(&huge).unwrap().body().is_none(),
            "no 4 GiB allocation"
        );
    }

    #[test]
    fn locations_round_trip_after_the_summary() {
        let at = Location {
            chunk: [9; KEY_LEN],
            layout: &[1, 0, 1, 0, 1, 0xd0, 0x86, 0x03, 20],
        };
        let mut value = TraceSummary::default().encode().to_vec();
        at.encode_into(&mut value);
        assert_eq!(value.len(), TraceSummary::LEN + at.len());
        assert_eq!(Location::of_part(&value), Some(at));
        assert_eq!(
            Location::of_part(&value[..TraceSummary::LEN + KEY_LEN - 1]),
            None
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
