//! Propagation: reading a caller's trace context from request headers and
//! writing ours back, in every format the configuration lists.
//!
//! Propagators never see proxy types: they read a plain header list
//! ([`HeaderList`], names lower-case as Envoy keeps them, values as the bytes
//! the request carries, decoded only where read) and return
//! [`HeaderEdit`]s for the host to apply. One file per format; each file's
//! second half is its table of rules.

pub mod b3;
pub mod baggage;
pub mod jaeger;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod proptests;
pub mod tracecontext;
pub mod tracestate;

use core::fmt;
use std::borrow::Cow;

use crate::ids::{SpanId, TraceId};
pub use baggage::Baggage;
pub use tracestate::TraceState;

/// One propagation format, by its OTEL_PROPAGATORS name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    TraceContext,
    Baggage,
    B3,
    B3Multi,
    Jaeger,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::TraceContext,
        Format::Baggage,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::TraceContext => "tracecontext",
            Format::Baggage => "baggage",
            Format::B3 => "b3",
            Format::B3Multi => "b3multi",
            Format::Jaeger => "jaeger",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the format carries a trace context (baggage does not).
    pub fn carries_trace(self) -> bool {
        !matches!(self, Format::Baggage)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The caller's sampling decision as its headers state it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// No decision was sent: the receiver decides (B3 "defer").
    Deferred,
    /// Not sampled; passed on as such.
    Deny,
    Accept,
    /// Sampled and flagged for debug (B3 `d`/`x-b3-flags: 1`, Jaeger flag 0x02).
    Debug,
}

impl Sampling {
    /// The decision to follow, if any.
    pub fn sampled(self) -> Option<bool> {
        match self {
            Sampling::Deferred => None,
            Sampling::Deny => Some(false),
            Sampling::Accept | Sampling::Debug => Some(true),
        }
    }
}

/// What a format found in the incoming headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The caller's trace and span id; `None` when only a decision was sent
    /// (`b3: 0`, `b3: 1`, a lone `x-b3-sampled`).
    pub parent: Option<(TraceId, SpanId)>,
    pub sampling: Sampling,
    /// W3C Level 2 random flag of the caller's trace id.
    pub random: bool,
    pub tracestate: TraceState,
}

/// The result of one format's extraction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extraction {
    /// None of the format's headers are present.
    Absent,
    /// Present but invalid: ignored, and counted.
    Malformed,
    Found(Incoming),
}

/// The context of the span we made, as it is written onto the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    pub debug: bool,
    pub random: bool,
    pub tracestate: TraceState,
}

/// The lower-case hex of a context's trace and span ids, written once for
/// every format that carries them (`traceparent`, `b3`, `x-b3-*`,
/// `uber-trace-id`) into a stack buffer: each format copies the digits
/// instead of computing them again.
pub struct IdsHex {
    /// The trace id's 32 digits.
    trace: [u8; 32],
    /// The span id's 16.
    span: [u8; 16],
    /// A 64-bit trace id (the high half zero), which B3 and Jaeger write short.
    short: bool,
}

impl IdsHex {
    pub fn new(ctx: &SpanContext) -> Self {
        let mut trace = [b'0'; 32];
        let mut span = [b'0'; 16];
        hex_into(&mut trace, &ctx.trace_id.0);
        hex_into(&mut span, &ctx.span_id.0);
        IdsHex {
            trace,
            span,
            short: ctx.trace_id.0.get(..8) == Some(&[0u8; 8][..]),
        }
    }

    /// The trace id's 32 digits (ASCII, as every accessor's).
    pub fn trace(&self) -> &[u8; 32] {
        &self.trace
    }

    /// 16 digits for a 64-bit trace id, 32 otherwise (B3's and Jaeger's form).
    pub fn short_trace(&self) -> &[u8] {
        match (self.short, self.trace.last_chunk::<16>()) {
            (true, Some(low)) => low,
            _ => &self.trace,
        }
    }

    /// [`IdsHex::short_trace`] onto a value being built.
    pub fn put_short_trace(&self, value: &mut InlineValue) {
        match (self.short, self.trace.last_chunk::<16>()) {
            (true, Some(low)) => value.put(low),
            _ => value.put(&self.trace),
        };
    }

    /// The span id's 16 digits.
    pub fn span(&self) -> &[u8; 16] {
        &self.span
    }
}

/// Writes the lower-case hex of `bytes` into `out` (two digits a byte).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = DIGITS.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
        }
    }
}

/// A change to one request header: set it to a value, or remove it (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderEdit {
    pub name: Cow<'static, str>,
    pub value: Option<EditValue>,
}

impl HeaderEdit {
    pub fn set(name: impl Into<Cow<'static, str>>, value: impl Into<EditValue>) -> Self {
        HeaderEdit {
            name: name.into(),
            value: Some(value.into()),
        }
    }
    pub fn remove(name: impl Into<Cow<'static, str>>) -> Self {
        HeaderEdit {
            name: name.into(),
            value: None,
        }
    }
}

/// Room for the longest value written in place: `traceparent`'s 55 bytes.
const INLINE: usize = 55;

/// A header value to write. A trace header's (ids in hex and a few
/// separators, 55 bytes at most) is built in place, with no allocation: an
/// unsampled request then allocates nothing to propagate. `tracestate`,
/// `baggage` and `uberctx-*` values are Strings.
#[derive(Clone)]
pub enum EditValue {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(String),
}

impl EditValue {
    /// The pieces one after another: in place when they fit. The pieces
    /// are text the caller wrote (hex digits and separators), taken as
    /// bytes: nothing is checked on the way.
    pub fn concat(parts: &[&[u8]]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let (Ok(short), true) = (u8::try_from(len), len <= INLINE) else {
            return EditValue::Heap(String::from_utf8_lossy(&parts.concat()).into_owned());
        };
        let mut bytes = [0u8; INLINE];
        let mut at = 0;
        for part in parts {
            if let Some(into) = bytes.get_mut(at..at + part.len()) {
                into.copy_from_slice(part);
            }
            at += part.len();
        }
        EditValue::Inline { len: short, bytes }
    }

    /// The value as the request will carry it.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            EditValue::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            EditValue::Heap(s) => s.as_bytes(),
        }
    }

    /// The value as text (always UTF-8: it is built from text).
    pub fn as_str(&self) -> &str {
        match self {
            EditValue::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            EditValue::Heap(s) => s,
        }
    }
}

/// A trace header's value built in place from pieces of fixed sizes (the
/// ids' digits, separators, flags): each copy's length is known when the
/// module is compiled, so none becomes a call to `memcpy` (in the Wasm, a
/// `memory.copy`, which V8 runs outside the module's code).
pub struct InlineValue {
    len: u8,
    bytes: [u8; INLINE],
}

impl InlineValue {
    pub fn new() -> Self {
        InlineValue {
            len: 0,
            bytes: [0; INLINE],
        }
    }

    /// Appends `part` (dropped if the value would pass 55 bytes: no trace
    /// header does).
    #[inline]
    pub fn put<const N: usize>(&mut self, part: &[u8; N]) -> &mut Self {
        let at = usize::from(self.len);
        if let (Some(into), Ok(len)) = (self.bytes.get_mut(at..at + N), u8::try_from(at + N)) {
            into.copy_from_slice(part);
            self.len = len;
        }
        self
    }

    pub fn value(&self) -> EditValue {
        EditValue::Inline {
            len: self.len,
            bytes: self.bytes,
        }
    }
}

impl Default for InlineValue {
    fn default() -> Self {
        InlineValue::new()
    }
}

impl std::ops::Deref for EditValue {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for EditValue {
    fn from(v: String) -> Self {
        EditValue::Heap(v)
    }
}

impl From<&str> for EditValue {
    fn from(v: &str) -> Self {
        match v.len() <= INLINE {
            true => EditValue::concat(&[v.as_bytes()]),
            false => EditValue::Heap(v.to_owned()),
        }
    }
}

impl PartialEq for EditValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EditValue {}

impl PartialEq<&str> for EditValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for EditValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Every header of every trace format we know: what inject replaces or removes
/// so that no two formats disagree on the wire.
pub const TRACE_HEADERS: [&str; 9] = [
    tracecontext::TRACEPARENT,
    tracecontext::TRACESTATE,
    b3::SINGLE,
    b3::TRACE_ID,
    b3::SPAN_ID,
    b3::PARENT_SPAN_ID,
    b3::SAMPLED,
    b3::FLAGS,
    jaeger::UBER_TRACE_ID,
];

/// Where `name` is in [`TRACE_HEADERS`]: one comparison by length and bytes
/// (a `match` on strings), not one per trace header.
fn trace_header_index(name: &str) -> Option<usize> {
    header_index(name).filter(|&i| i < TRACE_HEADERS.len())
}

/// [`trace_header_index`], and W3C `baggage` as [`BAGGAGE_INDEX`].
fn header_index(name: &str) -> Option<usize> {
    Some(match name {
        tracecontext::TRACEPARENT => 0,
        tracecontext::TRACESTATE => 1,
        b3::SINGLE => 2,
        b3::TRACE_ID => 3,
        b3::SPAN_ID => 4,
        b3::PARENT_SPAN_ID => 5,
        b3::SAMPLED => 6,
        b3::FLAGS => 7,
        jaeger::UBER_TRACE_ID => 8,
        baggage::BAGGAGE => BAGGAGE_INDEX,
        _ => return None,
    })
}

const BAGGAGE_INDEX: usize = TRACE_HEADERS.len();

/// The request headers: names as the proxy gives them (lower-case), values as
/// the bytes on the wire, both borrowed from the proxy's buffer
/// ([`crate::headers::HeaderMap::pairs`]). A value is decoded ([`text`]) only
/// where it is read: most are never looked at.
pub type HeaderList<'a> = [(&'a str, &'a [u8])];

/// A header value as text: borrowed when it is UTF-8 (nearly always), else
/// with each invalid sequence replaced by U+FFFD, which every parser here
/// rejects as malformed (obs-text is legal HTTP, so such a value must never
/// fail the request).
pub fn text(value: &[u8]) -> Cow<'_, str> {
    // `from_utf8` checks a word of ASCII at a time; the lossy decoder walks
    // byte by byte, so it only gets the rare value that fails.
    match std::str::from_utf8(value) {
        Ok(v) => Cow::Borrowed(v),
        Err(_) => String::from_utf8_lossy(value),
    }
}

/// A header as the request has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header<'a> {
    Absent,
    One(&'a [u8]),
    /// Sent more than once: ambiguous for a trace header, so treated as invalid.
    Several,
}

/// The header `name` (lower-case) in `headers`.
pub fn header<'a>(headers: &HeaderList<'a>, name: &str) -> Header<'a> {
    let mut found = Header::Absent;
    for &(k, v) in headers {
        if k == name {
            match found {
                Header::Absent => found = Header::One(v),
                _ => return Header::Several,
            }
        }
    }
    found
}

/// The trace and baggage headers a request has, found in one pass over it:
/// a format none of whose headers is there is not read at all (most requests
/// carry one format or none, and each format's reading scans the list once
/// per header name), and inject compares what it writes with these.
#[derive(Clone, Copy, Debug)]
pub struct Present<'a> {
    /// By [`TRACE_HEADERS`]' order.
    trace: [Header<'a>; TRACE_HEADERS.len()],
    /// The W3C `baggage` header (its values are joined when it is sent
    /// more than once).
    baggage: Header<'a>,
    /// A Jaeger `uberctx-*` header.
    uberctx: bool,
}

impl<'a> Present<'a> {
    pub fn of(headers: &HeaderList<'a>) -> Self {
        let mut present = Present {
            trace: [Header::Absent; TRACE_HEADERS.len()],
            baggage: Header::Absent,
            uberctx: false,
        };
        for &(k, v) in headers {
            let slot = match header_index(k) {
                Some(BAGGAGE_INDEX) => &mut present.baggage,
                Some(i) => match present.trace.get_mut(i) {
                    Some(slot) => slot,
                    None => continue,
                },
                None => {
                    present.uberctx |= k.starts_with(jaeger::BAGGAGE_PREFIX);
                    continue;
                }
            };
            *slot = match slot {
                Header::Absent => Header::One(v),
                _ => Header::Several,
            };
        }
        present
    }

    /// Whether any of the trace headers `from..to` (in [`TRACE_HEADERS`]) is there.
    fn any(&self, from: usize, to: usize) -> bool {
        self.trace
            .get(from..to)
            .is_some_and(|h| h.iter().any(|h| !matches!(h, Header::Absent)))
    }
}

// Where each format's headers are in [`TRACE_HEADERS`].
const AT_TRACEPARENT: usize = 0;
const AT_B3: usize = 2;
/// `x-b3-traceid` to `x-b3-flags`.
const AT_B3_MULTI: usize = 3;
const AT_UBER_TRACE_ID: usize = 8;

/// Every value of `name`, comma-joined (how list headers such as tracestate
/// and baggage combine when sent more than once).
pub fn joined<'a>(headers: &HeaderList<'a>, name: &str) -> Option<Cow<'a, str>> {
    let mut values = headers
        .iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| text(v));
    let first = values.next()?;
    match values.next() {
        None => Some(first),
        Some(second) => {
            let mut all = format!("{first},{second}");
            for v in values {
                all.push(',');
                all.push_str(&v);
            }
            Some(Cow::Owned(all))
        }
    }
}

/// Extraction outcome across the configured formats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The winning format and what it found.
    pub winner: Option<(Format, Incoming)>,
    pub baggage: Baggage,
    /// Trace and baggage headers that were present but invalid.
    pub malformed: u32,
}

/// The configured formats in extraction order. B3 single and multi are one
/// B3 family when reading: whichever is listed, both encodings are read (the
/// single header wins, as the B3 spec says); the list chooses only what is
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagators {
    formats: Vec<Format>,
}

impl Propagators {
    pub fn new(listed: &[Format]) -> Self {
        let mut formats: Vec<Format> = Vec::with_capacity(listed.len());
        for &f in listed {
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        Propagators { formats }
    }

    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    pub fn has(&self, f: Format) -> bool {
        self.formats.contains(&f)
    }

    pub fn is_empty(&self) -> bool {
        self.formats.is_empty()
    }

    /// Reads the caller's context: the first listed trace format whose headers
    /// are present and valid wins; baggage is gathered from W3C `baggage` and
    /// Jaeger `uberctx-*` when those formats are listed.
    pub fn extract(&self, headers: &HeaderList) -> Extracted {
        self.extract_present(headers, &Present::of(headers))
    }

    /// [`Propagators::extract`] with the request's trace headers already found.
    pub fn extract_present(&self, headers: &HeaderList, present: &Present<'_>) -> Extracted {
        let mut out = Extracted::default();
        let w3c_there = present.any(AT_TRACEPARENT, AT_TRACEPARENT + 1);
        let mut w3c_read = false;
        let mut b3_read = false;
        for &format in &self.formats {
            if out.winner.is_some() {
                break;
            }
            let found = match format {
                Format::Baggage => continue,
                Format::TraceContext if !w3c_there => continue,
                Format::TraceContext => {
                    w3c_read = true;
                    found(
                        Format::TraceContext,
                        tracecontext::extract(headers, &mut out.malformed),
                        &mut out.malformed,
                    )
                }
                // OpenTelemetry's B3 rules: a B3 propagator reads both
                // encodings, the single header first.
                Format::B3 | Format::B3Multi if !b3_read => {
                    b3_read = true;
                    let single = || match present.any(AT_B3, AT_B3 + 1) {
                        true => b3::extract_single(headers),
                        false => Extraction::Absent,
                    };
                    let multi = || match present.any(AT_B3_MULTI, AT_B3_MULTI + 5) {
                        true => b3::extract_multi(headers),
                        false => Extraction::Absent,
                    };
                    found(Format::B3, single(), &mut out.malformed)
                        .or_else(|| found(Format::B3Multi, multi(), &mut out.malformed))
                }
                Format::B3 | Format::B3Multi => continue,
                Format::Jaeger if !present.any(AT_UBER_TRACE_ID, AT_UBER_TRACE_ID + 1) => continue,
                Format::Jaeger => {
                    found(Format::Jaeger, jaeger::extract(headers), &mut out.malformed)
                }
            };
            out.winner = found;
        }
        // A W3C tracestate belongs to its traceparent's trace: keep it when
        // another format won with the same trace id. (Read before the
        // winner, tracecontext was absent or invalid.)
        if let Some((format, incoming)) = &mut out.winner {
            if *format != Format::TraceContext
                && self.has(Format::TraceContext)
                && !w3c_read
                && w3c_there
            {
                if let (Some((trace_id, _)), Extraction::Found(w3c)) = (
                    incoming.parent,
                    tracecontext::extract(headers, &mut out.malformed),
                ) {
                    if w3c.parent.map(|(t, _)| t) == Some(trace_id) {
                        incoming.tracestate = w3c.tracestate;
                    }
                }
            }
        }
        if present.baggage != Header::Absent && self.has(Format::Baggage) {
            out.malformed += baggage::extract_w3c(headers, &mut out.baggage);
        }
        if present.uberctx && self.has(Format::Jaeger) {
            out.malformed += jaeger::extract_baggage(headers, &mut out.baggage);
        }
        out
    }

    /// The header edits that put `ctx` and `baggage` on the request in every
    /// listed format and remove what any other trace format we know left there.
    /// Headers already holding the value to write are left alone.
    pub fn inject(
        &self,
        ctx: &SpanContext,
        baggage: &Baggage,
        headers: &HeaderList,
    ) -> Vec<HeaderEdit> {
        self.inject_present(ctx, baggage, headers, &Present::of(headers))
    }

    /// [`Propagators::inject`] with the request's trace headers already found.
    pub fn inject_present(
        &self,
        ctx: &SpanContext,
        baggage: &Baggage,
        headers: &HeaderList,
        present: &Present<'_>,
    ) -> Vec<HeaderEdit> {
        let mut edits = Vec::with_capacity(8);
        self.inject_into(ctx, baggage, headers, present, &mut edits);
        edits
    }

    /// [`Propagators::inject_present`] into a list the caller keeps, emptied
    /// first (the tracer reuses one from request to request: no allocation).
    pub fn inject_into(
        &self,
        ctx: &SpanContext,
        baggage: &Baggage,
        headers: &HeaderList,
        present: &Present<'_>,
        edits: &mut Vec<HeaderEdit>,
    ) {
        edits.clear();
        if self.formats.is_empty() {
            return;
        }
        let hex = IdsHex::new(ctx);
        for &format in &self.formats {
            match format {
                Format::TraceContext => tracecontext::inject(ctx, &hex, edits),
                Format::B3 => b3::inject_single(ctx, &hex, edits),
                Format::B3Multi => b3::inject_multi(ctx, &hex, edits),
                Format::Jaeger => {
                    jaeger::inject(ctx, &hex, edits);
                    jaeger::inject_baggage(baggage, headers, edits);
                }
                Format::Baggage => baggage::inject_w3c(baggage, present.baggage, edits),
            }
        }
        // The trace headers written, by their place in TRACE_HEADERS; the
        // others the request has are removed.
        let written = edits
            .iter()
            .fold(0u32, |mask, e| match trace_header_index(&e.name) {
                Some(i) => mask | 1 << i,
                None => mask,
            });
        for (i, (name, found)) in TRACE_HEADERS.iter().zip(present.trace).enumerate() {
            if written & 1 << i == 0 && !matches!(found, Header::Absent) {
                edits.push(HeaderEdit::remove(*name));
            }
        }
        // A header whose value would not change is left alone.
        edits.retain(|edit| {
            let current = match header_index(&edit.name) {
                Some(BAGGAGE_INDEX) => present.baggage,
                Some(i) => present.trace.get(i).copied().unwrap_or(Header::Absent),
                None => header(headers, &edit.name),
            };
            match (&edit.value, current) {
                (Some(v), Header::One(current)) => v.as_bytes() != current,
                (None, Header::Absent) => false,
                _ => true,
            }
        });
    }
}

/// What one format's extraction gives the loop: the winner, or nothing
/// (a present but invalid format is counted).
fn found(format: Format, e: Extraction, malformed: &mut u32) -> Option<(Format, Incoming)> {
    match e {
        Extraction::Absent => None,
        Extraction::Malformed => {
            *malformed += 1;
            None
        }
        Extraction::Found(incoming) => Some((format, incoming)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    pub fn hdrs<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        pairs.iter().map(|&(k, v)| (k, v.as_bytes())).collect()
    }

    pub fn owned(headers: &HeaderList) -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    /// Owned headers as the borrowed list the readers take.
    pub fn view(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
        headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect()
    }

    #[test]
    fn trace_header_index_follows_the_list() {
        for (i, name) in TRACE_HEADERS.iter().enumerate() {
            assert_eq!(trace_header_index(name), Some(i), "{name}");
        }
        assert_eq!(trace_header_index("baggage"), None);
        let at = |i: usize| TRACE_HEADERS.get(i).copied();
        assert_eq!(at(AT_TRACEPARENT), Some(tracecontext::TRACEPARENT));
        assert_eq!(at(AT_B3), Some(b3::SINGLE));
        assert_eq!(at(AT_B3_MULTI), Some(b3::TRACE_ID));
        assert_eq!(at(AT_B3_MULTI + 4), Some(b3::FLAGS));
        assert_eq!(at(AT_UBER_TRACE_ID), Some(jaeger::UBER_TRACE_ID));
        assert_eq!(trace_header_index("x-b3-traceid2"), None);
    }

    #[test]
    fn edit_values_in_place_or_on_the_heap_read_the_same() {
        let short = EditValue::from("00-ab");
        assert!(matches!(short, EditValue::Inline { len: 5, .. }));
        assert_eq!(
            short,
            EditValue::Heap("00-ab".to_string()),
            "compared by content"
        );
        assert_eq!(short.as_str(), "00-ab");
        let long = "x".repeat(INLINE + 1);
        assert!(matches!(EditValue::from(long.as_str()), EditValue::Heap(ref v) if *v == long));
        assert!(
            matches!(EditValue::concat(&[long.as_bytes()]), EditValue::Heap(ref v) if *v == long)
        );
        let mut built = InlineValue::new();
        built.put(b"00-").put(&[b'a'; 32]);
        built.put(&[b'b'; 32]); // past 55 bytes: dropped, never a panic
        built.put(b"-1");
        assert_eq!(built.value(), format!("00-{}-1", "a".repeat(32)).as_str());
    }

    /// Applies edits the way Envoy's set/remove header calls do.
    pub fn apply(headers: &mut Vec<(String, Vec<u8>)>, edits: &[HeaderEdit]) {
        for e in edits {
            headers.retain(|(k, _)| k != &e.name);
            if let Some(v) = &e.value {
                headers.push((e.name.to_string(), v.as_bytes().to_vec()));
            }
        }
    }

    pub fn ctx() -> SpanContext {
        SpanContext {
            trace_id: TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: SpanId::from_u64(0x00f0_67aa_0ba9_02b7),
            sampled: true,
            debug: false,
            random: true,
            tracestate: TraceState::default(),
        }
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn first_listed_valid_format_wins() {
        let h = hdrs(&[
            ("traceparent", TP),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ]);
        let p = Propagators::new(&[Format::B3, Format::TraceContext]);
        let (format, inc) = p.extract(&h).winner.unwrap();
        assert_eq!(format, Format::B3, "b3 is listed first");
        assert_eq!(
            inc.parent.map(|(t, _)| t.to_string()).as_deref(),
            Some("80f198ee56343ba864fe8b2a57d3eff7")
        );
        let p = Propagators::new(&[Format::TraceContext, Format::B3]);
        let (format, _) = p.extract(&h).winner.unwrap();
        assert_eq!(format, Format::TraceContext, "tracecontext is listed first");
    }

    #[test]
    fn malformed_format_falls_through_to_the_next() {
        let h = hdrs(&[
            ("traceparent", "00-XYZ-00f067aa0ba902b7-01"),
            ("uber-trace-id", "abc:def:0:1"),
        ]);
        let p = Propagators::new(&[Format::TraceContext, Format::Jaeger]);
        let e = p.extract(&h);
        assert_eq!(e.malformed, 1);
        assert_eq!(e.winner.map(|(f, _)| f), Some(Format::Jaeger));
    }

    #[test]
    fn b3_is_read_in_both_encodings_whichever_is_configured() {
        const SINGLE: (&str, &str) = ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
        const SINGLE_DENY: (&str, &str) =
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
        const BAD_SINGLE: (&str, &str) = ("b3", "80f198ee56343ba8-zz");
        const MULTI: [(&str, &str); 3] = [
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "0020000000000001"),
            ("x-b3-sampled", "1"),
        ];
        let single_trace = "80f198ee56343ba864fe8b2a57d3eff7";
        let multi_trace = "463ac35c9f6413ad48485a3953bb6124";
        let configs: [&[Format]; 4] = [
            &[Format::B3],
            &[Format::B3Multi],
            &[Format::B3, Format::B3Multi],
            &[Format::B3Multi, Format::B3],
        ];
        type Row = (
            &'static [(&'static str, &'static str)],
            Option<(Format, &'static str, Sampling)>,
            u32,
            &'static str,
        );
        let both: &'static [(&str, &str)] = &[SINGLE, MULTI[0], MULTI[1], MULTI[2]];
        let bad_then_multi: &'static [(&str, &str)] = &[BAD_SINGLE, MULTI[0], MULTI[1], MULTI[2]];
        let rows: [Row; 6] = [
            (
                &[SINGLE],
                Some((Format::B3, single_trace, Sampling::Accept)),
                0,
                "single alone",
            ),
            (
                &MULTI,
                Some((Format::B3Multi, multi_trace, Sampling::Accept)),
                0,
                "multi alone",
            ),
            (
                both,
                Some((Format::B3, single_trace, Sampling::Accept)),
                0,
                "both: the single header wins",
            ),
            (
                &[SINGLE_DENY],
                Some((Format::B3, single_trace, Sampling::Deny)),
                0,
                "a single deny is honoured",
            ),
            (
                bad_then_multi,
                Some((Format::B3Multi, multi_trace, Sampling::Accept)),
                1,
                "an invalid single falls back to multi",
            ),
            (&[("x-other", "1")], None, 0, "neither"),
        ];
        for formats in configs {
            let p = Propagators::new(formats);
            for (pairs, want, malformed, why) in &rows {
                let e = p.extract(&hdrs(pairs));
                let got = e.winner.map(|(f, inc)| {
                    let trace = inc.parent.map(|(t, _)| t.to_string()).unwrap_or_default();
                    (f, trace, inc.sampling)
                });
                let want = want.map(|(f, t, s)| (f, t.to_string(), s));
                assert_eq!(got, want, "{formats:?}: {why}");
                assert_eq!(e.malformed, *malformed, "{formats:?}: {why}");
            }
        }
        let deny_alone = hdrs(&[("b3", "0")]);
        let (_, inc) = Propagators::new(&[Format::B3Multi])
            .extract(&deny_alone)
            .winner
            .unwrap();
        assert_eq!(
            (inc.parent, inc.sampling),
            (None, Sampling::Deny),
            "b3: 0 read with b3multi configured"
        );
    }

    #[test]
    fn only_the_configured_b3_encoding_is_written() {
        let incoming = hdrs(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
        let mut out = owned(&incoming);
        let p = Propagators::new(&[Format::B3Multi]);
        apply(&mut out, &p.inject(&ctx(), &Baggage::default(), &incoming));
        let out = view(&out);
        assert_eq!(
            header(&out, "b3"),
            Header::Absent,
            "the single header read, then replaced"
        );
        assert_eq!(
            header(&out, "x-b3-spanid"),
            Header::One(b"00f067aa0ba902b7".as_slice())
        );
    }

    #[test]
    fn tracestate_kept_when_another_format_wins_on_the_same_trace() {
        let h = hdrs(&[
            ("traceparent", TP),
            ("tracestate", "vendor=value"),
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]);
        let p = Propagators::new(&[Format::B3Multi, Format::TraceContext]);
        let (_, inc) = p.extract(&h).winner.unwrap();
        assert_eq!(
            inc.tracestate.header_value().as_deref(),
            Some("vendor=value")
        );
        let h2 = hdrs(&[
            ("traceparent", TP),
            ("tracestate", "vendor=value"),
            ("x-b3-traceid", "11111111111111111111111111111111"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]);
        let (_, inc) = p.extract(&h2).winner.unwrap();
        assert!(
            inc.tracestate.is_empty(),
            "different trace: tracestate dropped"
        );
    }

    #[test]
    fn inject_writes_every_listed_format_and_removes_the_others() {
        let h = hdrs(&[
            ("traceparent", TP),
            ("b3", "0"),
            ("x-b3-sampled", "1"),
            ("uber-trace-id", "1:2:0:1"),
            ("other", "kept"),
        ]);
        let p = Propagators::new(&[Format::TraceContext, Format::B3Multi]);
        let mut out = owned(&h);
        apply(&mut out, &p.inject(&ctx(), &Baggage::default(), &h));
        let out = view(&out);
        let get = |n: &str| match header(&out, n) {
            Header::One(v) => Some(text(v).into_owned()),
            _ => None,
        };
        assert_eq!(
            get("traceparent").as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")
        );
        assert_eq!(
            get("x-b3-traceid").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(get("x-b3-sampled").as_deref(), Some("1"));
        assert_eq!(get("b3"), None, "stale single b3 removed");
        assert_eq!(get("uber-trace-id"), None, "stale jaeger removed");
        assert_eq!(get("other").as_deref(), Some("kept"));
    }

    #[test]
    fn inject_skips_headers_that_already_hold_the_value() {
        let p = Propagators::new(&[Format::TraceContext]);
        let mut h = Vec::new();
        apply(&mut h, &p.inject(&ctx(), &Baggage::default(), &[]));
        assert!(p.inject(&ctx(), &Baggage::default(), &view(&h)).is_empty());
    }

    #[test]
    fn no_propagators_means_no_edits() {
        let p = Propagators::new(&[]);
        let h = hdrs(&[("traceparent", TP)]);
        assert!(p.inject(&ctx(), &Baggage::default(), &h).is_empty());
    }

    #[test]
    fn repeated_list_headers_are_comma_joined() {
        let h = hdrs(&[("tracestate", "a=1"), ("x", "y"), ("tracestate", "b=2")]);
        assert_eq!(joined(&h, "tracestate").as_deref(), Some("a=1,b=2"));
        assert_eq!(joined(&h, "baggage"), None);
        assert_eq!(header(&h, "tracestate"), Header::Several);
    }
}
