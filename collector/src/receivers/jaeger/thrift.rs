//! Jaeger's thrift structures (`proto/jaeger/jaeger.thrift`, `agent.thrift`) read with the Apache `thrift`
//! crate's compact and binary protocols. The protocols (varints, zigzag, field deltas, message envelopes)
//! are the crate's; this file only walks the IDL's structs, skipping fields it does not know (as generated
//! code does), and builds the span model directly, without an intermediate generated type per struct.
//!
//! Every read is bounded by the input: the protocol refuses strings, byte arrays and containers longer
//! than the packet or body they come from, nesting is capped by the crate, and no list is preallocated
//! from a length the sender claims.

use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use thrift::protocol::{
    TBinaryInputProtocol, TCompactInputProtocol, TInputProtocol, TMessageType, TType,
};
use thrift::TConfiguration;

use super::span::{attribute, trace_id, Batch, Log, Process, RefType, Reference, Span};

/// How a buffer was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Compact,
    Binary,
}

#[derive(Debug, thiserror::Error)]
pub enum ThriftError {
    #[error("not thrift {0:?}: {1}")]
    Decode(Protocol, thrift::Error),
    #[error("unsupported agent method {0:?} (only emitBatch)")]
    Method(String),
    #[error("the message carries no batch")]
    NoBatch,
    #[error("{0} bytes follow the Batch; send exactly one Batch per request")]
    Trailing(usize),
}

fn config(len: usize) -> TConfiguration {
    TConfiguration::builder()
        .max_string_size(Some(len))
        .max_container_size(Some(len))
        .max_message_size(Some(len))
        .build()
        .unwrap_or_else(|_| TConfiguration::default())
}

/// An agent UDP packet: the oneway `Agent.emitBatch(1: Batch batch)` call.
pub fn read_emit_batch(packet: &[u8], protocol: Protocol) -> Result<Batch, ThriftError> {
    let decode = |e| ThriftError::Decode(protocol, e);
    match protocol {
        Protocol::Compact => {
            let mut p = TCompactInputProtocol::with_config(packet, config(packet.len()));
            emit_batch(&mut p, decode)
        }
        Protocol::Binary => {
            let mut p = TBinaryInputProtocol::with_config(packet, false, config(packet.len()));
            emit_batch(&mut p, decode)
        }
    }
}

/// A collector HTTP body: one binary-encoded `Batch` struct, no envelope, nothing after it (bytes after
/// the struct mean a damaged or concatenated body: refused rather than half read).
pub fn read_batch(body: &[u8]) -> Result<Batch, ThriftError> {
    let mut rest = body;
    let batch = batch(&mut TBinaryInputProtocol::with_config(
        &mut rest,
        false,
        config(body.len()),
    ))
    .map_err(|e| ThriftError::Decode(Protocol::Binary, e))?;
    if !rest.is_empty() {
        return Err(ThriftError::Trailing(rest.len()));
    }
    Ok(batch)
}

fn emit_batch(
    p: &mut impl TInputProtocol,
    decode: impl Fn(thrift::Error) -> ThriftError,
) -> Result<Batch, ThriftError> {
    let message = p.read_message_begin().map_err(&decode)?;
    if message.name != "emitBatch"
        || !matches!(
            message.message_type,
            TMessageType::OneWay | TMessageType::Call
        )
    {
        return Err(ThriftError::Method(message.name));
    }
    let mut found = None;
    read_struct(p, |p, id, ty| match (id, ty) {
        (1, TType::Struct) => {
            found = Some(batch(p)?);
            Ok(())
        }
        _ => p.skip(ty),
    })
    .map_err(&decode)?;
    p.read_message_end().map_err(&decode)?;
    found.ok_or(ThriftError::NoBatch)
}

/// Reads a struct, handing each field (id, type) to `field`, which must consume it.
fn read_struct<P: TInputProtocol>(
    p: &mut P,
    mut field: impl FnMut(&mut P, i16, TType) -> thrift::Result<()>,
) -> thrift::Result<()> {
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        match f.id {
            Some(id) => field(p, id, f.field_type)?,
            None => p.skip(f.field_type)?,
        }
        p.read_field_end()?;
    }
    p.read_struct_end()
}

/// Reads a list of structs with `item`; a list of anything else is skipped.
fn read_list<P: TInputProtocol, T>(
    p: &mut P,
    mut item: impl FnMut(&mut P) -> thrift::Result<T>,
) -> thrift::Result<Vec<T>> {
    let list = p.read_list_begin()?;
    let mut out = Vec::new();
    for _ in 0..list.size {
        if list.element_type == TType::Struct {
            out.push(item(p)?);
        } else {
            p.skip(list.element_type)?;
        }
    }
    p.read_list_end()?;
    Ok(out)
}

fn batch<P: TInputProtocol>(p: &mut P) -> thrift::Result<Batch> {
    let mut out = Batch::default();
    read_struct(p, |p, id, ty| match (id, ty) {
        (1, TType::Struct) => {
            out.process = Some(process(p)?);
            Ok(())
        }
        (2, TType::List) => {
            out.spans = read_list(p, span)?;
            Ok(())
        }
        _ => p.skip(ty),
    })?;
    Ok(out)
}

fn process<P: TInputProtocol>(p: &mut P) -> thrift::Result<Process> {
    let mut out = Process::default();
    read_struct(p, |p, id, ty| match (id, ty) {
        (1, TType::String) => {
            out.service_name = p.read_string()?;
            Ok(())
        }
        (2, TType::List) => {
            out.tags = read_list(p, tag)?;
            Ok(())
        }
        _ => p.skip(ty),
    })?;
    Ok(out)
}

fn span<P: TInputProtocol>(p: &mut P) -> thrift::Result<Span> {
    let (mut low, mut high, mut start_us, mut duration_us) = (0i64, 0i64, 0i64, 0i64);
    let mut out = Span::default();
    read_struct(p, |p, id, ty| {
        match (id, ty) {
            (1, TType::I64) => low = p.read_i64()?,
            (2, TType::I64) => high = p.read_i64()?,
            (3, TType::I64) => out.span_id = p.read_i64()?.to_be_bytes(),
            (4, TType::I64) => out.parent_span_id = p.read_i64()?.to_be_bytes(),
            (5, TType::String) => out.operation_name = p.read_string()?,
            (6, TType::List) => out.references = read_list(p, reference)?,
            (8, TType::I64) => start_us = p.read_i64()?,
            (9, TType::I64) => duration_us = p.read_i64()?,
            (10, TType::List) => out.tags = read_list(p, tag)?,
            (11, TType::List) => out.logs = read_list(p, log)?,
            _ => p.skip(ty)?,
        }
        Ok(())
    })?;
    out.trace_id = trace_id(high as u64, low as u64);
    out.start_unix_nano = micros_to_nanos(start_us);
    out.duration_nano = micros_to_nanos(duration_us);
    Ok(out)
}

fn micros_to_nanos(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1000)
}

fn reference<P: TInputProtocol>(p: &mut P) -> thrift::Result<Reference> {
    let (mut ref_type, mut low, mut high, mut span_id) = (0i32, 0i64, 0i64, 0i64);
    read_struct(p, |p, id, ty| {
        match (id, ty) {
            (1, TType::I32) => ref_type = p.read_i32()?,
            (2, TType::I64) => low = p.read_i64()?,
            (3, TType::I64) => high = p.read_i64()?,
            (4, TType::I64) => span_id = p.read_i64()?,
            _ => p.skip(ty)?,
        }
        Ok(())
    })?;
    Ok(Reference {
        ref_type: if ref_type == 1 {
            RefType::FollowsFrom
        } else {
            RefType::ChildOf
        },
        trace_id: trace_id(high as u64, low as u64),
        span_id: span_id.to_be_bytes(),
    })
}

fn log<P: TInputProtocol>(p: &mut P) -> thrift::Result<Log> {
    let mut out = Log {
        time_unix_nano: 0,
        fields: Vec::new(),
    };
    read_struct(p, |p, id, ty| {
        match (id, ty) {
            (1, TType::I64) => out.time_unix_nano = micros_to_nanos(p.read_i64()?),
            (2, TType::List) => out.fields = read_list(p, tag)?,
            _ => p.skip(ty)?,
        }
        Ok(())
    })?;
    Ok(out)
}

/// `TagType { STRING, DOUBLE, BOOL, LONG, BINARY }`: the value field the type names becomes the value.
fn tag<P: TInputProtocol>(p: &mut P) -> thrift::Result<KeyValue> {
    let mut key = String::new();
    let mut v_type = 0i32;
    let (mut v_str, mut v_double, mut v_bool, mut v_long, mut v_binary) =
        (None, None, None, None, None);
    read_struct(p, |p, id, ty| {
        match (id, ty) {
            (1, TType::String) => key = p.read_string()?,
            (2, TType::I32) => v_type = p.read_i32()?,
            (3, TType::String) => v_str = Some(p.read_string()?),
            (4, TType::Double) => v_double = Some(p.read_double()?),
            (5, TType::Bool) => v_bool = Some(p.read_bool()?),
            (6, TType::I64) => v_long = Some(p.read_i64()?),
            (7, TType::String) => v_binary = Some(p.read_bytes()?),
            _ => p.skip(ty)?,
        }
        Ok(())
    })?;
    let value = match v_type {
        1 => any_value::Value::DoubleValue(v_double.unwrap_or_default()),
        2 => any_value::Value::BoolValue(v_bool.unwrap_or_default()),
        3 => any_value::Value::IntValue(v_long.unwrap_or_default()),
        4 => any_value::Value::BytesValue(v_binary.unwrap_or_default()),
        0 => any_value::Value::StringValue(v_str.unwrap_or_default()),
        other => any_value::Value::StringValue(format!("<Unknown Jaeger TagType {other}>")),
    };
    Ok(attribute(&key, value))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    //! An encoder for the tests, written against the same IDL with the crate's output protocols.

    use thrift::protocol::{
        TBinaryOutputProtocol, TCompactOutputProtocol, TFieldIdentifier, TListIdentifier,
        TMessageIdentifier, TOutputProtocol, TStructIdentifier,
    };

    use super::*;

    fn field(p: &mut dyn TOutputProtocol, ty: TType, id: i16) {
        p.write_field_begin(&TFieldIdentifier::new("f", ty, id))
            .unwrap();
    }

    fn tag(p: &mut dyn TOutputProtocol, key: &str, value: &any_value::Value) {
        p.write_struct_begin(&TStructIdentifier::new("Tag"))
            .unwrap();
        field(p, TType::String, 1);
        p.write_string(key).unwrap();
        p.write_field_end().unwrap();
        field(p, TType::I32, 2);
        let v_type = match value {
            any_value::Value::StringValue(_) => 0,
            any_value::Value::DoubleValue(_) => 1,
            any_value::Value::BoolValue(_) => 2,
            any_value::Value::IntValue(_) => 3,
            _ => 4,
        };
        p.write_i32(v_type).unwrap();
        p.write_field_end().unwrap();
        match value {
            any_value::Value::StringValue(s) => {
                field(p, TType::String, 3);
                p.write_string(s).unwrap();
            }
            any_value::Value::DoubleValue(d) => {
                field(p, TType::Double, 4);
                p.write_double(*d).unwrap();
            }
            any_value::Value::BoolValue(b) => {
                field(p, TType::Bool, 5);
                p.write_bool(*b).unwrap();
            }
            any_value::Value::IntValue(i) => {
                field(p, TType::I64, 6);
                p.write_i64(*i).unwrap();
            }
            any_value::Value::BytesValue(b) => {
                field(p, TType::String, 7);
                p.write_bytes(b).unwrap();
            }
            _ => unreachable!(),
        }
        p.write_field_end().unwrap();
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
    }

    fn tags(p: &mut dyn TOutputProtocol, id: i16, kvs: &[KeyValue]) {
        field(p, TType::List, id);
        p.write_list_begin(&TListIdentifier::new(TType::Struct, kvs.len() as i32))
            .unwrap();
        for kv in kvs {
            tag(
                p,
                &kv.key,
                kv.value.as_ref().unwrap().value.as_ref().unwrap(),
            );
        }
        p.write_list_end().unwrap();
        p.write_field_end().unwrap();
    }

    fn i64_field(p: &mut dyn TOutputProtocol, id: i16, v: i64) {
        field(p, TType::I64, id);
        p.write_i64(v).unwrap();
        p.write_field_end().unwrap();
    }

    fn batch(p: &mut dyn TOutputProtocol, b: &Batch) {
        p.write_struct_begin(&TStructIdentifier::new("Batch"))
            .unwrap();
        let process = b.process.clone().unwrap_or_default();
        field(p, TType::Struct, 1);
        p.write_struct_begin(&TStructIdentifier::new("Process"))
            .unwrap();
        field(p, TType::String, 1);
        p.write_string(&process.service_name).unwrap();
        p.write_field_end().unwrap();
        tags(p, 2, &process.tags);
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
        p.write_field_end().unwrap();
        field(p, TType::List, 2);
        p.write_list_begin(&TListIdentifier::new(TType::Struct, b.spans.len() as i32))
            .unwrap();
        for s in &b.spans {
            let half = |i: usize| i64::from_be_bytes(s.trace_id[i..i + 8].try_into().unwrap());
            p.write_struct_begin(&TStructIdentifier::new("Span"))
                .unwrap();
            i64_field(p, 1, half(8));
            i64_field(p, 2, half(0));
            i64_field(p, 3, i64::from_be_bytes(s.span_id));
            i64_field(p, 4, i64::from_be_bytes(s.parent_span_id));
            field(p, TType::String, 5);
            p.write_string(&s.operation_name).unwrap();
            p.write_field_end().unwrap();
            field(p, TType::List, 6);
            p.write_list_begin(&TListIdentifier::new(
                TType::Struct,
                s.references.len() as i32,
            ))
            .unwrap();
            for r in &s.references {
                p.write_struct_begin(&TStructIdentifier::new("SpanRef"))
                    .unwrap();
                field(p, TType::I32, 1);
                p.write_i32(i32::from(r.ref_type == RefType::FollowsFrom))
                    .unwrap();
                p.write_field_end().unwrap();
                i64_field(
                    p,
                    2,
                    i64::from_be_bytes(r.trace_id[8..].try_into().unwrap()),
                );
                i64_field(
                    p,
                    3,
                    i64::from_be_bytes(r.trace_id[..8].try_into().unwrap()),
                );
                i64_field(p, 4, i64::from_be_bytes(r.span_id));
                p.write_field_stop().unwrap();
                p.write_struct_end().unwrap();
            }
            p.write_list_end().unwrap();
            p.write_field_end().unwrap();
            field(p, TType::I32, 7);
            p.write_i32(1).unwrap();
            p.write_field_end().unwrap();
            i64_field(p, 8, (s.start_unix_nano / 1000) as i64);
            i64_field(p, 9, (s.duration_nano / 1000) as i64);
            tags(p, 10, &s.tags);
            field(p, TType::List, 11);
            p.write_list_begin(&TListIdentifier::new(TType::Struct, s.logs.len() as i32))
                .unwrap();
            for l in &s.logs {
                p.write_struct_begin(&TStructIdentifier::new("Log"))
                    .unwrap();
                i64_field(p, 1, (l.time_unix_nano / 1000) as i64);
                tags(p, 2, &l.fields);
                p.write_field_stop().unwrap();
                p.write_struct_end().unwrap();
            }
            p.write_list_end().unwrap();
            p.write_field_end().unwrap();
            // An unknown field, as a newer client might send: skipped.
            field(p, TType::String, 99);
            p.write_string("from the future").unwrap();
            p.write_field_end().unwrap();
            p.write_field_stop().unwrap();
            p.write_struct_end().unwrap();
        }
        p.write_list_end().unwrap();
        p.write_field_end().unwrap();
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
    }

    /// `Agent.emitBatch` as a client's UDP packet.
    pub fn emit_batch_packet(b: &Batch, protocol: Protocol) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut compact;
            let mut binary;
            let p: &mut dyn TOutputProtocol = match protocol {
                Protocol::Compact => {
                    compact = TCompactOutputProtocol::new(&mut out);
                    &mut compact
                }
                Protocol::Binary => {
                    binary = TBinaryOutputProtocol::new(&mut out, true);
                    &mut binary
                }
            };
            p.write_message_begin(&TMessageIdentifier::new(
                "emitBatch",
                TMessageType::OneWay,
                1,
            ))
            .unwrap();
            p.write_struct_begin(&TStructIdentifier::new("emitBatch_args"))
                .unwrap();
            field(p, TType::Struct, 1);
            batch(p, b);
            p.write_field_end().unwrap();
            p.write_field_stop().unwrap();
            p.write_struct_end().unwrap();
            p.write_message_end().unwrap();
            p.flush().unwrap();
        }
        out
    }

    /// A collector HTTP body: the binary `Batch` alone.
    pub fn batch_body(b: &Batch) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut p = TBinaryOutputProtocol::new(&mut out, true);
            batch(&mut p, b);
            p.flush().unwrap();
        }
        out
    }

    pub fn sample_batch() -> Batch {
        use super::super::span::int_attribute;
        use crate::model::string_attribute;
        let t = trace_id(0x1122334455667788, 0x99aabbccddeeff00);
        Batch {
            process: Some(Process {
                service_name: "frontend".into(),
                tags: vec![string_attribute("hostname", "h1")],
            }),
            spans: vec![
                Span {
                    trace_id: t,
                    span_id: 1i64.to_be_bytes(),
                    operation_name: "GET /".into(),
                    start_unix_nano: 1_700_000_000_000_000_000,
                    duration_nano: 3_000_000,
                    tags: vec![
                        string_attribute("span.kind", "server"),
                        int_attribute("http.status_code", 200),
                        attribute("sampler.param", any_value::Value::DoubleValue(0.5)),
                        attribute("error", any_value::Value::BoolValue(false)),
                        attribute("blob", any_value::Value::BytesValue(vec![1, 2])),
                    ],
                    ..Default::default()
                },
                Span {
                    trace_id: t,
                    span_id: 2i64.to_be_bytes(),
                    parent_span_id: 1i64.to_be_bytes(),
                    operation_name: "SELECT".into(),
                    references: vec![Reference {
                        ref_type: RefType::FollowsFrom,
                        trace_id: trace_id(0, 5),
                        span_id: 6i64.to_be_bytes(),
                    }],
                    start_unix_nano: 1_700_000_000_001_000_000,
                    duration_nano: 1_000_000,
                    tags: vec![string_attribute("span.kind", "client")],
                    logs: vec![Log {
                        time_unix_nano: 1_700_000_000_001_500_000,
                        fields: vec![string_attribute("event", "cache miss")],
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn reads_what_the_idl_describes_in_both_protocols() {
        let want = sample_batch();
        for protocol in [Protocol::Compact, Protocol::Binary] {
            let packet = emit_batch_packet(&want, protocol);
            let got = read_emit_batch(&packet, protocol).unwrap();
            assert_eq!(got, want, "{protocol:?}");
        }
        assert_eq!(read_batch(&batch_body(&want)).unwrap(), want, "HTTP body");
    }

    #[test]
    fn truncated_garbage_and_wrong_protocols_are_errors_not_panics() {
        let packet = emit_batch_packet(&sample_batch(), Protocol::Compact);
        for cut in [0, 1, 5, packet.len() / 2, packet.len() - 1] {
            assert!(
                read_emit_batch(&packet[..cut], Protocol::Compact).is_err(),
                "truncated at {cut}"
            );
        }
        assert!(read_emit_batch(b"GET / HTTP/1.1\r\n\r\n", Protocol::Binary).is_err());
        assert!(
            read_emit_batch(&packet, Protocol::Binary).is_err(),
            "compact read as binary"
        );
        // A string length far beyond the packet must not allocate it.
        let mut huge = emit_batch_packet(&sample_batch(), Protocol::Binary);
        let name_len = huge.iter().position(|&b| b == b'e').unwrap() - 4;
        huge[name_len..name_len + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(read_emit_batch(&huge, Protocol::Binary).is_err());
        // Pseudo-random bytes never panic.
        let mut x = 0x2545f4914f6cdd1du64;
        for len in 0..400usize {
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = read_emit_batch(&noise, Protocol::Compact);
            let _ = read_emit_batch(&noise, Protocol::Binary);
            let _ = read_batch(&noise);
        }
    }

    /// Packets captured from the real clients (`testdata/`): Python's jaeger-client sends compact, the
    /// Node.js client binary; each reported a server span "parent" and its child "child" with a log.
    #[test]
    fn decodes_packets_real_clients_sent() {
        let cases: [(&[u8], Protocol, &str); 2] = [
            (
                include_bytes!("testdata/python-jaeger-client-4.8.0.compact.bin"),
                Protocol::Compact,
                "py-svc",
            ),
            (
                include_bytes!("testdata/node-jaeger-client-3.19.0.binary.bin"),
                Protocol::Binary,
                "node-svc",
            ),
        ];
        for (packet, protocol, service) in cases {
            let batch = read_emit_batch(packet, protocol).unwrap();
            assert_eq!(batch.process.as_ref().unwrap().service_name, service);
            let find = |name: &str| {
                batch
                    .spans
                    .iter()
                    .find(|s| s.operation_name == name)
                    .unwrap_or_else(|| panic!("{service}: no span {name}"))
            };
            let (parent, child) = (find("parent"), find("child"));
            assert_eq!(child.trace_id, parent.trace_id, "{service}");
            assert_eq!(child.parent_span_id, parent.span_id, "{service}");
            assert_eq!(child.logs.len(), 1, "{service}");
            assert!(
                child.start_unix_nano > 1_600_000_000_000_000_000,
                "{service}: µs to ns"
            );
        }
    }

    #[test]
    fn a_body_with_bytes_after_its_batch_is_refused() {
        let mut body = batch_body(&sample_batch());
        assert!(read_batch(&body).is_ok());
        body.extend_from_slice(&[0, 0, 0]);
        let err = read_batch(&body).err().unwrap();
        assert!(matches!(err, ThriftError::Trailing(3)), "{err}");
        assert!(
            err.to_string().contains("3 bytes follow the Batch"),
            "{err}"
        );
    }

    #[test]
    fn other_agent_methods_are_refused_by_name() {
        let mut out = Vec::new();
        {
            let mut p = TCompactOutputProtocol::new(&mut out);
            p.write_message_begin(&TMessageIdentifier::new(
                "emitZipkinBatch",
                TMessageType::OneWay,
                1,
            ))
            .unwrap();
            p.flush().unwrap();
        }
        assert!(matches!(
            read_emit_batch(&out, Protocol::Compact),
            Err(ThriftError::Method(m)) if m == "emitZipkinBatch"
        ));
    }
}
