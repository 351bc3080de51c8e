//! Jaeger's api_v2 protobuf model (`proto/jaeger/api_v2/`, generated at build time) into the span model.

use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};

use super::span::{attribute, Batch, Log, Process, RefType, Reference, Span};

/// Types generated from `model.proto` and `collector.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod api_v2 {
    include!(concat!(env!("OUT_DIR"), "/jaeger.api_v2.rs"));
}

/// Left-pads an id of at most `N` bytes (Jaeger writes 16 and 8; shorter ones are 64-bit or trimmed ids).
fn padded<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if bytes.len() <= N {
        let start = N - bytes.len();
        for (dst, src) in out.iter_mut().skip(start).zip(bytes) {
            *dst = *src;
        }
    }
    out
}

fn nanos(t: Option<prost_types::Timestamp>) -> u64 {
    t.map(|t| {
        u64::try_from(t.seconds)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.nanos).unwrap_or(0))
    })
    .unwrap_or(0)
}

fn duration_nanos(d: Option<prost_types::Duration>) -> u64 {
    d.map(|d| {
        u64::try_from(d.seconds)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(d.nanos).unwrap_or(0))
    })
    .unwrap_or(0)
}

fn key_value(kv: api_v2::KeyValue) -> KeyValue {
    use api_v2::ValueType;
    let value = match ValueType::try_from(kv.v_type) {
        Ok(ValueType::String) => any_value::Value::StringValue(kv.v_str),
        Ok(ValueType::Bool) => any_value::Value::BoolValue(kv.v_bool),
        Ok(ValueType::Int64) => any_value::Value::IntValue(kv.v_int64),
        Ok(ValueType::Float64) => any_value::Value::DoubleValue(kv.v_float64),
        Ok(ValueType::Binary) => any_value::Value::BytesValue(kv.v_binary),
        Err(_) => any_value::Value::StringValue(format!("<Unknown Jaeger TagType {}>", kv.v_type)),
    };
    attribute(&kv.key, value)
}

fn process(p: api_v2::Process) -> Process {
    Process {
        service_name: p.service_name,
        tags: p.tags.into_iter().map(key_value).collect(),
    }
}

/// Ids longer than 16 (trace) or 8 (span) bytes become zero, which the record check rejects.
pub fn batch(b: api_v2::Batch) -> Batch {
    Batch {
        process: b.process.map(process),
        spans: b
            .spans
            .into_iter()
            .map(|s| Span {
                trace_id: padded(&s.trace_id),
                span_id: padded(&s.span_id),
                parent_span_id: [0; 8],
                operation_name: s.operation_name,
                references: s
                    .references
                    .into_iter()
                    .map(|r| Reference {
                        ref_type: if r.ref_type == api_v2::SpanRefType::FollowsFrom as i32 {
                            RefType::FollowsFrom
                        } else {
                            RefType::ChildOf
                        },
                        trace_id: padded(&r.trace_id),
                        span_id: padded(&r.span_id),
                    })
                    .collect(),
                start_unix_nano: nanos(s.start_time),
                duration_nano: duration_nanos(s.duration),
                tags: s.tags.into_iter().map(key_value).collect(),
                logs: s
                    .logs
                    .into_iter()
                    .map(|l| Log {
                        time_unix_nano: nanos(l.timestamp),
                        fields: l.fields.into_iter().map(key_value).collect(),
                    })
                    .collect(),
                process: s.process.map(process),
            })
            .collect(),
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
    fn ids_are_padded_and_oversized_ids_zeroed() {
        assert_eq!(padded::<8>(&[1, 2]), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(padded::<8>(&[1; 9]), [0; 8]);
        let b = batch(api_v2::Batch {
            spans: vec![api_v2::Span {
                trace_id: vec![0xab; 8],
                span_id: vec![1; 8],
                start_time: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
                duration: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                process: Some(api_v2::Process {
                    service_name: "own".into(),
                    tags: vec![],
                }),
                ..Default::default()
            }],
            process: Some(api_v2::Process {
                service_name: "batch".into(),
                tags: vec![api_v2::KeyValue {
                    key: "n".into(),
                    v_type: api_v2::ValueType::Int64 as i32,
                    v_int64: 3,
                    ..Default::default()
                }],
            }),
        });
        let s = &b.spans[0];
        assert_eq!(&s.trace_id[..8], &[0; 8], "64-bit trace id left-padded");
        assert_eq!(s.start_unix_nano, 1_700_000_000_000_000_005);
        assert_eq!(s.duration_nano, 1_000_000_000);
        assert_eq!(s.process.as_ref().unwrap().service_name, "own");
        assert_eq!(
            b.process.unwrap().tags[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(3))
        );
    }
}
