//! Store-level tests: idempotent writes, index queries and retention.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, Span, Status};

use super::*;
use crate::model::{string_attribute, SpanRecord};

fn rec(trace: u8, span: u8, service: &str, start_us: u64, error: bool) -> SpanRecord {
    let resource = Resource {
        attributes: vec![string_attribute("service.name", service)],
        ..Default::default()
    };
    let span = Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        name: "op".into(),
        start_time_unix_nano: start_us * 1000,
        end_time_unix_nano: (start_us + 10) * 1000,
        status: error.then(|| Status {
            code: status::StatusCode::Error as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    SpanRecord::new(resource, InstrumentationScope::default(), span).unwrap()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    (dir, store)
}

fn query(service: &str) -> TraceQuery {
    TraceQuery {
        service: service.into(),
        end_us: u64::MAX,
        limit: 100,
        ..Default::default()
    }
}

#[test]
fn retried_writes_are_idempotent() {
    let (_dir, store) = open();
    let r = rec(1, 1, "a", 100, false);
    store.write_spans(std::slice::from_ref(&r)).unwrap();
    let bytes = store.stored_bytes().unwrap();
    store.write_spans(&[r.clone(), r]).unwrap();
    assert_eq!(
        store.stored_bytes().unwrap(),
        bytes,
        "a duplicate adds nothing"
    );
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 1);
    assert_eq!(store.find_traces(&query("a")).unwrap(), vec![[1u8; 16]]);
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store
            .write_spans(&[rec(1, 1, "a", 100, false), rec(1, 2, "b", 120, false)])
            .unwrap();
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 2);
    assert_eq!(
        store.services().unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );
}

#[test]
fn retention_by_age_keeps_error_traces_longer() {
    let (_dir, store) = open();
    store
        .write_spans(&[
            rec(1, 1, "a", 1_000, false),
            rec(2, 1, "a", 1_000, true),
            rec(3, 1, "a", 9_000, false),
        ])
        .unwrap();
    let policy = RetentionPolicy {
        max_age_us: 5_000,
        error_max_age_us: Some(9_500),
        max_bytes: 0,
    };
    let report = store.apply_retention(&policy, 10_000).unwrap();
    assert_eq!(
        report.expired_by_age, 1,
        "only the old non-error trace goes"
    );
    assert!(store.trace(&[1; 16]).unwrap().is_empty());
    assert_eq!(
        store.trace(&[2; 16]).unwrap().len(),
        1,
        "error trace kept longer"
    );
    assert_eq!(store.trace(&[3; 16]).unwrap().len(), 1, "young trace kept");
    assert_eq!(
        store.find_traces(&query("a")).unwrap().len(),
        2,
        "indexes follow deletions"
    );
    let report = store.apply_retention(&policy, 11_000).unwrap();
    assert_eq!(
        report.expired_by_age, 1,
        "the error trace expires after its own age"
    );
    assert!(store.trace(&[2; 16]).unwrap().is_empty());
}

#[test]
fn retention_by_size_removes_oldest_first() {
    let (_dir, store) = open();
    for t in 1..=10u8 {
        store
            .write_spans(&[rec(t, 1, "a", u64::from(t) * 100, t == 1)])
            .unwrap();
    }
    let per_trace = store.stored_bytes().unwrap() / 10;
    let policy = RetentionPolicy {
        max_age_us: 0,
        error_max_age_us: None,
        max_bytes: per_trace * 5,
    };
    let report = store.apply_retention(&policy, 0).unwrap();
    assert!(report.expired_by_size >= 5, "{report:?}");
    assert!(store.stored_bytes().unwrap() <= per_trace * 5);
    assert_eq!(
        store.trace(&[1; 16]).unwrap().len(),
        1,
        "the error trace is the last to go"
    );
    assert!(
        store.trace(&[2; 16]).unwrap().is_empty(),
        "oldest non-error trace went first"
    );
    assert_eq!(store.trace(&[10; 16]).unwrap().len(), 1, "newest kept");
}

#[test]
fn dependencies_count_cross_service_edges() {
    let (_dir, store) = open();
    let parent = rec(1, 1, "front", 100, false);
    let mut child = rec(1, 2, "cart", 110, false);
    child.span.parent_span_id = vec![1; 8];
    let mut same = rec(1, 3, "front", 120, false);
    same.span.parent_span_id = vec![1; 8];
    store.write_spans(&[parent, child, same]).unwrap();
    let deps = store.dependencies(0, 1_000).unwrap();
    assert_eq!(
        deps,
        vec![Dependency {
            parent: "front".into(),
            child: "cart".into(),
            call_count: 1
        }]
    );
    assert!(
        store.dependencies(500, 1_000).unwrap().is_empty(),
        "outside the window"
    );
}
