//! Layouts: where a selection of spans is in the bytes of the request that brought them, enough to write
//! those spans as an OTLP `TracesData` later (`encode`) without copying them now. A stored trace part
//! keeps its layout, and the submission's chunk keeps the request's bytes (`store/chunk.rs`).
//!
//! A layout is a sequence of varints: the number of resource runs; for each, its resource's pieces (a
//! count, then each piece's start and length), then the number of its scope runs; for each of those,
//! its scope's pieces, then its spans (a count, then each span's start and length). A piece is the
//! body of one occurrence of a message field (protobuf merges a message given in several); spans that
//! share a resource and a scope share a run, as `ResourceSpans` and `ScopeSpans` group them.
//!
//! `SpanBatch::layout_into` writes layouts; `encode` is the one writer of `TracesData` bytes from
//! them, for stored parts and for a batch's own selections alike.

use bytes::Buf;
use xxhash_rust::xxh3::xxh3_64;

use super::wire;

/// Writes a layout, hashing what it refers to: each piece's bytes with xxh3 where they lie (no copy;
/// xxh3's streaming state copied every piece into its buffer first), then the pieces' hashes, their
/// lengths and the counts folded in order by a multiply-rotate step, the result passed through xxh3
/// once more (`finish`).
pub struct LayoutWriter<'a> {
    body: &'a [u8],
    out: &'a mut Vec<u8>,
    hash: u64,
    content: usize,
}

impl<'a> LayoutWriter<'a> {
    /// A writer of a layout into `body` appending to `out`.
    pub fn new(body: &'a [u8], out: &'a mut Vec<u8>) -> Self {
        Self {
            body,
            out,
            hash: 0,
            content: 0,
        }
    }

    /// A count (of runs, pieces or spans).
    pub fn count(&mut self, n: usize) {
        wire::put_varint(self.out, n as u64);
        self.mix(n as u64);
    }

    /// A piece or a span: the bytes `start..end` of the body.
    pub fn piece(&mut self, (start, end): (u32, u32)) {
        let bytes = self
            .body
            .get(start as usize..end as usize)
            .unwrap_or_default();
        wire::put_varint(self.out, u64::from(start));
        wire::put_varint(self.out, bytes.len() as u64);
        self.mix(bytes.len() as u64);
        self.mix(xxh3_64(bytes));
        self.content += bytes.len();
    }

    fn mix(&mut self, word: u64) {
        // An odd multiplier (the golden ratio's 64-bit fraction) and a rotation: each step a bijection
        // of the state, so every word counts; `finish` spreads the bits.
        self.hash = (self.hash.rotate_left(29) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    /// A hash of the bytes referred to and of the layout's shape (counts and lengths; not where the
    /// pieces are, so the same spans in another request hash the same), and those bytes' length.
    pub fn finish(self) -> (u64, usize) {
        (xxh3_64(&self.hash.to_le_bytes()), self.content)
    }
}

type Piece = (usize, usize);

struct ScopeRun {
    scope: Vec<Piece>,
    spans: Vec<Piece>,
}

struct ResourceRun {
    resource: Vec<Piece>,
    scopes: Vec<ScopeRun>,
}

/// Appends the spans `layout` places in `body` to `out` as an encoded `TracesData`; `None` (and `out`
/// as it was) when the layout is damaged or points outside `body`.
pub fn encode(body: &[u8], layout: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let runs = read(body, layout)?;
    let pieces_len = |pieces: &[Piece], field: u32| -> usize {
        pieces
            .iter()
            .map(|(_, len)| wire::delimited_len(field, *len))
            .sum()
    };
    let scope_spans_len = |run: &ScopeRun| pieces_len(&run.scope, 1) + pieces_len(&run.spans, 2);
    let resource_spans_len = |run: &ResourceRun| {
        pieces_len(&run.resource, 1)
            + run
                .scopes
                .iter()
                .map(|s| wire::delimited_len(2, scope_spans_len(s)))
                .sum::<usize>()
    };
    let total: usize = runs
        .iter()
        .map(|r| wire::delimited_len(1, resource_spans_len(r)))
        .sum();
    out.reserve(total);
    let put_pieces = |out: &mut Vec<u8>, pieces: &[Piece], field: u32| {
        for &(start, len) in pieces {
            wire::put_delimited(out, field, body.get(start..start + len).unwrap_or_default());
        }
    };
    for run in &runs {
        wire::put_key(out, 1, 2);
        wire::put_varint(out, resource_spans_len(run) as u64);
        put_pieces(out, &run.resource, 1);
        for scope in &run.scopes {
            wire::put_key(out, 2, 2);
            wire::put_varint(out, scope_spans_len(scope) as u64);
            put_pieces(out, &scope.scope, 1);
            put_pieces(out, &scope.spans, 2);
        }
    }
    Some(())
}

/// The runs of `layout`, every piece checked to lie inside `body`.
fn read(body: &[u8], mut layout: &[u8]) -> Option<Vec<ResourceRun>> {
    // Counts are bounded by what the layout's own bytes can hold (at least two bytes a piece), so a
    // damaged count cannot make a large allocation.
    fn count(layout: &mut &[u8]) -> Option<usize> {
        let n = prost::encoding::decode_varint(layout).ok()?;
        (n <= layout.remaining() as u64).then_some(n as usize)
    }
    fn pieces(layout: &mut &[u8], body: &[u8]) -> Option<Vec<Piece>> {
        let n = count(layout)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let start = usize::try_from(prost::encoding::decode_varint(layout).ok()?).ok()?;
            let len = usize::try_from(prost::encoding::decode_varint(layout).ok()?).ok()?;
            (start.checked_add(len)? <= body.len()).then_some(())?;
            out.push((start, len));
        }
        Some(out)
    }
    let runs = count(&mut layout)?;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let resource = pieces(&mut layout, body)?;
        let scope_runs = count(&mut layout)?;
        let mut scopes = Vec::with_capacity(scope_runs);
        for _ in 0..scope_runs {
            let scope = pieces(&mut layout, body)?;
            let spans = pieces(&mut layout, body)?;
            scopes.push(ScopeRun { scope, spans });
        }
        out.push(ResourceRun { resource, scopes });
    }
    layout.is_empty().then_some(out)
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

    type Spans<'a> = &'a [(u32, u32)];
    /// A resource's pieces, then its scope runs: each a scope's pieces and its spans.
    type Run<'a> = (Spans<'a>, &'a [(Spans<'a>, Spans<'a>)]);

    fn layout_of(body: &[u8], runs: &[Run]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = LayoutWriter::new(body, &mut out);
        w.count(runs.len());
        for (resource, scopes) in runs {
            w.count(resource.len());
            resource.iter().for_each(|p| w.piece(*p));
            w.count(scopes.len());
            for (scope, spans) in *scopes {
                w.count(scope.len());
                scope.iter().for_each(|p| w.piece(*p));
                w.count(spans.len());
                spans.iter().for_each(|p| w.piece(*p));
            }
        }
        w.finish();
        out
    }

    #[test]
    fn damaged_layouts_encode_nothing_instead_of_panicking() {
        let body = b"resource scope span-one span-two";
        let layout = layout_of(body, &[(&[(0, 8)], &[(&[(9, 14)], &[(15, 23), (24, 32)])])]);
        let mut whole = Vec::new();
        encode(body, &layout, &mut whole).unwrap();
        assert!(!whole.is_empty());
        for cut in 0..layout.len() {
            let mut out = Vec::new();
            assert!(
                encode(body, &layout[..cut], &mut out).is_none(),
                "cut at {cut}"
            );
            assert!(out.is_empty());
        }
        let mut out = Vec::new();
        assert!(
            encode(&body[..30], &layout, &mut out).is_none(),
            "a span past the body's end"
        );
        let mut longer = layout.clone();
        longer.push(0);
        assert!(
            encode(body, &longer, &mut out).is_none(),
            "bytes after the layout"
        );
    }

    #[test]
    fn the_hash_follows_the_bytes_not_where_they_are() {
        let hash = |body: &[u8], spans: &[(u32, u32)]| {
            let mut out = Vec::new();
            let mut w = LayoutWriter::new(body, &mut out);
            w.count(spans.len());
            spans.iter().for_each(|p| w.piece(*p));
            w.finish()
        };
        let (h, len) = hash(b"..abcdef", &[(2, 5), (5, 8)]);
        assert_eq!(len, 6);
        assert_eq!(
            hash(b"abcdef", &[(0, 3), (3, 6)]).0,
            h,
            "the same spans elsewhere"
        );
        assert_ne!(
            hash(b"abcdef", &[(0, 2), (2, 6)]).0,
            h,
            "the same bytes cut differently"
        );
        assert_ne!(hash(b"abcdeg", &[(0, 3), (3, 6)]).0, h, "another byte");
        assert_ne!(
            hash(b"abcdef", &[(0, 3)]).0,
            hash(b"abcdef", &[(0, 3), (3, 3)]).0
        );
    }
}
