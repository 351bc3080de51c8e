//! The request headers as one owned buffer and offsets into it.
//!
//! Envoy hands a header map over as one serialized buffer: a little-endian
//! `u32` pair count, then a `(name length, value length)` table of `u32`
//! pairs, then each name and each value followed by a NUL. [`HeaderMap::parse`]
//! keeps that buffer as it is and records where each value lies; the names are
//! copied once, all together, into one string checked as UTF-8 in one pass.
//! So a request costs two allocations whatever its header count (the names
//! and the offsets; the readers' list of borrowed pairs, [`HeaderMap::pairs`],
//! is a third), where a list of owned pairs costs two per header. A short or
//! garbled buffer is refused ([`Garbled`]), never a panic.

use std::ops::Range;

/// Why a serialized header map was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Garbled;

/// One pair: where its name is in the map's names, its value in its buffer.
#[derive(Clone, Debug, Default)]
struct Entry {
    name: Range<u32>,
    value: Range<u32>,
}

/// Header names (lower-case, as the proxy keeps them) and values (the bytes on
/// the wire, not necessarily UTF-8), in the proxy's order.
#[derive(Clone, Debug, Default)]
pub struct HeaderMap {
    buf: Vec<u8>,
    names: String,
    entries: Vec<Entry>,
}

/// `pairs` serialized as the proxy hands a header map over (for hosts that
/// are not a proxy: tests, the benchmark's example, the fuzz targets).
pub fn serialize<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
    let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes();
    let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX);
    let mut out = count.to_le_bytes().to_vec();
    for (n, v) in pairs {
        out.extend(len(n.as_ref()));
        out.extend(len(v.as_ref()));
    }
    for (n, v) in pairs {
        for s in [n.as_ref(), v.as_ref()] {
            out.extend_from_slice(s);
            out.push(0);
        }
    }
    out
}

/// The sum of the name lengths in the table (a capacity: the names are
/// checked as they are copied).
fn name_bytes(table: &[u8]) -> usize {
    table
        .chunks_exact(8)
        .filter_map(|row| u32_at(row, 0))
        .fold(0usize, |sum, len| sum.saturating_add(len as usize))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

impl HeaderMap {
    /// Reads a serialized map, taking the buffer. An empty buffer is an empty
    /// map; one whose count, table or strings do not fit, or whose strings
    /// are not NUL-terminated, is [`Garbled`].
    pub fn parse(buf: Vec<u8>) -> Result<Self, Garbled> {
        if buf.is_empty() {
            return Ok(HeaderMap::default());
        }
        let count = usize::try_from(u32_at(&buf, 0).ok_or(Garbled)?).map_err(|_| Garbled)?;
        // Each pair needs 8 table bytes and two NULs: a count the buffer
        // cannot hold is refused before anything is reserved for it.
        let table_end = count
            .checked_mul(8)
            .and_then(|t| t.checked_add(4))
            .filter(|&end| end <= buf.len() && count <= (buf.len() - end) / 2)
            .ok_or(Garbled)?;
        // Every offset is kept as a u32: the buffer must fit one.
        u32::try_from(buf.len()).map_err(|_| Garbled)?;
        let table = buf.get(4..table_end).ok_or(Garbled)?;
        let mut entries = Vec::with_capacity(count);
        let mut names = Vec::with_capacity(name_bytes(table).min(buf.len()));
        let mut at = offset(table_end)?;
        // The next string: `len` bytes from `at`, then a NUL.
        let mut string = |len: u32| -> Result<Range<u32>, Garbled> {
            let start = at;
            let end = start.checked_add(len).ok_or(Garbled)?;
            if buf.get(end as usize) != Some(&0) {
                return Err(Garbled);
            }
            // `end` indexes the buffer, whose length fits a u32.
            at = end + 1;
            Ok(start..end)
        };
        for row in table.chunks_exact(8) {
            let name = string(u32_at(row, 0).ok_or(Garbled)?)?;
            let value = string(u32_at(row, 4).ok_or(Garbled)?)?;
            let from = offset(names.len())?;
            names.extend_from_slice(
                buf.get(name.start as usize..name.end as usize)
                    .ok_or(Garbled)?,
            );
            entries.push(Entry {
                name: from..offset(names.len())?,
                value,
            });
        }
        let names = match String::from_utf8(names) {
            // The names together can be UTF-8 while one of them ends inside
            // a character the next one finishes: each must be text alone.
            Ok(names)
                if entries.iter().all(|e| {
                    names.is_char_boundary(e.name.start as usize)
                        && names.is_char_boundary(e.name.end as usize)
                }) =>
            {
                names
            }
            Ok(names) => relossy(names.as_bytes(), &mut entries)?,
            // A name that is not UTF-8 (no HTTP codec lets one through) is
            // kept lossily, as every other undecodable text here.
            Err(e) => relossy(e.as_bytes(), &mut entries)?,
        };
        Ok(HeaderMap {
            buf,
            names,
            entries,
        })
    }

    /// A map of the given pairs (tests, and hosts that are not a proxy).
    pub fn from_pairs<N: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Self {
        let mut map = HeaderMap::default();
        for (n, v) in pairs {
            map.push(n.as_ref(), v.as_ref());
        }
        map
    }

    fn push(&mut self, name: &str, value: &[u8]) {
        let (Ok(n0), Ok(v0)) = (offset(self.names.len()), offset(self.buf.len())) else {
            return;
        };
        self.names.push_str(name);
        self.buf.extend_from_slice(value);
        let (Ok(n1), Ok(v1)) = (offset(self.names.len()), offset(self.buf.len())) else {
            return;
        };
        self.entries.push(Entry {
            name: n0..n1,
            value: v0..v1,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pair at `i`, in the proxy's order.
    pub fn get(&self, i: usize) -> Option<(&str, &[u8])> {
        self.entries.get(i).map(|e| self.pair(e))
    }

    /// The pairs as a list: what every reader takes. Made once per request,
    /// so the readers' passes over it check nothing.
    pub fn pairs(&self) -> Vec<(&str, &[u8])> {
        self.entries.iter().map(|e| self.pair(e)).collect()
    }

    fn pair(&self, e: &Entry) -> (&str, &[u8]) {
        let range = |r: &Range<u32>| r.start as usize..r.end as usize;
        (
            self.names.get(range(&e.name)).unwrap_or_default(),
            self.buf.get(range(&e.value)).unwrap_or_default(),
        )
    }
}

fn offset(at: usize) -> Result<u32, Garbled> {
    u32::try_from(at).map_err(|_| Garbled)
}

/// The names re-read one at a time, each decoded lossily.
fn relossy(raw: &[u8], entries: &mut [Entry]) -> Result<String, Garbled> {
    let mut names = String::with_capacity(raw.len());
    for e in entries {
        let name = raw
            .get(e.name.start as usize..e.name.end as usize)
            .ok_or(Garbled)?;
        let from = offset(names.len())?;
        names.push_str(&String::from_utf8_lossy(name));
        e.name = from..offset(names.len())?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.pairs()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    const SAMPLE: &[(&[u8], &[u8])] = &[
        (b":method", b"GET"),
        (b":path", b"/a?b=c"),
        (
            b"traceparent",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        (b"x-empty", b""),
        (b"x-obs", b"caf\xe9"),
    ];

    #[test]
    fn reads_a_map_as_serialized() {
        let map = HeaderMap::parse(serialize(SAMPLE)).unwrap();
        assert_eq!(map.len(), SAMPLE.len());
        for ((n, v), (en, ev)) in map.pairs().into_iter().zip(SAMPLE) {
            assert_eq!(n.as_bytes(), *en);
            assert_eq!(v, *ev);
        }
        assert_eq!(map.get(1), Some((":path", &b"/a?b=c"[..])));
        assert_eq!(map.get(5), None);
    }

    #[test]
    fn empty_buffer_and_zero_count_are_empty_maps() {
        assert!(HeaderMap::parse(Vec::new()).unwrap().is_empty());
        assert!(HeaderMap::parse(serialize::<&[u8], &[u8]>(&[]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn every_truncation_is_refused() {
        let full = serialize(SAMPLE);
        for len in 1..full.len() {
            let cut = full.get(..len).unwrap().to_vec();
            assert_eq!(HeaderMap::parse(cut).unwrap_err(), Garbled, "length {len}");
        }
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        for (row, len) in [(4, 1000u32), (8, 1000), (4, u32::MAX), (12, u32::MAX - 3)] {
            let mut bad = serialize(SAMPLE);
            bad.splice(row..row + 4, len.to_le_bytes());
            assert_eq!(HeaderMap::parse(bad).unwrap_err(), Garbled, "row {row}");
        }
        // A count no buffer of this size can hold.
        let mut bad = serialize(SAMPLE);
        bad.splice(0..4, u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::parse(bad).unwrap_err(), Garbled);
        assert_eq!(HeaderMap::parse(vec![1, 0, 0]).unwrap_err(), Garbled);
    }

    #[test]
    fn a_missing_nul_is_refused() {
        let full = serialize(SAMPLE);
        let table_end = 4 + 8 * SAMPLE.len();
        for (i, _) in full
            .iter()
            .enumerate()
            .skip(table_end)
            .filter(|(_, b)| **b == 0)
        {
            let mut bad = full.clone();
            bad[i] = b'x';
            assert_eq!(HeaderMap::parse(bad).unwrap_err(), Garbled, "NUL at {i}");
        }
    }

    #[test]
    fn a_shorter_length_lands_off_the_nul() {
        let mut bad = serialize(&[(b"abc", b"def")]);
        bad.splice(4..8, 2u32.to_le_bytes());
        assert_eq!(HeaderMap::parse(bad).unwrap_err(), Garbled);
    }

    #[test]
    fn non_utf8_names_are_kept_lossily() {
        let map = HeaderMap::parse(serialize::<&[u8], &[u8]>(&[
            (b"a", b"1"),
            (b"x-\xff\xfe", b"2"),
            (b"b", b"3"),
        ]))
        .unwrap();
        assert_eq!(
            pairs(&map),
            [
                ("a".to_string(), b"1".to_vec()),
                ("x-\u{fffd}\u{fffd}".to_string(), b"2".to_vec()),
                ("b".to_string(), b"3".to_vec()),
            ]
        );
    }

    #[test]
    fn a_character_split_across_two_names_is_two_lossy_names() {
        // 0xC2 0x80 is U+0080: the names joined are UTF-8, each alone is not.
        let map = HeaderMap::parse(serialize::<&[u8], &[u8]>(&[
            (b"\xc2", b"1"),
            (b"\x80", b"2"),
        ]))
        .unwrap();
        assert_eq!(
            pairs(&map),
            [
                ("\u{fffd}".to_string(), b"1".to_vec()),
                ("\u{fffd}".to_string(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn from_pairs_lends_what_it_was_given() {
        let map = HeaderMap::from_pairs(&[("a", "1"), ("bb", "")]);
        assert_eq!(
            pairs(&map),
            [
                ("a".to_string(), b"1".to_vec()),
                ("bb".to_string(), Vec::new())
            ]
        );
    }

    // proptest does not build for wasm32; the cases above run there too.
    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_refuse(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            if let Ok(map) = HeaderMap::parse(bytes) {
                for (n, v) in map.pairs() {
                    proptest::prop_assert!(n.len() + v.len() < 96);
                }
            }
        }

        #[test]
        fn serialized_pairs_round_trip(
            input in proptest::collection::vec(
                (proptest::collection::vec(1u8..=255, 0..12), proptest::collection::vec(1u8..=255, 0..12)),
                0..8,
            )
        ) {
            let refs: Vec<(&[u8], &[u8])> =
                input.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            let map = HeaderMap::parse(serialize(&refs)).unwrap();
            proptest::prop_assert_eq!(map.len(), input.len());
            for ((n, v), (en, ev)) in map.pairs().into_iter().zip(&input) {
                proptest::prop_assert_eq!(n, String::from_utf8_lossy(en));
                proptest::prop_assert_eq!(v, ev.as_slice());
            }
        }
    }
}
