//! `SpanBatch`: the spans of one submission as OTLP protobuf bytes (an `ExportTraceServiceRequest` or a
//! `TracesData`, which share their wire form), validated and indexed in place. Nothing is decoded into
//! structs: a span is its ids, times, kind, status and the position of its bytes, and everything
//! downstream (analytics, tail sampling, the store's trace parts, the export queue) reads those or copies
//! the span's bytes verbatim.

use std::fmt::Write as _;

use bytes::Bytes;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message as _;

use super::hashes::{tag_hash_seeded, tag_seed};
use super::ids::{span_id_from_bytes, trace_id_from_bytes, SpanId, TraceId};
use super::layout::{self, LayoutWriter};
use super::record::{kind_name, records_of, SpanRecord, UNKNOWN_SERVICE};
use super::wire::{self, str_at, Fields, Message, WireError};

type Range = (u32, u32);

fn usize_range((start, end): Range) -> (usize, usize) {
    (start as usize, end as usize)
}

/// A resource: where its bytes are (a message may be given in pieces, which protobuf merges) and its
/// `service.name`.
#[derive(Debug, Clone, Default)]
struct ResourceInfo {
    pieces: Vec<Range>,
    /// Its `service.name`, validated and copied once rather than read on every `SpanRef::service_name`.
    service_name: Option<Box<str>>,
    /// The tag hashes of its attributes, in `SpanBatch::hashes`.
    tags: Range,
}

#[derive(Debug, Clone)]
struct ScopeInfo {
    resource: u32,
    pieces: Vec<Range>,
}

/// What the pipeline reads of a span without decoding it.
#[derive(Debug, Clone)]
struct SpanInfo {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    start_ns: u64,
    end_ns: u64,
    kind: i32,
    status: i32,
    scope: u32,
    bytes: Range,
    /// Where its name is in `SpanBatch::names`.
    name: Range,
    /// The tag hashes of its attributes, in `SpanBatch::hashes`.
    tags: Range,
}

/// The valid spans of one submission. Cloning shares the bytes.
#[derive(Debug, Clone, Default)]
pub struct SpanBatch {
    buf: Bytes,
    resources: Vec<ResourceInfo>,
    scopes: Vec<ScopeInfo>,
    spans: Vec<SpanInfo>,
    /// `tag_hash` of every scalar attribute of the resources and spans, computed while validating.
    hashes: Vec<u32>,
    /// While parsing: the previous span's attributes by position (see `span_attribute`); empty after.
    tag_memo: Vec<TagMemo>,
    /// The spans' names, each validated once and copied here, so that `SpanRef::name` (read by the
    /// store, span metrics and span history per span) is not checked again; a span named as the span
    /// before it shares that span's copy.
    names: String,
    rejected: usize,
    first_error: Option<&'static str>,
}

/// A span attribute already read: where its `KeyValue` and its key are, its key's `tag_seed` and its
/// tag hash (`None` for a value that is not scalar).
#[derive(Debug, Clone, Copy)]
struct TagMemo {
    kv: Range,
    key: Range,
    seed: u64,
    hash: Option<u32>,
}

/// Attributes per span remembered by position for the next span (`SpanBatch::span_attribute`).
const TAG_MEMO_POSITIONS: usize = 128;

/// A scalar attribute value as read from the wire (arrays, maps and bytes are `Other`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeValue<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Other,
}

impl AttributeValue<'_> {
    /// The string form tag queries compare against (`attribute_string` of a decoded attribute), written
    /// into `scratch` when it is not a string already.
    pub fn as_str<'s>(&'s self, scratch: &'s mut String) -> Option<&'s str> {
        scratch.clear();
        match self {
            AttributeValue::Str(s) => return Some(s),
            AttributeValue::Bool(b) => return Some(if *b { "true" } else { "false" }),
            AttributeValue::Int(i) => {
                let _ = write!(scratch, "{i}");
            }
            AttributeValue::Double(d) => {
                let _ = write!(scratch, "{d}");
            }
            AttributeValue::Other => return None,
        }
        Some(scratch.as_str())
    }
}

impl SpanBatch {
    /// Validates and indexes an `ExportTraceServiceRequest` (or `TracesData`). A request prost would not
    /// decode is an error; a span with bad ids is left out and counted in `rejected`.
    pub fn parse(buf: Bytes) -> Result<Self, WireError> {
        if u32::try_from(buf.len()).is_err() {
            return Err(WireError("request larger than 4 GiB"));
        }
        let mut batch = SpanBatch {
            buf,
            ..Default::default()
        };
        let buf = batch.buf.clone();
        let mut fields = Fields::new(&buf, (0, buf.len()));
        while let Some((number, value)) = fields.next()? {
            if number == 1 {
                batch.resource_spans(&buf, value.range()?)?;
            }
        }
        batch.tag_memo = Vec::new();
        Ok(batch)
    }

    /// The valid spans of `records` (as the other receivers build them), in order; runs of records with
    /// equal resources share one `ResourceSpans`, and runs with equal scopes within it one `ScopeSpans`.
    pub fn from_records(records: &[SpanRecord]) -> Self {
        let mut data = TracesData::default();
        for r in records {
            let rs = match data.resource_spans.last_mut() {
                Some(rs) if rs.resource.as_ref() == Some(&r.resource) => rs,
                _ => {
                    data.resource_spans.push(ResourceSpans {
                        resource: Some(r.resource.clone()),
                        ..Default::default()
                    });
                    let Some(rs) = data.resource_spans.last_mut() else {
                        continue;
                    };
                    rs
                }
            };
            match rs.scope_spans.last_mut() {
                Some(ss) if ss.scope.as_ref() == Some(&r.scope) => ss.spans.push(r.span.clone()),
                _ => rs.scope_spans.push(ScopeSpans {
                    scope: Some(r.scope.clone()),
                    spans: vec![r.span.clone()],
                    schema_url: String::new(),
                }),
            }
        }
        Self::parse(data.encode_to_vec().into()).unwrap_or_default()
    }

    fn resource_spans(&mut self, buf: &[u8], range: (usize, usize)) -> Result<(), WireError> {
        let mut resource = ResourceInfo::default();
        let first_hash = self.hashes.len() as u32;
        let mut service_decided = false;
        let mut scope_spans = Vec::new();
        let mut fields = Fields::new(buf, range);
        while let Some((number, value)) = fields.next()? {
            match number {
                1 => {
                    let piece = value.range()?;
                    resource.pieces.push(narrow(piece));
                    // Resource: attributes (1), dropped count (2), entity refs (3).
                    let mut f = Fields::new(buf, piece);
                    while let Some((n, v)) = f.next()? {
                        match n {
                            1 => {
                                let (key, value) = read_key_value(buf, v.range()?, 3)?;
                                self.hash_tag(buf, key, value);
                                // The first `service.name` decides, as `SpanRecord::service_name`.
                                if !service_decided
                                    && buf.get(key.0..key.1) == Some(b"service.name".as_slice())
                                {
                                    service_decided = true;
                                    if let Some(ValueRange::Str(r)) = value {
                                        resource.service_name =
                                            (r.1 > r.0).then(|| Box::from(str_at(buf, r)));
                                    }
                                }
                            }
                            2 => {
                                v.varint()?;
                            }
                            3 => wire::validate(buf, v.range()?, Message::EntityRef, 3)?,
                            _ => {}
                        }
                    }
                }
                2 => scope_spans.push(value.range()?),
                3 => wire::check_utf8(buf, value.range()?)?,
                _ => {}
            }
        }
        resource.tags = (first_hash, self.hashes.len() as u32);
        let index = self.resources.len() as u32;
        self.resources.push(resource);
        for range in scope_spans {
            self.scope_spans(buf, range, index)?;
        }
        Ok(())
    }

    /// Adds `tag_hash(key, value)` of a scalar attribute to `hashes`.
    fn hash_tag(&mut self, buf: &[u8], key: (usize, usize), value: Option<ValueRange>) {
        let key = buf.get(key.0..key.1).unwrap_or_default();
        if let Some(hash) = value_hash(buf, tag_seed(key), value) {
            self.hashes.push(hash);
        }
    }

    /// Validates a span's name and returns where it is in `names`: where the previous span's is when
    /// the two are the same bytes, else where it is copied to.
    fn span_name(&mut self, buf: &[u8], (start, end): (usize, usize)) -> Result<Range, WireError> {
        let bytes = buf.get(start..end).ok_or(WireError("message truncated"))?;
        if let Some(last) = self.spans.last().map(|s| s.name) {
            if self.names.as_bytes().get(last.0 as usize..last.1 as usize) == Some(bytes) {
                return Ok(last);
            }
        }
        let name = wire::utf8(buf, (start, end))?;
        let at = self.names.len();
        self.names.push_str(name);
        Ok(narrow((at, self.names.len())))
    }

    /// Validates a span's attribute (the `KeyValue` at `kv`, the `position`th of its span) and adds its
    /// tag hash to `hashes`. The spans of a request mostly repeat their predecessor's attributes in the
    /// same order (a sidecar's server and client spans share 13 of 15), so each position remembers the
    /// previous span's attribute there: the same bytes were validated and hashed already (reading
    /// depends on nothing but the bytes) and give the same hash, and the same key gives the same seed.
    fn span_attribute(
        &mut self,
        buf: &[u8],
        kv: (usize, usize),
        position: usize,
    ) -> Result<(), WireError> {
        let bytes = buf.get(kv.0..kv.1).unwrap_or_default();
        let memo = self.tag_memo.get(position).copied();
        if let Some(m) = memo {
            if buf.get(m.kv.0 as usize..m.kv.1 as usize) == Some(bytes) {
                self.hashes.extend(m.hash);
                return Ok(());
            }
        }
        let (key, value) = read_key_value(buf, kv, 4)?;
        let key_bytes = buf.get(key.0..key.1).unwrap_or_default();
        let seed = match memo {
            Some(m) if buf.get(m.key.0 as usize..m.key.1 as usize) == Some(key_bytes) => m.seed,
            _ => tag_seed(key_bytes),
        };
        let hash = value_hash(buf, seed, value);
        self.hashes.extend(hash);
        let memo = TagMemo {
            kv: narrow(kv),
            key: narrow(key),
            seed,
            hash,
        };
        match self.tag_memo.get_mut(position) {
            Some(m) => *m = memo,
            None if position < TAG_MEMO_POSITIONS => self.tag_memo.push(memo),
            None => {}
        }
        Ok(())
    }

    fn scope_spans(
        &mut self,
        buf: &[u8],
        range: (usize, usize),
        resource: u32,
    ) -> Result<(), WireError> {
        let mut scope = ScopeInfo {
            resource,
            pieces: Vec::new(),
        };
        let mut spans = Vec::new();
        let mut fields = Fields::new(buf, range);
        while let Some((number, value)) = fields.next()? {
            match number {
                1 => {
                    let piece = value.range()?;
                    wire::validate(buf, piece, Message::Scope, 3)?;
                    scope.pieces.push(narrow(piece));
                }
                2 => spans.push(value.range()?),
                3 => wire::check_utf8(buf, value.range()?)?,
                _ => {}
            }
        }
        let index = self.scopes.len() as u32;
        self.scopes.push(scope);
        for range in spans {
            match self.read_span(buf, range, index)? {
                Ok(span) => self.spans.push(span),
                Err(why) => {
                    self.rejected += 1;
                    self.first_error.get_or_insert(why);
                }
            }
        }
        Ok(())
    }

    /// Valid spans.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Spans left out for bad ids, and why the first one was.
    pub fn rejected(&self) -> (usize, Option<&'static str>) {
        (self.rejected, self.first_error)
    }

    pub fn spans(&self) -> impl ExactSizeIterator<Item = SpanRef<'_>> + '_ {
        self.spans
            .iter()
            .map(move |info| SpanRef { batch: self, info })
    }

    pub fn span(&self, index: usize) -> Option<SpanRef<'_>> {
        self.spans
            .get(index)
            .map(|info| SpanRef { batch: self, info })
    }

    /// Appends the layout of the spans at `indexes` (in that order) to `out` (see `layout`): runs of
    /// spans sharing a resource share one `ResourceSpans`, runs sharing a scope within it one
    /// `ScopeSpans`. Returns the hash of what it refers to and those bytes' length
    /// (`LayoutWriter::finish`).
    pub fn layout_into(&self, indexes: &[u32], out: &mut Vec<u8>) -> (u64, usize) {
        let span = |i: &u32| self.spans.get(*i as usize);
        let scope_of = |i: &u32| span(i).and_then(|s| self.scopes.get(s.scope as usize));
        let resource_of =
            |i: &u32| scope_of(i).and_then(|s| self.resources.get(s.resource as usize));
        let same_scope = |a: &u32, b: &u32| span(a).map(|s| s.scope) == span(b).map(|s| s.scope);
        let same_resource =
            |a: &u32, b: &u32| scope_of(a).map(|s| s.resource) == scope_of(b).map(|s| s.resource);
        // An index out of the batch makes a run of no pieces and no spans: the layout stays whole.
        let mut w = LayoutWriter::new(&self.buf, out);
        w.count(indexes.chunk_by(same_resource).count());
        for resource_run in indexes.chunk_by(same_resource) {
            let pieces = resource_run
                .first()
                .and_then(resource_of)
                .map_or(&[][..], |r| &r.pieces);
            w.count(pieces.len());
            pieces.iter().for_each(|p| w.piece(*p));
            w.count(resource_run.chunk_by(same_scope).count());
            for run in resource_run.chunk_by(same_scope) {
                let pieces = run
                    .first()
                    .and_then(scope_of)
                    .map_or(&[][..], |s| &s.pieces);
                w.count(pieces.len());
                pieces.iter().for_each(|p| w.piece(*p));
                w.count(run.iter().filter_map(span).count());
                for s in run.iter().filter_map(span) {
                    w.piece(s.bytes);
                }
            }
        }
        w.finish()
    }

    /// Appends the spans at `indexes` (in that order) to `out` as a `TracesData` (`layout::encode` of
    /// their layout): every span, resource and scope is copied byte for byte.
    pub fn encode_into(&self, indexes: &[u32], out: &mut Vec<u8>) {
        let mut layout = Vec::new();
        self.layout_into(indexes, &mut layout);
        let _ = layout::encode(&self.buf, &layout, out);
    }

    /// The bytes the batch was read from: what its layouts point into.
    pub fn bytes(&self) -> &Bytes {
        &self.buf
    }

    /// The spans at `indexes` as an encoded `TracesData` (see `encode_into`).
    pub fn encode(&self, indexes: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(indexes, &mut out);
        out
    }

    /// The spans at `indexes` as a batch of their own.
    pub fn select(&self, indexes: &[u32]) -> SpanBatch {
        SpanBatch::parse(self.encode(indexes).into()).unwrap_or_default()
    }

    /// Every valid span as an encoded `TracesData` (or `ExportTraceServiceRequest`): the request's own
    /// bytes when nothing was left out.
    pub fn encode_all(&self) -> Bytes {
        if self.rejected == 0 {
            return self.buf.clone();
        }
        let all: Vec<u32> = (0..self.spans.len() as u32).collect();
        self.encode(&all).into()
    }

    /// The spans decoded into records (tests and the few paths that need the structs).
    pub fn to_records(&self) -> Vec<SpanRecord> {
        let all: Vec<u32> = (0..self.spans.len() as u32).collect();
        TracesData::decode(self.encode(&all).as_slice())
            .map(records_of)
            .unwrap_or_default()
    }
}

fn narrow((start, end): (usize, usize)) -> Range {
    (start as u32, end as u32)
}

impl SpanBatch {
    /// Reads a span's index entry (hashing its tags into `hashes`); `Ok(Err(why))` when its ids make it
    /// unusable.
    fn read_span(
        &mut self,
        buf: &[u8],
        range: (usize, usize),
        scope: u32,
    ) -> Result<Result<SpanInfo, &'static str>, WireError> {
        let first_hash = self.hashes.len();
        let mut trace = None;
        let mut span = None;
        let mut parent: Option<(usize, usize)> = None;
        let mut info = SpanInfo {
            trace_id: [0; 16],
            span_id: [0; 8],
            parent: None,
            start_ns: 0,
            end_ns: 0,
            kind: 0,
            status: 0,
            scope,
            bytes: narrow(range),
            name: (0, 0),
            tags: (0, 0),
        };
        let mut attributes = 0;
        let mut fields = Fields::new(buf, range);
        while let Some((number, value)) = fields.next()? {
            match number {
                1 => trace = Some(value.range()?),
                2 => span = Some(value.range()?),
                4 => parent = Some(value.range()?),
                5 => info.name = self.span_name(buf, value.range()?)?,
                6 => info.kind = value.varint()? as i32,
                7 => info.start_ns = value.fixed64()?,
                8 => info.end_ns = value.fixed64()?,
                15 => {
                    let status = value.range()?;
                    wire::validate(buf, status, Message::Status, 4)?;
                    let mut f = Fields::new(buf, status);
                    while let Some((n, v)) = f.next()? {
                        if n == 3 {
                            info.status = v.varint()? as i32;
                        }
                    }
                }
                3 => wire::check_utf8(buf, value.range()?)?,
                9 => {
                    self.span_attribute(buf, value.range()?, attributes)?;
                    attributes += 1;
                }
                11 => wire::validate(buf, value.range()?, Message::Event, 4)?,
                13 => wire::validate(buf, value.range()?, Message::Link, 4)?,
                10 | 12 | 14 => {
                    value.varint()?;
                }
                16 => {
                    value.fixed32()?;
                }
                _ => {}
            }
        }
        let bytes =
            |r: Option<(usize, usize)>| r.and_then(|(a, b)| buf.get(a..b)).unwrap_or_default();
        let Some(trace_id) = trace_id_from_bytes(bytes(trace)) else {
            self.hashes.truncate(first_hash);
            return Ok(Err("invalid trace id (empty, wrong length or all zero)"));
        };
        let Some(span_id) = span_id_from_bytes(bytes(span)) else {
            self.hashes.truncate(first_hash);
            return Ok(Err("invalid span id (empty, wrong length or all zero)"));
        };
        let parent_bytes = bytes(parent);
        if !parent_bytes.is_empty() {
            match span_id_from_bytes(parent_bytes) {
                Some(p) => info.parent = Some(p),
                // An all-zero parent means "no parent" for some senders.
                None if parent_bytes.iter().all(|b| *b == 0) => {}
                None => {
                    self.hashes.truncate(first_hash);
                    return Ok(Err("invalid parent span id (wrong length)"));
                }
            }
        }
        info.trace_id = trace_id;
        info.span_id = span_id;
        info.tags = (first_hash as u32, self.hashes.len() as u32);
        Ok(Ok(info))
    }
}

/// The tag hash of a scalar attribute value under its key's `tag_seed` (its string form as tag queries
/// compare it), `None` for a value that is not scalar.
fn value_hash(buf: &[u8], seed: u64, value: Option<ValueRange>) -> Option<u32> {
    Some(match value? {
        ValueRange::Str((a, b)) => tag_hash_seeded(seed, buf.get(a..b).unwrap_or_default()),
        ValueRange::Bool(b) => tag_hash_seeded(seed, if b { b"true" } else { b"false" }),
        ValueRange::Int(i) => tag_hash_seeded(seed, itoa::Buffer::new().format(i).as_bytes()),
        ValueRange::Double(d) => tag_hash_seeded(seed, d.to_string().as_bytes()),
        ValueRange::Other => return None,
    })
}

/// Where an attribute's value is: a string's range, or a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ValueRange {
    Str((usize, usize)),
    Bool(bool),
    Int(i64),
    Double(f64),
    Other,
}

/// Reads (and validates) one `KeyValue` at nesting `depth`: its key's range and its value. An attribute
/// given in pieces follows protobuf's merge: the last key and the last value set win.
fn read_key_value(
    buf: &[u8],
    range: (usize, usize),
    depth: u32,
) -> Result<((usize, usize), Option<ValueRange>), WireError> {
    if depth > wire::MAX_DEPTH {
        return Err(WireError("messages nested too deeply"));
    }
    if let Some((key, val)) = scalar_key_value(buf, range) {
        return Ok((key, Some(val)));
    }
    read_key_value_fields(buf, range, depth)
}

/// `read_key_value` field by field: any shape protobuf allows.
fn read_key_value_fields(
    buf: &[u8],
    range: (usize, usize),
    depth: u32,
) -> Result<((usize, usize), Option<ValueRange>), WireError> {
    let mut key = (0, 0);
    let mut val = None;
    let mut kv = Fields::new(buf, range);
    while let Some((n, v)) = kv.next()? {
        match n {
            1 => {
                key = v.range()?;
                wire::check_utf8(buf, key)?;
            }
            2 => {
                let mut any = Fields::new(buf, v.range()?);
                while let Some((n, v)) = any.next()? {
                    val = Some(match n {
                        1 => {
                            let r = v.range()?;
                            wire::check_utf8(buf, r)?;
                            ValueRange::Str(r)
                        }
                        2 => ValueRange::Bool(v.varint()? != 0),
                        3 => ValueRange::Int(v.varint()? as i64),
                        4 => ValueRange::Double(f64::from_bits(v.fixed64()?)),
                        5 => {
                            wire::validate(buf, v.range()?, Message::ArrayValue, depth + 2)?;
                            ValueRange::Other
                        }
                        6 => {
                            wire::validate(buf, v.range()?, Message::KeyValueList, depth + 2)?;
                            ValueRange::Other
                        }
                        7 => {
                            v.range()?;
                            ValueRange::Other
                        }
                        8 => {
                            v.varint()?;
                            ValueRange::Other
                        }
                        _ => continue,
                    });
                }
            }
            3 => {
                v.varint()?;
            }
            _ => {}
        }
    }
    Ok((key, val))
}

/// `read_key_value`'s fast path for the shape every OTLP SDK writes: the key (field 1), then the value
/// (field 2) holding one scalar (a string, bool, int or double), each length below 128. `None` for
/// anything else (and for bytes that are not UTF-8), which the general reader then reads or refuses:
/// what this accepts, it reads exactly as the general reader would. Most attributes take this path, and
/// it costs a few comparisons instead of a field loop per message.
#[inline(always)]
fn scalar_key_value(
    buf: &[u8],
    (start, end): (usize, usize),
) -> Option<((usize, usize), ValueRange)> {
    let [0x0a, key_len, rest @ ..] = buf.get(start..end)? else {
        return None;
    };
    let key_len = usize::from(*key_len);
    if key_len >= 0x80 {
        return None;
    }
    let (key, rest) = rest.split_at_checked(key_len)?;
    let [0x12, any_len, any @ ..] = rest else {
        return None;
    };
    if *any_len >= 0x80 || any.len() != usize::from(*any_len) {
        return None;
    }
    let any_start = end - any.len();
    let value = match any {
        [0x0a, len, s @ ..] if *len < 0x80 && s.len() == usize::from(*len) => {
            if !s.is_ascii() && std::str::from_utf8(s).is_err() {
                return None;
            }
            ValueRange::Str((any_start + 2, end))
        }
        [0x10, v] if *v < 0x80 => ValueRange::Bool(*v != 0),
        [0x18, v @ ..] => ValueRange::Int(short_varint(v)? as i64),
        [0x21, d @ ..] => {
            ValueRange::Double(f64::from_bits(u64::from_le_bytes(d.try_into().ok()?)))
        }
        _ => return None,
    };
    if !key.is_ascii() && std::str::from_utf8(key).is_err() {
        return None;
    }
    Some(((start + 2, start + 2 + key_len), value))
}

/// `bytes` as exactly one varint of at most 9 bytes (longer ones take the general path, which checks
/// the tenth byte's range).
#[inline(always)]
fn short_varint(bytes: &[u8]) -> Option<u64> {
    let (last, init) = bytes.split_last()?;
    if *last >= 0x80 || init.len() >= 9 || init.iter().any(|b| *b < 0x80) {
        return None;
    }
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 7) | u64::from(b & 0x7f)),
    )
}

/// Calls `f(key range, value)` for every `KeyValue` in field `field` of the message at `range`.
fn for_each_attribute_range(
    buf: &[u8],
    range: (usize, usize),
    field: u32,
    mut f: impl FnMut((usize, usize), Option<ValueRange>),
) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, range);
    while let Some((number, value)) = fields.next()? {
        if number == field {
            let (key, val) = read_key_value(buf, value.range()?, 0)?;
            f(key, val);
        }
    }
    Ok(())
}

/// One valid span of a batch.
#[derive(Clone, Copy)]
pub struct SpanRef<'a> {
    batch: &'a SpanBatch,
    info: &'a SpanInfo,
}

impl<'a> SpanRef<'a> {
    pub fn trace_id(&self) -> TraceId {
        self.info.trace_id
    }

    pub fn span_id(&self) -> SpanId {
        self.info.span_id
    }

    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.info.parent
    }

    pub fn name(&self) -> &'a str {
        let (start, end) = usize_range(self.info.name);
        self.batch.names.get(start..end).unwrap_or_default()
    }

    pub fn kind(&self) -> i32 {
        self.info.kind
    }

    /// Jaeger's lower-case span kind name, empty for unspecified.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.info.kind)
    }

    /// The OTLP status code (0 unset, 1 ok, 2 error).
    pub fn status_code(&self) -> i32 {
        self.info.status
    }

    pub fn is_error(&self) -> bool {
        self.info.status == 2
    }

    pub fn start_ns(&self) -> u64 {
        self.info.start_ns
    }

    pub fn end_ns(&self) -> u64 {
        self.info.end_ns
    }

    pub fn start_us(&self) -> u64 {
        self.info.start_ns / 1_000
    }

    /// Duration in microseconds (zero when the end precedes the start).
    pub fn duration_us(&self) -> u64 {
        self.info.end_ns.saturating_sub(self.info.start_ns) / 1_000
    }

    fn scope(&self) -> Option<&'a ScopeInfo> {
        self.batch.scopes.get(self.info.scope as usize)
    }

    fn resource(&self) -> Option<&'a ResourceInfo> {
        self.scope()
            .and_then(|s| self.batch.resources.get(s.resource as usize))
    }

    /// The index of the span's resource in its batch: spans with the same index share the resource.
    pub fn resource_index(&self) -> u32 {
        self.scope().map_or(0, |s| s.resource)
    }

    pub fn service_name(&self) -> &'a str {
        match self.resource().and_then(|r| r.service_name.as_deref()) {
            Some(name) => name,
            None => UNKNOWN_SERVICE,
        }
    }

    /// Calls `f` with every span attribute.
    pub fn for_each_attribute(&self, f: impl FnMut(&'a str, AttributeValue<'a>)) {
        let buf: &'a [u8] = &self.batch.buf;
        attributes(buf, &[self.info.bytes], 9, f);
    }

    /// Calls `f` with every attribute of the span's resource.
    pub fn for_each_resource_attribute(&self, f: impl FnMut(&'a str, AttributeValue<'a>)) {
        let buf: &'a [u8] = &self.batch.buf;
        if let Some(resource) = self.resource() {
            attributes(buf, &resource.pieces, 1, f);
        }
    }

    /// The string form of the first span attribute `key` (then the resource's), as tag queries see it.
    pub fn attribute_string(&self, key: &str) -> Option<String> {
        let mut out = None;
        let mut scratch = String::new();
        let mut look = |k: &str, v: AttributeValue<'_>| {
            if out.is_none() && k == key {
                out = v.as_str(&mut scratch).map(str::to_string);
            }
        };
        self.for_each_attribute(&mut look);
        self.for_each_resource_attribute(&mut look);
        out
    }

    /// Calls `f` with every searchable tag: span attributes, resource attributes, then the derived tags
    /// (`span.kind`, `error`, `otel.status_code`), exactly as `SpanRecord::searchable_tags` lists them.
    pub fn for_each_tag(&self, mut f: impl FnMut(&str, &str)) {
        let mut scratch = String::new();
        let mut each = |k: &str, v: AttributeValue<'_>| {
            if let Some(v) = v.as_str(&mut scratch) {
                f(k, v);
            }
        };
        self.for_each_attribute(&mut each);
        self.for_each_resource_attribute(&mut each);
        let kind = self.kind_name();
        if !kind.is_empty() {
            f("span.kind", kind);
        }
        match self.info.status {
            2 => {
                f("error", "true");
                f("otel.status_code", "ERROR");
            }
            1 => f("otel.status_code", "OK"),
            _ => {}
        }
    }

    /// `tag_hash` of each scalar attribute of the span (in order; duplicates kept).
    pub fn attribute_hashes(&self) -> &'a [u32] {
        let (a, b) = self.info.tags;
        self.batch
            .hashes
            .get(a as usize..b as usize)
            .unwrap_or_default()
    }

    /// `tag_hash` of each scalar attribute of the span's resource.
    pub fn resource_attribute_hashes(&self) -> &'a [u32] {
        let (a, b) = self.resource().map_or((0, 0), |r| r.tags);
        self.batch
            .hashes
            .get(a as usize..b as usize)
            .unwrap_or_default()
    }

    /// See `SpanRecord::discriminator` (the same bytes, the same result).
    pub fn discriminator(&self) -> [u8; 4] {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(self.service_name().as_bytes());
        hasher.update(&self.info.kind.to_be_bytes());
        hasher.update(&self.info.start_ns.to_be_bytes());
        hasher.update(self.name().as_bytes());
        hasher.finalize().to_be_bytes()
    }
}

fn attributes<'a>(
    buf: &'a [u8],
    pieces: &[Range],
    field: u32,
    mut f: impl FnMut(&'a str, AttributeValue<'a>),
) {
    for piece in pieces {
        let _ = for_each_attribute_range(buf, usize_range(*piece), field, |key, value| {
            let value = match value {
                Some(ValueRange::Str(r)) => AttributeValue::Str(str_at(buf, r)),
                Some(ValueRange::Bool(b)) => AttributeValue::Bool(b),
                Some(ValueRange::Int(i)) => AttributeValue::Int(i),
                Some(ValueRange::Double(d)) => AttributeValue::Double(d),
                Some(ValueRange::Other) | None => AttributeValue::Other,
            };
            f(str_at(buf, key), value);
        });
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
    use crate::model::string_attribute;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// Every `KeyValue` the fast path reads, it reads as the field-by-field reader does; the SDKs'
    /// shapes take it, the rest (long strings, a missing value, a value given in pieces, bad UTF-8,
    /// a ten-byte varint) fall back.
    #[test]
    fn the_scalar_fast_path_reads_what_the_field_reader_reads() {
        use any_value::Value as V;
        let long = "x".repeat(200);
        let cases: Vec<(Vec<u8>, bool)> = vec![
            (kv("k", V::StringValue("v".into())).encode_to_vec(), true),
            (
                kv("http.route", V::StringValue("/é/ü".into())).encode_to_vec(),
                true,
            ),
            (kv("k", V::StringValue(String::new())).encode_to_vec(), true),
            // prost leaves an empty key out: the value comes first.
            (kv("", V::StringValue("v".into())).encode_to_vec(), false),
            (kv("ok", V::BoolValue(true)).encode_to_vec(), true),
            (kv("port", V::IntValue(8080)).encode_to_vec(), true),
            (kv("small", V::IntValue(7)).encode_to_vec(), true),
            (kv("neg", V::IntValue(-3)).encode_to_vec(), false),
            (kv("max", V::IntValue(i64::MAX)).encode_to_vec(), true),
            (kv("d", V::DoubleValue(0.25)).encode_to_vec(), true),
            (
                kv("long", V::StringValue(long.clone())).encode_to_vec(),
                false,
            ),
            (kv(&long, V::StringValue("v".into())).encode_to_vec(), false),
            (kv("b", V::BytesValue(vec![1, 2])).encode_to_vec(), false),
            (
                KeyValue {
                    key: "no value".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
                false,
            ),
            // The value given twice: protobuf merges, the last one wins.
            (
                [
                    kv("k", V::StringValue("a".into())).encode_to_vec(),
                    vec![0x12, 2, 0x18, 5],
                ]
                .concat(),
                false,
            ),
            // An int's varint padded to ten bytes.
            (
                [
                    vec![0x0a, 1, b'k', 0x12, 11, 0x18],
                    vec![0x81; 9],
                    vec![0x00],
                ]
                .concat(),
                false,
            ),
            // A string value that is not UTF-8 is refused by the field reader.
            (vec![0x0a, 1, b'k', 0x12, 4, 0x0a, 2, 0xc3, 0x28], false),
        ];
        for (i, (bytes, fast)) in cases.iter().enumerate() {
            let range = (0, bytes.len());
            let general = read_key_value_fields(bytes, range, 4);
            assert_eq!(scalar_key_value(bytes, range).is_some(), *fast, "case {i}");
            if let Some((key, value)) = scalar_key_value(bytes, range) {
                assert_eq!(Ok((key, Some(value))), general, "case {i}");
            }
            assert_eq!(read_key_value(bytes, range, 4), general, "case {i}");
        }
    }

    /// A request of one resource and scope holding `spans`.
    fn request_of(spans: Vec<Span>) -> Vec<u8> {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource(Some("svc"))),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    /// A span's attributes read by position against the previous span's (`span_attribute`) hash as
    /// each read alone: whether all of an attribute's bytes repeat, its key only, or nothing, whatever
    /// the value's type; bytes that differ are validated afresh.
    #[test]
    fn attributes_repeated_by_position_hash_as_read_alone() {
        const NAMES: [&str; 6] = ["op", "op", "other", "op", "", "é"];
        use any_value::Value as V;
        let s = |v: &str| V::StringValue(v.into());
        let lists = [
            vec![
                kv("k", s("v")),
                kv("n", V::IntValue(1)),
                kv("b", V::BytesValue(vec![1])),
            ],
            vec![
                kv("k", s("v")),
                kv("n", V::IntValue(2)),
                kv("b", V::BytesValue(vec![1])),
                kv("x", V::BoolValue(true)),
            ],
            vec![
                kv("n", V::IntValue(2)),
                kv("k", s("v")),
                kv("d", V::DoubleValue(0.5)),
            ],
            vec![
                kv("n", V::IntValue(2)),
                kv("k", s("w")),
                kv("d", V::DoubleValue(0.5)),
                kv("x", V::BoolValue(false)),
            ],
            vec![],
            vec![kv("k", s("v"))],
        ];
        let spans = lists
            .iter()
            .enumerate()
            .map(|(i, attributes)| Span {
                trace_id: vec![1; 16],
                span_id: vec![i as u8 + 1; 8],
                name: NAMES[i].into(),
                attributes: attributes.clone(),
                ..Default::default()
            })
            .collect();
        let batch = SpanBatch::parse(request_of(spans).into()).unwrap();
        assert_eq!(batch.len(), lists.len());
        // Names are kept once per run of equal ones (`span_name`).
        let names: Vec<&str> = batch.spans().map(|s| s.name()).collect();
        assert_eq!(names, NAMES);
        for (span, attributes) in batch.spans().zip(&lists) {
            let expected: Vec<u32> = attributes
                .iter()
                .filter_map(|a| {
                    let value = match a.value.as_ref()?.value.as_ref()? {
                        V::StringValue(v) => v.clone(),
                        V::IntValue(i) => i.to_string(),
                        V::BoolValue(b) => b.to_string(),
                        V::DoubleValue(d) => d.to_string(),
                        _ => return None,
                    };
                    Some(crate::model::hashes::tag_hash(&a.key, &value))
                })
                .collect();
            assert_eq!(span.attribute_hashes(), expected, "{attributes:?}");
        }

        // The second span's first attribute differs from the first span's only by a value that is not
        // UTF-8: the request is refused, as it is without a first span.
        let marked = |marker: &str| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![kv("k", s(marker))],
            ..Default::default()
        };
        let first = Span {
            span_id: vec![1; 8],
            ..marked("vv")
        };
        let mut bytes = request_of(vec![first.clone(), marked("\u{7f}\u{7e}")]);
        let at = bytes.windows(2).rposition(|w| w == [0x7f, 0x7e]).unwrap();
        bytes.splice(at..at + 2, [0xc3, 0x28]);
        assert!(SpanBatch::parse(bytes.into()).is_err());
        assert!(SpanBatch::parse(request_of(vec![first.clone(), marked("vw")]).into()).is_ok());
        // So does a name that is not UTF-8 after a span whose name is.
        let named = |name: &str| Span {
            name: name.into(),
            ..marked("vv")
        };
        let mut bytes = request_of(vec![first, named("\u{7f}\u{7e}")]);
        let at = bytes.windows(2).rposition(|w| w == [0x7f, 0x7e]).unwrap();
        bytes.splice(at..at + 2, [0xc3, 0x28]);
        assert!(SpanBatch::parse(bytes.into()).is_err());
    }

    fn span(trace: u8, id: u8, parent: Vec<u8>, kind: i32, code: i32) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent,
            trace_state: "a=b".into(),
            name: format!("GET /{id}"),
            kind,
            start_time_unix_nano: 1_000_000 * u64::from(id),
            end_time_unix_nano: 1_000_000 * u64::from(id) + 2_500_000,
            attributes: vec![
                kv("http.route", any_value::Value::StringValue("/x".into())),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(-503),
                ),
                kv("ratio", any_value::Value::DoubleValue(0.25)),
                kv("big", any_value::Value::DoubleValue(1e21)),
                kv("cached", any_value::Value::BoolValue(true)),
                kv("raw", any_value::Value::BytesValue(vec![1, 2])),
                kv(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::IntValue(1)),
                        }],
                    }),
                ),
                kv(
                    "map",
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("k", any_value::Value::StringValue("v".into()))],
                    }),
                ),
                KeyValue {
                    key: "empty".into(),
                    ..Default::default()
                },
            ],
            events: vec![span::Event {
                time_unix_nano: 5,
                name: "retry".into(),
                attributes: vec![kv("n", any_value::Value::IntValue(2))],
                dropped_attributes_count: 1,
            }],
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                trace_state: "c=d".into(),
                attributes: vec![kv("l", any_value::Value::BoolValue(false))],
                dropped_attributes_count: 0,
                flags: 0x301,
            }],
            status: (code != 0).then(|| Status {
                code,
                message: "why".into(),
            }),
            flags: 0x301,
            dropped_attributes_count: 3,
            ..Default::default()
        }
    }

    fn resource(service: Option<&str>) -> Resource {
        Resource {
            attributes: service
                .map(|s| {
                    vec![
                        string_attribute("service.name", s),
                        string_attribute("k8s.ns", "shop"),
                    ]
                })
                .unwrap_or_default(),
            dropped_attributes_count: 1,
            ..Default::default()
        }
    }

    /// A request with what senders really send, and the odd things they may: two resources (one without
    /// a service name), two scopes, every attribute type, events, links, statuses, an all-zero parent,
    /// and spans with bad ids.
    fn request() -> ExportTraceServiceRequest {
        let scope = |name: &str| InstrumentationScope {
            name: name.into(),
            version: "1.0".into(),
            attributes: vec![string_attribute("s", "t")],
            dropped_attributes_count: 0,
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(resource(Some("cart"))),
                    scope_spans: vec![
                        ScopeSpans {
                            scope: Some(scope("envoy")),
                            spans: vec![
                                span(1, 1, vec![], 2, status::StatusCode::Error as i32),
                                span(1, 2, vec![1; 8], 3, 0),
                                span(2, 3, vec![0; 8], 2, status::StatusCode::Ok as i32),
                                span(0, 4, vec![], 2, 0),
                            ],
                            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                        },
                        ScopeSpans {
                            scope: Some(scope("app")),
                            spans: vec![span(2, 5, vec![3; 8], 1, 0), span(3, 6, vec![1; 3], 2, 0)],
                            schema_url: String::new(),
                        },
                    ],
                    schema_url: String::new(),
                },
                ResourceSpans {
                    resource: Some(resource(None)),
                    scope_spans: vec![ScopeSpans {
                        scope: None,
                        spans: vec![span(3, 7, vec![0; 3], 0, 0)],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                },
            ],
        }
    }

    /// What the prost path made of a request: the records `SpanRecord::new` accepts.
    fn prost_records(req: &ExportTraceServiceRequest) -> (Vec<SpanRecord>, usize) {
        let mut out = Vec::new();
        let mut rejected = 0;
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    match SpanRecord::new(
                        rs.resource.clone().unwrap_or_default(),
                        ss.scope.clone().unwrap_or_default(),
                        s.clone(),
                    ) {
                        Ok(r) => out.push(r),
                        Err(_) => rejected += 1,
                    }
                }
            }
        }
        (out, rejected)
    }

    #[test]
    fn reads_what_prost_reads_without_decoding() {
        let req = request();
        let batch = SpanBatch::parse(req.encode_to_vec().into()).unwrap();
        let (records, rejected) = prost_records(&req);
        assert_eq!(
            batch.rejected().0,
            rejected,
            "bad trace id, short non-zero parent"
        );
        assert_eq!(
            batch.rejected().1,
            Some("invalid trace id (empty, wrong length or all zero)")
        );
        assert_eq!(batch.to_records(), records);
        assert_eq!(batch.len(), records.len());
        for (span, rec) in batch.spans().zip(&records) {
            let why = rec.span.name.as_str();
            assert_eq!(span.trace_id(), rec.trace_id, "{why}");
            assert_eq!(span.span_id(), rec.span_id, "{why}");
            assert_eq!(span.parent_span_id(), rec.parent_span_id(), "{why}");
            assert_eq!(span.service_name(), rec.service_name(), "{why}");
            assert_eq!(span.name(), rec.span.name, "{why}");
            assert_eq!(span.kind_name(), rec.kind_name(), "{why}");
            assert_eq!(span.is_error(), rec.is_error(), "{why}");
            assert_eq!(span.start_us(), rec.start_us(), "{why}");
            assert_eq!(span.duration_us(), rec.duration_us(), "{why}");
            assert_eq!(span.discriminator(), rec.discriminator(), "{why}");
            let mut tags = Vec::new();
            span.for_each_tag(|k, v| tags.push((k.to_string(), v.to_string())));
            assert_eq!(
                tags,
                rec.searchable_tags(),
                "{why}: the tags a search hashes"
            );
            assert_eq!(span.attribute_string("ratio").as_deref(), Some("0.25"));
        }
    }

    #[test]
    fn spans_are_copied_byte_for_byte_and_runs_share_resources() {
        let req = request();
        let bytes = req.encode_to_vec();
        let batch = SpanBatch::parse(bytes.clone().into()).unwrap();
        let all: Vec<u32> = (0..batch.len() as u32).collect();
        let data = TracesData::decode(batch.encode(&all).as_slice()).unwrap();
        let shape: Vec<Vec<usize>> = data
            .resource_spans
            .iter()
            .map(|rs| rs.scope_spans.iter().map(|ss| ss.spans.len()).collect())
            .collect();
        assert_eq!(
            shape,
            vec![vec![3, 1], vec![1]],
            "bad spans left out, runs kept"
        );
        // The spans in another order: a resource met again starts a new run.
        let mixed = TracesData::decode(batch.encode(&[0, 4, 1]).as_slice()).unwrap();
        assert_eq!(mixed.resource_spans.len(), 3);
        assert_eq!(
            batch.select(&[4, 0]).to_records(),
            vec![batch.to_records()[4].clone(), batch.to_records()[0].clone()]
        );
        assert_eq!(
            batch.encode_all().len(),
            TracesData::decode(batch.encode(&all).as_slice())
                .unwrap()
                .encoded_len(),
            "with rejected spans the payload is framed anew"
        );
        let clean = SpanBatch::from_records(&batch.to_records());
        assert_eq!(
            clean.encode_all(),
            clean.buf,
            "nothing rejected: the request's own bytes"
        );
        for indexes in [&all[..], &[0, 4, 1], &[2], &[]] {
            let (hash, content) = batch.layout_into(indexes, &mut Vec::new());
            let encoded = batch.encode(indexes);
            let framing = encoded.len() - content;
            assert!(
                framing <= 12 * (indexes.len() + 1),
                "{indexes:?}: {framing}"
            );
            // The same spans sent again in a request of their own: the same hash and length.
            let again = SpanBatch::parse(encoded.into()).unwrap();
            let again_all: Vec<u32> = (0..again.len() as u32).collect();
            assert_eq!(
                again.layout_into(&again_all, &mut Vec::new()),
                (hash, content),
                "{indexes:?}"
            );
        }
        assert_ne!(
            batch.layout_into(&[0, 1], &mut Vec::new()).0,
            batch.layout_into(&[1, 0], &mut Vec::new()).0,
            "the order of the spans is part of what is hashed"
        );
        let mut layout = Vec::new();
        batch.layout_into(&[0, 999], &mut layout);
        let mut out = Vec::new();
        assert!(
            layout::encode(batch.bytes(), &layout, &mut out).is_some(),
            "an index out of the batch leaves the layout whole"
        );
        assert_eq!(
            TracesData::decode(out.as_slice()).map(records_of).unwrap(),
            vec![batch.to_records()[0].clone()]
        );
    }

    #[test]
    fn truncated_or_corrupted_requests_fail_exactly_when_prost_fails() {
        let bytes = request().encode_to_vec();
        let check = |candidate: &[u8], what: &str| {
            let ours = SpanBatch::parse(Bytes::copy_from_slice(candidate));
            let theirs = ExportTraceServiceRequest::decode(candidate);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{what}: {:?}", ours.err());
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                assert_eq!(ours.to_records(), prost_records(&theirs).0, "{what}");
            }
        };
        for end in 0..bytes.len() {
            check(&bytes[..end], &format!("truncated at {end}"));
        }
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut mutated = bytes.clone();
                mutated[at] ^= flip;
                check(&mutated, &format!("byte {at} ^ {flip:#x}"));
            }
        }
    }

    #[test]
    fn a_resource_or_scope_given_in_pieces_is_merged_as_protobuf_does() {
        // Resource { service.name } and Resource { k8s.ns } as two occurrences of field 1.
        let first = resource(Some("cart")).encode_to_vec();
        let second = Resource {
            attributes: vec![string_attribute("service.name", "ignored")],
            ..Default::default()
        }
        .encode_to_vec();
        let span = span(1, 1, vec![], 2, 0).encode_to_vec();
        let mut scope_spans = Vec::new();
        wire::put_delimited(&mut scope_spans, 2, &span);
        let mut rs = Vec::new();
        wire::put_delimited(&mut rs, 1, &first);
        wire::put_delimited(&mut rs, 2, &scope_spans);
        wire::put_delimited(&mut rs, 1, &second);
        let mut req = Vec::new();
        wire::put_delimited(&mut req, 1, &rs);
        let batch = SpanBatch::parse(req.clone().into()).unwrap();
        let theirs = ExportTraceServiceRequest::decode(req.as_slice()).unwrap();
        assert_eq!(batch.to_records(), prost_records(&theirs).0);
        assert_eq!(
            batch.span(0).unwrap().service_name(),
            "cart",
            "the first service.name"
        );
    }
}
