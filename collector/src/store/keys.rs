//! Key and value encodings. Strings inside keys are length-prefixed (`lp`: u16 big-endian length, then the
//! bytes) so that no separator byte has to be reserved; integers are big-endian.
//!
//! The unit of storage is a *trace part*: the spans of one trace that arrived in one commit. It is stored
//! once, under `trace(16) hash(8)`, and has one search entry per service among its spans, keyed
//! `lp(service) start(8) trace(16) hash(8)`, whose value lists hashes of its operations and tags.

pub use crate::model::{operation_hash, tag_hash};
use crate::model::{SpanBatch, TraceId};

/// Longest service name put into a key (longer names share the entries of their first 256 bytes; a
/// search checks the spans).
pub const MAX_KEY_STRING: usize = 256;
/// `trace(16) hash(8)`: the key of a trace part, and the tail of every index key.
pub const PART_REF_LEN: usize = 24;
pub type PartRef = [u8; PART_REF_LEN];

pub fn lp(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let bytes = bytes
        .get(..MAX_KEY_STRING.min(bytes.len()))
        .unwrap_or_default();
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn part_ref(trace: &TraceId, hash: u64) -> PartRef {
    let mut out = [0u8; PART_REF_LEN];
    for (slot, byte) in out
        .iter_mut()
        .zip(trace.iter().copied().chain(hash.to_be_bytes()))
    {
        *slot = byte;
    }
    out
}

/// The trace id at the start of a part reference.
pub fn trace_of(part_ref: &[u8]) -> Option<TraceId> {
    part_ref.get(..16)?.try_into().ok()
}

/// The last `PART_REF_LEN` bytes of an index key.
pub fn part_ref_suffix(key: &[u8]) -> Option<&[u8]> {
    key.get(key.len().checked_sub(PART_REF_LEN)?..)
}

/// The 8 big-endian bytes just before the part reference at the end of an index key.
pub fn u64_before_ref(key: &[u8]) -> Option<u64> {
    let end = key.len().checked_sub(PART_REF_LEN)?;
    let bytes: [u8; 8] = key.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub fn service_prefix(service: &str) -> Vec<u8> {
    let mut k = Vec::new();
    lp(&mut k, service);
    k
}

/// One search entry of a trace part: per service among its spans, keyed by service and the earliest
/// start of that service's spans in the part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchEntry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A search entry's value: the shortest and longest span duration (µs), then the sorted hashes of every
/// operation and tag of the service's spans in the part. A search skips an entry whose durations or
/// hashes rule it out without reading the trace; a hash match is checked against the spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchValue<'a> {
    pub min_dur: u64,
    pub max_dur: u64,
    hashes: &'a [u8],
}

impl<'a> SearchValue<'a> {
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let hashes = bytes.get(16..)?;
        if hashes.len() % 4 != 0 {
            return None;
        }
        Some(Self {
            min_dur: u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?),
            max_dur: u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?),
            hashes,
        })
    }

    /// Whether `hash` may be among the part's operations and tags (binary search on sorted hashes).
    pub fn may_contain(&self, hash: u32) -> bool {
        let at = |i: usize| {
            self.hashes
                .get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0)
        };
        let (mut lo, mut hi) = (0usize, self.hashes.len() / 4);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match at(mid).cmp(&hash) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

struct Acc<'a> {
    service: &'a str,
    start: u64,
    min_dur: u64,
    max_dur: u64,
    hashes: Vec<u32>,
    /// The first resource whose attribute hashes are in `hashes` already, then any others (most parts
    /// have one: no allocation).
    resource: u32,
    more_resources: Vec<u32>,
    /// The previous span's name and attribute hashes: a span's operation hash is computed only when its
    /// name differs, and its attribute hashes equal to the previous span's at the same position are not
    /// added (a sidecar's server and client spans share most of their tags), so fewer are sorted.
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

/// The search entries of a trace part (the spans of `batch` at `indexes`): one per distinct service
/// among its spans. Deterministic in the part's spans, so deleting a part recomputes exactly the keys
/// writing it added.
pub fn part_search_entries(batch: &SpanBatch, indexes: &[u32], part: &PartRef) -> Vec<SearchEntry> {
    // Per service, in the order met: a part has one or a few (a list beats a map).
    let mut acc: Vec<Acc> = Vec::with_capacity(1);
    for rec in indexes.iter().filter_map(|i| batch.span(*i as usize)) {
        let start = rec.start_us();
        let dur = rec.duration_us();
        let service = rec.service_name();
        let resource = rec.resource_index();
        let a = match acc.iter().position(|a| a.service == service) {
            Some(at) => acc.get_mut(at),
            None => {
                acc.push(Acc {
                    service,
                    start,
                    min_dur: dur,
                    max_dur: dur,
                    hashes: Vec::with_capacity(32 * indexes.len()),
                    resource,
                    more_resources: Vec::new(),
                    last_name: None,
                    last_attributes: &[],
                });
                let a = acc.last_mut();
                if let Some(a) = a {
                    a.hashes.extend_from_slice(rec.resource_attribute_hashes());
                    Some(a)
                } else {
                    None
                }
            }
        };
        let Some(a) = a else { continue };
        a.start = a.start.min(start);
        a.min_dur = a.min_dur.min(dur);
        a.max_dur = a.max_dur.max(dur);
        let name = rec.name();
        if a.last_name != Some(name) {
            a.hashes.push(operation_hash(name));
            a.last_name = Some(name);
        }
        let attributes = rec.attribute_hashes();
        let (paired, rest) = attributes.split_at(attributes.len().min(a.last_attributes.len()));
        a.hashes.reserve(attributes.len());
        for (h, last) in paired.iter().zip(a.last_attributes) {
            if h != last {
                a.hashes.push(*h);
            }
        }
        a.hashes.extend_from_slice(rest);
        a.last_attributes = attributes;
        if a.resource != resource && !a.more_resources.contains(&resource) {
            a.more_resources.push(resource);
            a.hashes.extend_from_slice(rec.resource_attribute_hashes());
        }
        derived_tag_hashes(rec.kind(), rec.status_code(), &mut a.hashes);
    }
    acc.into_iter()
        .map(|mut a| {
            let service = a.service;
            let mut key = Vec::with_capacity(2 + service.len() + 8 + PART_REF_LEN);
            lp(&mut key, service);
            key.extend_from_slice(&a.start.to_be_bytes());
            key.extend_from_slice(part);
            a.hashes.sort_unstable();
            a.hashes.dedup();
            let mut value = Vec::with_capacity(16 + a.hashes.len() * 4);
            value.extend_from_slice(&a.min_dur.to_be_bytes());
            value.extend_from_slice(&a.max_dur.to_be_bytes());
            for h in a.hashes {
                value.extend_from_slice(&h.to_be_bytes());
            }
            SearchEntry { key, value }
        })
        .collect()
}

pub fn operation_key(service: &str, kind: i32, operation: &str) -> Vec<u8> {
    let mut k = service_prefix(service);
    k.push(u8::try_from(kind).unwrap_or(0));
    k.extend_from_slice(operation.as_bytes());
    k
}

/// What the store remembers about a trace part (the header of its value), or, summed up, a whole trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSummary {
    pub start_us: u64,
    pub end_us: u64,
    pub error: bool,
    pub bytes: u64,
}

impl TraceSummary {
    pub const LEN: usize = 25;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (start, rest) = out.split_at_mut(8);
        let (end, rest) = rest.split_at_mut(8);
        let (error, bytes) = rest.split_at_mut(1);
        start.copy_from_slice(&self.start_us.to_be_bytes());
        end.copy_from_slice(&self.end_us.to_be_bytes());
        error.fill(u8::from(self.error));
        bytes.copy_from_slice(&self.bytes.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            start_us: u64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?),
            end_us: u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?),
            error: *bytes.get(16)? != 0,
            bytes: u64::from_be_bytes(bytes.get(17..25)?.try_into().ok()?),
        })
    }

    /// The summary of a trace made of this part and `other`.
    pub fn merge(self, other: Self) -> Self {
        Self {
            start_us: self.start_us.min(other.start_us),
            end_us: self.end_us.max(other.end_us),
            error: self.error || other.error,
            bytes: self.bytes + other.bytes,
        }
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
    fn length_prefix_keeps_prefixes_apart() {
        // Without a length prefix "ab"+"c" and "a"+"bc" would collide.
        let mut a = service_prefix("ab");
        lp(&mut a, "c");
        let mut b = service_prefix("a");
        lp(&mut b, "bc");
        assert_ne!(a, b);
    }

    #[test]
    fn summary_round_trips() {
        let s = TraceSummary {
            start_us: 5,
            end_us: 9,
            error: true,
            bytes: 1234,
        };
        assert_eq!(TraceSummary::decode(&s.encode()), Some(s));
        assert_eq!(
            TraceSummary::decode(&[1, 2]),
            None,
            "short value is rejected"
        );
    }

    #[test]
    fn search_values_answer_membership() {
        use crate::model::{string_attribute, SpanRecord};
        let mut rec = SpanRecord::new(
            Default::default(),
            Default::default(),
            opentelemetry_proto::tonic::trace::v1::Span {
                trace_id: vec![1; 16],
                span_id: vec![1; 8],
                name: "GET /x".into(),
                start_time_unix_nano: 5_000,
                end_time_unix_nano: 9_000,
                ..Default::default()
            },
        )
        .unwrap();
        rec.span.attributes = vec![string_attribute("k", "v")];
        let batch = SpanBatch::from_records(&[rec]);
        let entries = part_search_entries(&batch, &[0], &part_ref(&[1; 16], 7));
        assert_eq!(entries.len(), 1);
        let v = SearchValue::decode(&entries[0].value).unwrap();
        assert_eq!((v.min_dur, v.max_dur), (4, 4));
        assert!(v.may_contain(operation_hash("GET /x")));
        assert!(v.may_contain(tag_hash("k", "v")));
        assert!(!v.may_contain(tag_hash("k", "w")));
        assert!(!v.may_contain(operation_hash("GET /y")));
        assert_eq!(u64_before_ref(&entries[0].key), Some(5));
        assert!(
            SearchValue::decode(&[0; 17]).is_none(),
            "truncated hash list"
        );
    }

    #[test]
    fn search_entries_hash_exactly_the_tags_a_search_compares() {
        use crate::model::{string_attribute, SpanRecord};
        use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{Span, Status};
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
                    start_time_unix_nano: 1_000,
                    end_time_unix_nano: 2_000 + u64::from(id) * 1_000,
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
        let entries = part_search_entries(&batch, &[0, 1, 2, 3], &part_ref(&[1; 16], 7));
        assert_eq!(entries.len(), 2, "one entry per service");
        for (entry, service) in entries.iter().zip(["a", "b"]) {
            let mut expected: Vec<u32> = Vec::new();
            for span in batch.spans().filter(|s| s.service_name() == service) {
                expected.push(operation_hash(span.name()));
                span.for_each_tag(|k, v| expected.push(tag_hash(k, v)));
            }
            expected.sort_unstable();
            expected.dedup();
            let value = SearchValue::decode(&entry.value).unwrap();
            let stored: Vec<u32> = value
                .hashes
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(stored, expected, "service {service}");
        }
    }

    #[test]
    fn part_ref_ends_index_keys() {
        let part = part_ref(&[7; 16], 42);
        let mut key = service_prefix("svc");
        key.extend_from_slice(&5u64.to_be_bytes());
        key.extend_from_slice(&part);
        assert_eq!(part_ref_suffix(&key), Some(part.as_slice()));
        assert_eq!(u64_before_ref(&key), Some(5));
        assert_eq!(trace_of(&part), Some([7; 16]));
    }
}
