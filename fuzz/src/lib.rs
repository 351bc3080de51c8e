//! The fuzz targets' bodies. Each `fuzz_targets/<name>.rs` calls [`run`] with its own name under
//! libFuzzer (`make fuzz`); `tests/replay.rs` calls it on every committed corpus and regression input
//! (`make test`), so a crash found once stays fixed.
//!
//! A target fails by panicking: on the filter's side any panic is a bug (a panic kills the VM and the
//! sidecar's traffic with it), and so is a broken invariant (`assert!` below): headers we write must be
//! valid HTTP header values, and what we write must read back as what we meant. On the collector's side a
//! decoder must answer every input with a value or an error, never a panic, a hang or unbounded memory.

pub mod collector;
pub mod filter;
mod input;

/// Every target, by the name of its `fuzz_targets/` file and corpus folder.
pub const TARGETS: &[&str] = &[
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "jaeger",
    "request_path",
    "exporter",
    "plugin_config",
    "header_map",
    "otlp_proto",
    "otlp_json",
    "zipkin_json",
    "zipkin_proto",
    "zipkin_v1",
    "jaeger_thrift",
    "jaeger_proto",
    "query_params",
    "traceql",
    "store_record",
    "stored_part",
    "gunzip",
];

/// Runs target `name` on one input; false when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "traceparent" => filter::traceparent(data),
        "tracestate" => filter::tracestate(data),
        "baggage" => filter::baggage(data),
        "b3" => filter::b3(data),
        "jaeger" => filter::jaeger(data),
        "request_path" => filter::request_path(data),
        "exporter" => filter::exporter(data),
        "plugin_config" => filter::plugin_config(data),
        "header_map" => filter::header_map(data),
        "otlp_proto" => collector::otlp_proto(data),
        "otlp_json" => collector::otlp_json(data),
        "zipkin_json" => collector::zipkin_json(data),
        "zipkin_proto" => collector::zipkin_proto(data),
        "zipkin_v1" => collector::zipkin_v1(data),
        "jaeger_thrift" => collector::jaeger_thrift(data),
        "jaeger_proto" => collector::jaeger_proto(data),
        "query_params" => collector::query_params(data),
        "traceql" => collector::traceql(data),
        "store_record" => collector::store_record(data),
        "stored_part" => collector::stored_part(data),
        "gunzip" => collector::gunzip(data),
        _ => return false,
    }
    true
}
