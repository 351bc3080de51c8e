//! Search entries: what a search needs to rule a trace out without reading it, one entry per
//! submission and service.
//!
//! Every trace part is one *item* per service among its spans: the trace, the earliest start of that
//! service's spans in the part, their shortest and longest duration (µs), and hashes of their
//! operations and tags (`keys::operation_hash`, `keys::tag_hash`). A search skips an item whose
//! durations or hashes rule it out; a hash match is checked against the spans.
//!
//! The items of one service in one submission make one entry, keyed `lp(service) start µs(8)
//! chunk(16)`: the latest start among its items, then the key of the chunk that holds the submission's
//! spans (which also lists the entry's key, so that deleting the chunk deletes it). A search reading
//! entries newest first by that start hands out items in exact start order: an item's turn comes once
//! the next entry's latest start is before it (`scan`). An entry's items start at most
//! `ENTRY_SPREAD_US` before its key's start (a submission whose spans are spread wider makes several
//! entries per service), so a walk oldest first knows how early the next entries can start.
//!
//! An entry's value: the number of items and the length of its dictionary (varints), the dictionary
//! (the sorted distinct hashes of all its items, u32 big-endian each), then the items, each: trace(16),
//! the key's start minus its start, its shortest and longest duration, the byte length of its hashes
//! (varints), and its hashes as indexes into the dictionary, ascending, each a varint difference from
//! the previous one. The length lets a scan step over an item's hashes without reading them, which it
//! does for every item the time window or the durations rule out. The items of one service in one request share most of their tags (the service's resource, its
//! routes, methods and status codes), so the dictionary holds those once and an item holds about a byte
//! per tag.

use super::chunk::{ChunkKey, KEY_LEN as CHUNK_KEY_LEN};
use super::keys::{self, operation_hash, tag_hash};
// Our own `Vec` varint: prost's `encode_varint`, generic over `BufMut`, was a call per index here.
use crate::model::wire::put_varint;
use crate::model::{SpanBatch, TraceId};

/// The widest spread of item starts in one entry.
pub const ENTRY_SPREAD_US: u64 = 1_000_000;

/// One item, as `prepare` builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    pub service: &'a str,
    pub trace: TraceId,
    pub start_us: u64,
    pub min_dur: u64,
    pub max_dur: u64,
    /// In any order, possibly repeated (`encode` makes them the entry's sorted, distinct indexes).
    pub hashes: Vec<u32>,
}

/// A search entry's key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

struct Acc<'a> {
    item: Item<'a>,
    /// The first resource whose attribute hashes are in `hashes` already, then any others (most parts
    /// have one: no allocation).
    resource: u32,
    more_resources: Vec<u32>,
    /// The previous span's name and attribute hashes: a span's operation hash is computed only when its
    /// name differs, and its attribute hashes equal to the previous span's at the same position are not
    /// added (a sidecar's server and client spans share most of their tags), so fewer are looked up.
    last_name: Option<&'a str>,
    last_attributes: &'a [u32],
}

/// The hashes of the tags a span has by its kind and status (`SpanRef::for_each_tag`'s last ones),
/// computed once.
struct DerivedTags {
    /// `span.kind` by OTLP kind (1 to 5).
    kinds: [u32; 5],
    error: [u32; 2],
    ok: u32,
}

static DERIVED: std::sync::LazyLock<DerivedTags> = std::sync::LazyLock::new(|| DerivedTags {
    kinds: [1, 2, 3, 4, 5].map(|k| tag_hash("span.kind", crate::model::kind_name(k))),
    error: [
        tag_hash("error", "true"),
        tag_hash("otel.status_code", "ERROR"),
    ],
    ok: tag_hash("otel.status_code", "OK"),
});

fn derived_tag_hashes(kind: i32, status: i32, out: &mut Vec<u32>) {
    let derived = &*DERIVED;
    if let Some(h) = usize::try_from(kind - 1)
        .ok()
        .and_then(|k| derived.kinds.get(k))
    {
        out.push(*h);
    }
    match status {
        2 => out.extend_from_slice(&derived.error),
        1 => out.push(derived.ok),
        _ => {}
    }
}

/// The items of a trace part (the spans of `batch` at `indexes`, all of `trace`): one per distinct
/// service among its spans, in the order met.
pub fn part_items<'a>(batch: &'a SpanBatch, indexes: &[u32], trace: &TraceId) -> Vec<Item<'a>> {
    // Per service, in the order met: a part has one or a few (a list beats a map).
    let mut acc: Vec<Acc> = Vec::with_capacity(1);
    for rec in indexes.iter().filter_map(|i| batch.span(*i as usize)) {
        let start = rec.start_us();
        let dur = rec.duration_us();
        let service = rec.service_name();
        let resource = rec.resource_index();
        let at = match acc.iter().position(|a| a.item.service == service) {
            Some(at) => at,
            None => {
                let mut hashes = Vec::with_capacity(32 * indexes.len());
                hashes.extend_from_slice(rec.resource_attribute_hashes());
                acc.push(Acc {
                    item: Item {
                        service,
                        trace: *trace,
                        start_us: start,
                        min_dur: dur,
                        max_dur: dur,
                        hashes,
                    },
                    resource,
                    more_resources: Vec::new(),
                    last_name: None,
                    last_attributes: &[],
                });
                acc.len() - 1
            }
        };
        let Some(a) = acc.get_mut(at) else { continue };
        let item = &mut a.item;
        item.start_us = item.start_us.min(start);
        item.min_dur = item.min_dur.min(dur);
        item.max_dur = item.max_dur.max(dur);
        let name = rec.name();
        if a.last_name != Some(name) {
            item.hashes.push(operation_hash(name));
            a.last_name = Some(name);
        }
        let attributes = rec.attribute_hashes();
        let (paired, rest) = attributes.split_at(attributes.len().min(a.last_attributes.len()));
        item.hashes.reserve(attributes.len());
        for (h, last) in paired.iter().zip(a.last_attributes) {
            if h != last {
                item.hashes.push(*h);
            }
        }
        item.hashes.extend_from_slice(rest);
        a.last_attributes = attributes;
        if a.resource != resource && !a.more_resources.contains(&resource) {
            a.more_resources.push(resource);
            item.hashes
                .extend_from_slice(rec.resource_attribute_hashes());
        }
        derived_tag_hashes(rec.kind(), rec.status_code(), &mut item.hashes);
    }
    acc.into_iter().map(|a| a.item).collect()
}

/// The search entries of one submission whose spans are in `chunk`: its items grouped by service, each
/// group split where its starts spread wider than `ENTRY_SPREAD_US`. Deterministic in the items.
pub fn entries(mut items: Vec<Item>, chunk: &ChunkKey) -> Vec<Entry> {
    // Services whose names share their first `MAX_KEY_STRING` bytes share a key prefix, so they share
    // entries too (two entries of one key would overwrite each other).
    fn name<'a>(i: &Item<'a>) -> &'a [u8] {
        keys::key_bytes(i.service)
    }
    items.sort_unstable_by(|a, b| {
        (name(a), a.start_us, a.trace).cmp(&(name(b), b.start_us, b.trace))
    });
    let mut out = Vec::new();
    let mut rest = items.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|i| {
                name(i) == name(first) && i.start_us - first.start_us <= ENTRY_SPREAD_US
            })
            .count();
        let (group, tail) = rest.split_at(n);
        let last = group.last().map_or(first.start_us, |i| i.start_us);
        out.push(encode(first.service, last, group, chunk));
        rest = tail;
    }
    out
}

/// One entry of `group` (items of `service`, sorted by start, the last starting at `start_us`).
fn encode(service: &str, start_us: u64, group: &[Item], chunk: &ChunkKey) -> Entry {
    let mut key = Vec::with_capacity(2 + service.len() + 8 + CHUNK_KEY_LEN);
    keys::lp(&mut key, service);
    key.extend_from_slice(&start_us.to_be_bytes());
    key.extend_from_slice(chunk);
    let dict = dictionary(group);
    let per_item: usize = group.iter().map(|i| 24 + i.hashes.len()).sum();
    let mut value = Vec::with_capacity(10 + 4 * dict.len() + per_item);
    put_varint(&mut value, group.len() as u64);
    put_varint(&mut value, dict.len() as u64);
    for h in &dict {
        value.extend_from_slice(&h.to_be_bytes());
    }
    let places = Places::of(&dict);
    let mut present = IndexSet::new(dict.len());
    let mut indexes = Vec::new();
    for item in group {
        value.extend_from_slice(&item.trace);
        put_varint(&mut value, start_us.saturating_sub(item.start_us));
        put_varint(&mut value, item.min_dur);
        put_varint(&mut value, item.max_dur);
        for h in &item.hashes {
            if let Some(at) = places.find(*h) {
                present.insert(at);
            }
        }
        // The indexes come out rising and distinct: each is written as the step from the one before.
        indexes.clear();
        let mut previous = 0usize;
        present.drain(|at| {
            put_varint(&mut indexes, (at - previous) as u64);
            previous = at;
        });
        put_varint(&mut value, indexes.len() as u64);
        value.extend_from_slice(&indexes);
    }
    Entry { key, value }
}

/// The dictionary indexes of one item's hashes, a bit each: an item's hashes come in any order and
/// may repeat, and setting their bits, then reading the bits in order, gives its indexes sorted and
/// distinct without sorting them (a sort per trace part was 3.5% of ingest's instructions; the bits of a
/// submission's dictionary are a few words). Only the words an item touched are read and cleared.
struct IndexSet {
    words: Vec<u64>,
    /// The first and one past the last word set since the last `drain`.
    touched: (usize, usize),
}

impl IndexSet {
    fn new(len: usize) -> Self {
        let words = len.div_ceil(64);
        Self {
            words: vec![0; words],
            touched: (words, 0),
        }
    }

    fn insert(&mut self, at: usize) {
        let word = at / 64;
        if let Some(w) = self.words.get_mut(word) {
            *w |= 1 << (at % 64);
            self.touched = (self.touched.0.min(word), self.touched.1.max(word + 1));
        }
    }

    /// Calls `each` with every index set, rising, and clears them.
    fn drain(&mut self, mut each: impl FnMut(usize)) {
        let (first, end) = std::mem::replace(&mut self.touched, (self.words.len(), 0));
        for (n, w) in self.words.iter_mut().enumerate().take(end).skip(first) {
            let mut bits = std::mem::take(w);
            while bits != 0 {
                each(n * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
}

/// Slots of `dictionary`'s table of hashes seen lately (a power of two; 4 KiB on the stack).
const SEEN_SLOTS: usize = 1024;

/// The sorted distinct hashes of `group`'s items. Most of them repeat from item to item (the service's
/// resource, its routes, methods and status codes), so a direct-mapped table of the hashes seen lately
/// drops most repeats before the sort: a submission's entry sorts a few hundred hashes instead of every
/// item's (about 1,500 for 50 items). A hash is dropped only when its slot holds that very hash, put
/// there by an earlier one; the sort and `dedup` remove whatever repeats the table missed.
fn dictionary(group: &[Item]) -> Vec<u32> {
    let mut seen = [0u32; SEEN_SLOTS];
    let mut dict = Vec::with_capacity(group.iter().map(|i| i.hashes.len()).sum::<usize>() / 4);
    for h in group.iter().flat_map(|i| i.hashes.iter().copied()) {
        // Empty slots hold 0, so a 0 is never taken for a repeat.
        if let Some(slot) = seen.get_mut(h as usize & (SEEN_SLOTS - 1)) {
            if *slot == h && h != 0 {
                continue;
            }
            *slot = h;
        }
        dict.push(h);
    }
    dict.sort_unstable();
    dict.dedup();
    dict
}

/// Where each hash of a dictionary is in it: a table of (hash, index + 1) at most half full, found by
/// the hash's low bits and the slots after (the hashes are xxh3's, spread evenly). An item's indexes are
/// found in a few probes each, where a walk through the dictionary beside the item's sorted hashes took
/// the dictionary's length per item (a few hundred steps, 50 items per entry).
struct Places {
    slots: Vec<(u32, u32)>,
}

impl Places {
    fn of(dict: &[u32]) -> Self {
        let mut slots = vec![(0u32, 0u32); (2 * dict.len()).next_power_of_two().max(16)];
        let mask = slots.len() - 1;
        for (i, &h) in dict.iter().enumerate() {
            let mut at = h as usize & mask;
            while let Some(slot) = slots.get_mut(at) {
                if slot.1 == 0 {
                    *slot = (h, i as u32 + 1);
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        Self { slots }
    }

    /// `h`'s index in the dictionary; `None` when it is not there.
    fn find(&self, h: u32) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut at = h as usize & mask;
        loop {
            match self.slots.get(at)? {
                (_, 0) => return None,
                (k, i) if *k == h => return Some(*i as usize - 1),
                _ => at = (at + 1) & mask,
            }
        }
    }
}

/// A varint (LEB128) at the start of `buf`, which moves past it; `None` when `buf` ends first or the
/// varint is longer than ten bytes. Inlined: one-byte varints (most of an entry's) cost a compare.
#[inline]
fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The start in an entry's key (the 8 bytes before the chunk key): its items' latest.
pub fn key_start(key: &[u8]) -> Option<u64> {
    let end = key.len().checked_sub(CHUNK_KEY_LEN)?;
    let bytes: [u8; 8] = key.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The chunk key at the end of an entry's key.
pub fn key_chunk(key: &[u8]) -> Option<ChunkKey> {
    key.get(key.len().checked_sub(CHUNK_KEY_LEN)?..)?
        .try_into()
        .ok()
}

/// An entry's value, read in place.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    start_us: u64,
    count: u64,
    dict: &'a [u8],
    items: &'a [u8],
}

impl<'a> EntryView<'a> {
    /// The entry with key start `start_us` (`key_start`) and value `value`; `None` when its header does
    /// not decode (a damaged item ends `items` early instead).
    pub fn decode(start_us: u64, value: &'a [u8]) -> Option<Self> {
        let mut buf = value;
        let count = read_varint(&mut buf)?;
        let dict_len = usize::try_from(read_varint(&mut buf)?).ok()?;
        let dict_bytes = dict_len.checked_mul(4)?;
        Some(Self {
            start_us,
            count,
            dict: buf.get(..dict_bytes)?,
            items: buf.get(dict_bytes..)?,
        })
    }

    /// The dictionary index of `hash`, when any item has it.
    pub fn index_of(&self, hash: u32) -> Option<u32> {
        let at = |i: usize| {
            self.dict
                .get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
        };
        let (mut lo, mut hi) = (0usize, self.dict.len() / 4);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match at(mid)?.cmp(&hash) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return u32::try_from(mid).ok(),
            }
        }
        None
    }

    /// The number of items.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// The items, in start order.
    pub fn items(&self) -> Items<'a> {
        Items {
            start_us: self.start_us,
            left: self.count,
            buf: self.items,
        }
    }
}

/// The items of an entry; ends early at a damaged one.
pub struct Items<'a> {
    start_us: u64,
    left: u64,
    buf: &'a [u8],
}

/// One item of an entry, read in place.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    pub trace: TraceId,
    pub start_us: u64,
    pub min_dur: u64,
    pub max_dur: u64,
    indexes: &'a [u8],
    /// The item's whole encoding.
    encoded: &'a [u8],
}

impl ItemView<'_> {
    /// Whether the item has the hash at dictionary index `index`.
    pub fn has(&self, index: u32) -> bool {
        let mut buf = self.indexes;
        let mut at = 0u64;
        while let Some(delta) = read_varint(&mut buf) {
            at += delta;
            match at.cmp(&u64::from(index)) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Greater => return false,
            }
        }
        false
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = ItemView<'a>;

    fn next(&mut self) -> Option<ItemView<'a>> {
        if self.left == 0 {
            return None;
        }
        let item = self.read();
        if item.is_none() {
            self.left = 0;
        }
        item
    }
}

impl<'a> Items<'a> {
    fn read(&mut self) -> Option<ItemView<'a>> {
        let all = self.buf;
        let (trace, mut buf) = all.split_first_chunk::<16>()?;
        let start = read_varint(&mut buf)?;
        let min_dur = read_varint(&mut buf)?;
        let max_dur = read_varint(&mut buf)?;
        let len = usize::try_from(read_varint(&mut buf)?).ok()?;
        let (indexes, rest) = buf.split_at_checked(len)?;
        let used = all.len() - rest.len();
        self.left -= 1;
        self.buf = rest;
        Some(ItemView {
            trace: *trace,
            start_us: self.start_us.checked_sub(start)?,
            min_dur,
            max_dur,
            indexes,
            encoded: all.get(..used)?,
        })
    }
}

/// What is left of an entry once some items are dropped (`without`).
#[derive(Debug, PartialEq, Eq)]
pub enum Trimmed {
    /// No item was dropped: the entry stays as it is.
    Unchanged,
    /// The entry's new value.
    Kept(Vec<u8>),
    /// No item is left (or the value does not decode: nothing could be found through it); the entry
    /// goes.
    Empty,
}

/// The entry's value without the items `drop` picks.
pub fn without(start_us: u64, value: &[u8], drop: impl Fn(&TraceId) -> bool) -> Trimmed {
    let Some(view) = EntryView::decode(start_us, value) else {
        return Trimmed::Empty;
    };
    let kept: Vec<ItemView> = view.items().filter(|i| !drop(&i.trace)).collect();
    if kept.is_empty() {
        return Trimmed::Empty;
    }
    if kept.len() as u64 == view.count {
        return Trimmed::Unchanged;
    }
    let mut out = Vec::with_capacity(value.len());
    put_varint(&mut out, kept.len() as u64);
    put_varint(&mut out, (view.dict.len() / 4) as u64);
    out.extend_from_slice(view.dict);
    for item in kept {
        out.extend_from_slice(item.encoded);
    }
    Trimmed::Kept(out)
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
    use crate::model::{string_attribute, SpanRecord};
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};

    fn item<'a>(service: &'a str, trace: u8, start_us: u64, hashes: &[u32]) -> Item<'a> {
        Item {
            service,
            trace: [trace; 16],
            start_us,
            min_dur: u64::from(trace),
            max_dur: 1000 * u64::from(trace),
            hashes: hashes.to_vec(),
        }
    }

    #[test]
    fn places_find_every_hash_of_the_dictionary_and_nothing_else() {
        // Zero, neighbours and hashes sharing their low bits (the table's slot) among others.
        let mut dict: Vec<u32> = (0..300u32)
            .map(|i| i.wrapping_mul(0x9e37_79b9))
            .chain([0, 1, 2, 1 << 20, 2 << 20, 3 << 20])
            .collect();
        dict.sort_unstable();
        dict.dedup();
        let places = Places::of(&dict);
        for (i, h) in dict.iter().enumerate() {
            assert_eq!(places.find(*h), Some(i), "{h:#x}");
        }
        for absent in [3u32, 4 << 20, u32::MAX] {
            assert!(!dict.contains(&absent));
            assert_eq!(places.find(absent), None, "{absent:#x}");
        }
        assert_eq!(Places::of(&[]).find(0), None);
    }

    /// Pseudo-random hashes, the same every run (xorshift32 from `seed`, not 0).
    fn xorshift(mut next: u32) -> impl FnMut() -> u32 {
        move || {
            next ^= next << 13;
            next ^= next >> 17;
            next ^= next << 5;
            next
        }
    }

    #[test]
    fn the_dictionary_is_every_items_hashes_sorted_and_distinct() {
        // Repeats near and far apart, zeros, and hashes sharing a slot of the table of seen ones.
        let slot_mates = [7, 7 + SEEN_SLOTS as u32, 7 + 2 * SEEN_SLOTS as u32];
        let mut random = xorshift(0x9e37_79b9);
        let mut group = Vec::new();
        for t in 0..60u8 {
            let mut hashes: Vec<u32> = (0..30).map(|_| random() % 5000).collect();
            hashes.extend([0, 1, 2, 3]);
            hashes.extend(slot_mates.iter().skip(usize::from(t) % 3).take(2));
            hashes.sort_unstable();
            hashes.dedup();
            group.push(item("svc", t, u64::from(t), &hashes));
        }
        let mut expected: Vec<u32> = group.iter().flat_map(|i| i.hashes.clone()).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(dictionary(&group), expected);
        // A 0 the table has never seen is not taken for a repeat (its slot starts as 0).
        assert_eq!(dictionary(&[item("svc", 1, 1, &[0, 5])]), vec![0, 5]);
        assert_eq!(dictionary(&[]), Vec::<u32>::new());
    }

    fn decoded(entry: &Entry) -> Vec<(TraceId, u64, u64, u64, Vec<u32>)> {
        let start = key_start(&entry.key).unwrap();
        let view = EntryView::decode(start, &entry.value).unwrap();
        let dict: Vec<u32> = view
            .dict
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        view.items()
            .map(|i| {
                let hashes = (0..dict.len() as u32)
                    .filter(|x| i.has(*x))
                    .map(|x| dict[x as usize])
                    .collect();
                (i.trace, i.start_us, i.min_dur, i.max_dur, hashes)
            })
            .collect()
    }

    #[test]
    fn items_round_trip_through_one_entry_per_service() {
        let chunk = [7u8; CHUNK_KEY_LEN];
        // Hashes come in any order and may repeat; the entry holds each item's distinct ones.
        let items = vec![
            item("b", 3, 2_000, &[900, 5, 900]),
            item("a", 1, 1_500, &[300, 1, 2, 1]),
            item("a", 2, 1_000, &[u32::MAX, 2, 300, 2]),
        ];
        let entries = entries(items, &chunk);
        assert_eq!(entries.len(), 2, "one entry per service");
        let a = &entries[0];
        assert_eq!(
            a.key,
            [
                keys::service_prefix("a"),
                1_500u64.to_be_bytes().to_vec(),
                chunk.to_vec()
            ]
            .concat()
        );
        assert_eq!(
            (key_start(&a.key), key_chunk(&a.key)),
            (Some(1_500), Some(chunk))
        );
        assert_eq!(
            decoded(a),
            vec![
                ([2; 16], 1_000, 2, 2_000, vec![2, 300, u32::MAX]),
                ([1; 16], 1_500, 1, 1_000, vec![1, 2, 300]),
            ],
            "items in start order, each with exactly its own hashes"
        );
        assert_eq!(
            decoded(&entries[1]),
            vec![([3; 16], 2_000, 3, 3_000, vec![5, 900])]
        );
        let view = EntryView::decode(1_500, &a.value).unwrap();
        assert_eq!(view.index_of(300), Some(2));
        assert_eq!(view.index_of(4), None);
    }

    #[test]
    fn an_items_indexes_come_out_rising_and_distinct_across_words() {
        // Indexes in several words, the first and last of the set among them, some set twice, and
        // a second item that touches other words: the first item's bits must not leak into it.
        let mut set = IndexSet::new(300);
        for at in [299, 0, 64, 63, 130, 64, 299, 1] {
            set.insert(at);
        }
        let mut out = Vec::new();
        set.drain(|at| out.push(at));
        assert_eq!(out, vec![0, 1, 63, 64, 130, 299]);
        set.insert(200);
        set.insert(65);
        let mut out = Vec::new();
        set.drain(|at| out.push(at));
        assert_eq!(out, vec![65, 200], "drained bits are cleared");
        set.insert(320);
        let mut out = Vec::new();
        set.drain(|at| out.push(at));
        assert!(
            out.is_empty(),
            "an index past the set's words is not stored"
        );
        // A whole entry: items of 100 random hashes each, in random order with repeats.
        let mut random = xorshift(0x2545_f491);
        let group: Vec<Item> = (0..20u8)
            .map(|t| {
                let hashes: Vec<u32> = (0..100).map(|_| random() % 700).collect();
                item("svc", t, 1_000 + u64::from(t), &hashes)
            })
            .collect();
        let entries = entries(group.clone(), &[1; CHUNK_KEY_LEN]);
        assert_eq!(entries.len(), 1);
        for (decoded, item) in decoded(&entries[0]).into_iter().zip(&group) {
            let mut expected = item.hashes.clone();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(decoded.4, expected, "item {:?}", item.trace);
        }
    }

    #[test]
    fn varints_read_what_prost_writes() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, v);
            bytes.push(9);
            let mut buf = bytes.as_slice();
            assert_eq!(read_varint(&mut buf), Some(v));
            assert_eq!(buf, [9], "moves past the varint only");
        }
        assert_eq!(read_varint(&mut &[0x80, 0x80][..]), None, "ends early");
        assert_eq!(
            read_varint(&mut &[0xff; 11][..]),
            None,
            "longer than ten bytes"
        );
    }

    #[test]
    fn services_that_share_a_key_prefix_share_entries() {
        let long_a = format!("{}a", "s".repeat(keys::MAX_KEY_STRING));
        let long_b = format!("{}b", "s".repeat(keys::MAX_KEY_STRING));
        let items = vec![item(&long_a, 1, 10, &[1]), item(&long_b, 2, 10, &[2])];
        let entries = entries(items, &[0; CHUNK_KEY_LEN]);
        assert_eq!(entries.len(), 1, "one key, one entry");
        assert_eq!(decoded(&entries[0]).len(), 2);
    }

    #[test]
    fn a_wide_spread_of_starts_splits_an_entry() {
        let items = vec![
            item("a", 1, 0, &[1]),
            item("a", 2, ENTRY_SPREAD_US, &[1]),
            item("a", 3, ENTRY_SPREAD_US + 1, &[1]),
        ];
        let entries = entries(items, &[0; CHUNK_KEY_LEN]);
        let starts: Vec<u64> = entries.iter().map(|e| key_start(&e.key).unwrap()).collect();
        assert_eq!(starts, vec![ENTRY_SPREAD_US, ENTRY_SPREAD_US + 1]);
        assert_eq!(decoded(&entries[0]).len(), 2);
    }

    #[test]
    fn dropping_items_keeps_the_others_and_an_empty_entry_goes() {
        let items = vec![
            item("a", 1, 10, &[1, 2]),
            item("a", 2, 20, &[2, 3]),
            item("a", 3, 30, &[4]),
        ];
        let entry = entries(items, &[0; CHUNK_KEY_LEN]).remove(0);
        let Trimmed::Kept(value) = without(30, &entry.value, |t| *t == [2; 16]) else {
            panic!("one item dropped, two kept");
        };
        let left = decoded(&Entry {
            key: entry.key.clone(),
            value,
        });
        assert_eq!(
            left,
            vec![
                ([1; 16], 10, 1, 1000, vec![1, 2]),
                ([3; 16], 30, 3, 3000, vec![4])
            ]
        );
        assert_eq!(without(30, &entry.value, |_| true), Trimmed::Empty);
        assert_eq!(
            without(30, &entry.value, |t| *t == [9; 16]),
            Trimmed::Unchanged,
            "no item of that trace"
        );
        assert_eq!(
            without(30, &entry.value[..3], |_| false),
            Trimmed::Empty,
            "undecodable"
        );
    }

    #[test]
    fn damaged_values_end_early_instead_of_panicking() {
        let items = vec![item("a", 1, 10, &[1, 2]), item("a", 2, 20, &[2, 3])];
        let entry = entries(items, &[0; CHUNK_KEY_LEN]).remove(0);
        for cut in 0..entry.value.len() {
            if let Some(view) = EntryView::decode(20, &entry.value[..cut]) {
                let items: Vec<_> = view.items().collect();
                assert!(items.len() < 2, "cut at {cut}");
                for i in items {
                    let _ = i.has(1);
                }
            }
        }
        let huge_dict = [1, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(EntryView::decode(0, &huge_dict).is_none());
    }

    #[test]
    fn items_hash_exactly_the_tags_a_search_compares() {
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let rec = |service: &str, id: u8, kind: i32, code: i32| {
            SpanRecord::new(
                Resource {
                    attributes: vec![
                        string_attribute("service.name", service),
                        kv("pod.index", Value::IntValue(-3)),
                    ],
                    ..Default::default()
                },
                Default::default(),
                Span {
                    trace_id: vec![1; 16],
                    span_id: vec![id; 8],
                    name: format!("op{}", id % 2),
                    kind,
                    start_time_unix_nano: 1_000_000 * u64::from(id),
                    end_time_unix_nano: 2_000_000 * u64::from(id) + 1_000,
                    attributes: vec![
                        string_attribute("http.route", "/x"),
                        kv("status", Value::IntValue(503)),
                        kv("ratio", Value::DoubleValue(0.25)),
                        kv("big", Value::DoubleValue(1e21)),
                        kv("cached", Value::BoolValue(id.is_multiple_of(2))),
                        kv("span.index", Value::IntValue(i64::from(id))),
                        kv("raw", Value::BytesValue(vec![1])),
                    ],
                    status: Some(Status {
                        code,
                        message: String::new(),
                    }),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        // Service a: two spans of one name with tags partly equal at the same positions, then another name.
        let records = [
            rec("a", 1, 2, 2),
            rec("a", 3, 3, 1),
            rec("a", 2, 2, 0),
            rec("b", 4, 0, 0),
        ];
        let batch = SpanBatch::from_records(&records);
        let items = part_items(&batch, &[0, 1, 2, 3], &[1; 16]);
        assert_eq!(items.len(), 2, "one item per service");
        for (item, service) in items.iter().zip(["a", "b"]) {
            let mut expected: Vec<u32> = Vec::new();
            for span in batch.spans().filter(|s| s.service_name() == service) {
                expected.push(operation_hash(span.name()));
                span.for_each_tag(|k, v| expected.push(tag_hash(k, v)));
            }
            expected.sort_unstable();
            expected.dedup();
            let mut hashes = item.hashes.clone();
            hashes.sort_unstable();
            hashes.dedup();
            assert_eq!(hashes, expected, "service {service}");
        }
        let a = &items[0];
        assert_eq!((a.start_us, a.min_dur, a.max_dur), (1_000, 1_001, 3_001));
        assert_eq!(a.trace, [1; 16]);
    }
}
