//! Store-level tests: idempotent writes, index queries and retention.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, Span, Status};

use super::*;
use crate::model::{string_attribute, SpanRecord, TraceId};

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
        service: Some(service.into()),
        end_us: u64::MAX,
        limit: 100,
        ..Default::default()
    }
}

#[test]
fn a_retry_of_a_deleted_part_is_stored_again() {
    // The part is remembered as committed lately, but retention deleted it: fjall is asked and says no.
    let (_dir, store) = open();
    let r = rec(1, 1, "a", 100, false);
    store.write_spans(std::slice::from_ref(&r)).unwrap();
    store.delete_traces(&[[1; 16]]).unwrap();
    store.write_spans(std::slice::from_ref(&r)).unwrap();
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 1);
    assert!(store.stored_bytes().unwrap() > 0);
}

#[test]
fn a_retry_of_a_part_sealed_into_a_run_is_recognised() {
    // The part's chunk is found through a run of the trace index (on disk, behind its filter), not the
    // open window: the retry adds nothing, and the trace reads once.
    let (_dir, store) = open();
    let r = rec(1, 1, "a", 100, false);
    store.write_spans(std::slice::from_ref(&r)).unwrap();
    let bytes = store.stored_bytes().unwrap();
    assert!(store.index.seal(&store.db).unwrap(), "a run was written");
    assert_eq!(store.index.counts(), (1, 0), "one run, nothing left open");
    store.write_spans(std::slice::from_ref(&r)).unwrap();
    assert_eq!(store.stored_bytes().unwrap(), bytes, "recognised as stored");
    assert_eq!(store.chunks.len().unwrap(), 1);
    assert_eq!(store.trace(&[1; 16]).unwrap(), vec![r]);
    assert!(store.trace(&[2; 16]).unwrap().is_empty());
}

#[test]
fn traces_are_found_in_runs_in_the_open_window_and_after_a_restart_in_both() {
    let dir = tempfile::tempdir().unwrap();
    // 255 traces of 2 spans each write, 3 writes: runs of several pages, every trace in two runs and
    // the open window.
    let write = |store: &Store, round: u8| {
        let records: Vec<SpanRecord> = (1..=255u8)
            .flat_map(|t| {
                [
                    rec(t, round, "a", 100, false),
                    rec(t, round + 100, "b", 110, false),
                ]
            })
            .collect();
        store.write_spans(&records).unwrap();
    };
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        write(&store, 1);
        assert!(store.index.seal(&store.db).unwrap());
        write(&store, 2);
        assert!(store.index.seal(&store.db).unwrap());
        write(&store, 3);
        assert_eq!(store.index.counts(), (2, 255), "the third write is open");
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        store.index.counts(),
        (2, 255),
        "runs loaded, the open window read again from its pending key"
    );
    for t in [1u8, 127, 128, 255] {
        let mut spans: Vec<u8> = store
            .trace(&[t; 16])
            .unwrap()
            .iter()
            .map(|r| r.span_id[0])
            .collect();
        spans.sort_unstable();
        assert_eq!(spans, [1, 2, 3, 101, 102, 103], "trace {t}");
    }
    assert!(store.index.seal(&store.db).unwrap());
    let keys = store.index.view().unwrap().chunks_of(&[9; 16]).unwrap();
    assert_eq!(keys.len(), 3, "one chunk per write, each once");
}

#[test]
fn a_trace_in_more_chunks_than_a_run_page_holds_is_read_whole_from_the_run() {
    // 300 writes of one span each of trace 7 (and one of another trace each): trace 7's entries in the
    // run span three pages.
    let (_dir, store) = open();
    let span = |trace: u8, n: u16| {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", "a")],
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![trace; 16],
            span_id: [[1u8; 6].as_slice(), &n.to_be_bytes()].concat(),
            name: "op".into(),
            start_time_unix_nano: 100_000,
            end_time_unix_nano: 110_000,
            ..Default::default()
        };
        SpanRecord::new(resource, InstrumentationScope::default(), span).unwrap()
    };
    for n in 0..300u16 {
        store.write_spans(&[span(7, n), span(8, n)]).unwrap();
    }
    assert!(store.index.seal(&store.db).unwrap());
    assert_eq!(store.index.counts(), (1, 0));
    assert_eq!(store.trace(&[7; 16]).unwrap().len(), 300);
    assert_eq!(store.trace(&[8; 16]).unwrap().len(), 300);
    store.delete_traces(&[[7; 16]]).unwrap();
    assert!(store.trace(&[7; 16]).unwrap().is_empty());
    assert_eq!(
        store.trace(&[8; 16]).unwrap().len(),
        300,
        "the other trace stays whole"
    );
}

#[test]
fn a_window_whose_seal_failed_stays_readable_and_is_sealed_before_the_next() {
    // Sealing a window deletes the pending keys up to its last: had the newer window been sealed
    // while the failed one waited, the failed one's pending key would have gone with it, and its
    // trace been lost at the next restart.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store.write_spans(&[rec(1, 1, "a", 100, false)]).unwrap();
        store
            .index
            .fail_next_seal
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(store.index.seal(&store.db).is_err());
        assert!(store.index.due(), "a failed window is due at once");
        store.write_spans(&[rec(2, 1, "a", 100, false)]).unwrap();
        assert_eq!(store.trace(&[1; 16]).unwrap().len(), 1, "still readable");
        // The background sealer, nudged by the write, may seal the failed window first.
        while store.index.seal(&store.db).unwrap() {}
        assert_eq!(store.index.counts(), (2, 0), "both windows sealed");
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.index.counts(), (2, 0));
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 1);
    assert_eq!(store.trace(&[2; 16]).unwrap().len(), 1);
}

/// Waits until `done` holds (fjall's background flushes), for 30 s at most; the caller asserts.
fn wait_up_to_30s(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A store that got `r`, was restarted, then got `r` again (a retry it no longer recognises).
fn retried_after_a_restart(r: &SpanRecord) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store.write_spans(std::slice::from_ref(r)).unwrap();
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.write_spans(std::slice::from_ref(r)).unwrap();
    (dir, store)
}

#[test]
fn a_retry_after_a_restart_reads_once() {
    // Not remembered after a restart: written again under the same key, read once.
    let (_dir, store) = retried_after_a_restart(&rec(1, 1, "a", 100, false));
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 1);
    assert_eq!(store.find_traces(&query("a")).unwrap(), vec![[1u8; 16]]);
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

/// Retention walks every service's search entries merged by start: the oldest traces go first whatever
/// their service, a trace spread over several services and parts is taken once, by its earliest span.
#[test]
fn retention_takes_the_oldest_traces_across_services() {
    let (_dir, store) = open();
    // Trace 1 starts first (in "b") and has a later part in "a"; 2 (in "c") and 3 (in "a") are younger.
    store.write_spans(&[rec(1, 1, "b", 100, false)]).unwrap();
    store.write_spans(&[rec(2, 1, "c", 200, false)]).unwrap();
    store.write_spans(&[rec(3, 1, "a", 300, false)]).unwrap();
    store.write_spans(&[rec(1, 2, "a", 400, false)]).unwrap();
    let policy = RetentionPolicy {
        max_age_us: 250,
        error_max_age_us: None,
        max_bytes: 0,
    };
    let report = store.apply_retention(&policy, 500).unwrap();
    assert_eq!(
        report.expired_by_age, 2,
        "traces 1 and 2 started before 250"
    );
    assert!(
        store.trace(&[1; 16]).unwrap().is_empty(),
        "both parts of trace 1 went"
    );
    assert!(store.trace(&[2; 16]).unwrap().is_empty());
    assert_eq!(store.trace(&[3; 16]).unwrap().len(), 1, "young trace kept");
    store.write_spans(&[rec(4, 1, "b", 350, false)]).unwrap();
    let policy = RetentionPolicy {
        max_age_us: 0,
        error_max_age_us: None,
        max_bytes: store.stored_bytes().unwrap() - 1,
    };
    let report = store.apply_retention(&policy, 0).unwrap();
    assert_eq!(report.expired_by_size, 1, "{report:?}");
    assert!(
        store.trace(&[3; 16]).unwrap().is_empty(),
        "the oldest left goes by size"
    );
    assert_eq!(store.trace(&[4; 16]).unwrap().len(), 1);
}

#[test]
fn dependencies_count_cross_service_edges() {
    let (_dir, store) = open();
    let parent = rec(1, 1, "front", 100, false);
    let mut child = rec(1, 2, "cart", 110, true);
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
            call_count: 1,
            error_count: 1,
        }],
        "one call, failed because the child span is an error"
    );
    assert!(
        store.dependencies(500, 1_000).unwrap().is_empty(),
        "outside the window"
    );
}

fn tagged(trace: u8, span: u8, start_us: u64, dur_us: u64, tags: &[(&str, &str)]) -> SpanRecord {
    let mut r = rec(trace, span, "a", start_us, false);
    r.span.end_time_unix_nano = (start_us + dur_us) * 1000;
    r.span.attributes = tags.iter().map(|(k, v)| string_attribute(k, *v)).collect();
    r
}

#[test]
fn one_span_must_match_every_condition() {
    let (_dir, store) = open();
    // Trace 1: one span has route=/x, another is slow: no single span matches both.
    store
        .write_spans(&[
            tagged(1, 1, 100, 5, &[("http.route", "/x")]),
            tagged(1, 2, 100, 500, &[("http.route", "/y")]),
            tagged(2, 1, 200, 500, &[("http.route", "/x")]),
        ])
        .unwrap();
    let q = TraceQuery {
        tags: vec![TagMatch::exact("http.route", "/x")],
        min_duration_us: Some(100),
        ..query("a")
    };
    assert_eq!(store.find_traces(&q).unwrap(), vec![[2u8; 16]]);
    let q = TraceQuery {
        max_duration_us: Some(10),
        ..query("a")
    };
    assert_eq!(
        store.find_traces(&q).unwrap(),
        vec![[1u8; 16]],
        "duration only"
    );
    let q = TraceQuery {
        tags: vec![
            TagMatch::exact("http.route", "/x"),
            TagMatch::exact("http.route", "/y"),
        ],
        ..query("a")
    };
    assert!(
        store.find_traces(&q).unwrap().is_empty(),
        "two tags, two spans"
    );
}

#[test]
fn high_cardinality_and_long_tags_are_found() {
    let (_dir, store) = open();
    store
        .write_spans(&[
            tagged(1, 1, 100, 5, &[("client.address", "10.0.0.1")]),
            tagged(2, 1, 200, 5, &[("client.address", "10.0.0.2")]),
        ])
        .unwrap();
    let q = TraceQuery {
        tags: vec![TagMatch::exact("client.address", "10.0.0.1")],
        ..query("a")
    };
    assert_eq!(store.find_traces(&q).unwrap(), vec![[1u8; 16]]);
    let long = "v".repeat(10_000);
    store
        .write_spans(&[tagged(3, 1, 300, 5, &[("note", long.as_str())])])
        .unwrap();
    let q = TraceQuery {
        tags: vec![TagMatch::exact("note", long)],
        ..query("a")
    };
    assert_eq!(store.find_traces(&q).unwrap(), vec![[3u8; 16]]);
}

#[test]
fn parts_of_one_trace_from_several_commits_read_as_one() {
    let (_dir, store) = open();
    store.write_spans(&[rec(1, 1, "a", 100, false)]).unwrap();
    store
        .write_spans(&[rec(1, 2, "b", 150, true), rec(1, 1, "a", 100, false)])
        .unwrap();
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 2, "span 1 shown once");
    let s = store.trace_summary(&[1; 16]).unwrap().unwrap();
    assert_eq!((s.start_us, s.end_us, s.error), (100, 160, true));
    assert_eq!(store.find_traces(&query("b")).unwrap(), vec![[1u8; 16]]);
    // Time window: only the part that starts inside it answers.
    let q = TraceQuery {
        start_us: 140,
        ..query("a")
    };
    assert!(
        store.find_traces(&q).unwrap().is_empty(),
        "a's span starts before the window"
    );
    store.delete_traces(&[[1; 16]]).unwrap();
    assert!(store.trace(&[1; 16]).unwrap().is_empty());
    assert!(store.find_traces(&query("a")).unwrap().is_empty());
    assert!(store.find_traces(&query("b")).unwrap().is_empty());
    assert_eq!(
        store.stored_bytes().unwrap(),
        0,
        "every byte counted is freed"
    );
}

#[test]
fn files_of_older_formats_are_refused_with_what_they_hold() {
    let cases = [
        ("traces.redb", "format 1 or 2"),
        ("traces", "format 3"),
        ("export-queue.redb", "not forwarded yet"),
        ("tail-pending.redb", "not decided yet"),
    ];
    for (file, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        if file.ends_with(".redb") {
            std::fs::write(dir.path().join(file), b"old").unwrap();
        } else {
            std::fs::create_dir(dir.path().join(file)).unwrap();
        }
        let err = Store::open(dir.path(), 1 << 20).err().unwrap();
        assert!(matches!(err, StoreError::Format(_)), "{file}: {err}");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.contains(file) && text.contains(says), "{file}: {text}");
        assert!(
            !dir.path().join("db").exists(),
            "{file}: nothing created next to it"
        );
    }
}

#[test]
fn a_keyspace_of_format_3_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), &StoreOptions::new(1 << 20)).unwrap();
        db.meta()
            .insert(schema::META_FORMAT, 3u64.to_be_bytes())
            .unwrap();
    }
    let err = Store::open(dir.path(), 1 << 20).err().unwrap();
    assert!(matches!(err, StoreError::Format(_)), "{err}");
    assert!(err.to_string().contains("holds store format 3"), "{err}");
}

#[test]
fn a_new_store_records_its_format_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), 1 << 20).unwrap());
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    let format = store.db.meta().get(schema::META_FORMAT).unwrap().unwrap();
    assert_eq!(schema::u64_value(&format), Some(schema::FORMAT_VERSION));
}

#[test]
fn deleting_a_trace_leaves_nothing_behind() {
    let (_dir, store) = open();
    store
        .write_spans(&[
            tagged(1, 1, 100, 5, &[("k", "v")]),
            rec(1, 2, "b", 120, true),
        ])
        .unwrap();
    store
        .write_spans(&[tagged(1, 3, 300, 5, &[("k", "w")])])
        .unwrap();
    assert_eq!(store.chunks.len().unwrap(), 2, "a chunk per write");
    store.delete_traces(&[[1; 16]]).unwrap();
    assert!(store.trace_summary(&[1; 16]).unwrap().is_none());
    assert!(
        store.search.is_empty().unwrap(),
        "no search entry left behind"
    );
    assert!(store.chunks.is_empty().unwrap(), "no chunk left behind");
    assert_eq!(store.stored_bytes().unwrap(), 0);
}

#[test]
fn a_stored_part_left_out_of_a_request_is_not_written_again() {
    let (_dir, store) = open();
    let (one, two) = (rec(1, 1, "a", 100, false), rec(2, 2, "a", 110, false));
    store.write_spans(std::slice::from_ref(&one)).unwrap();
    // The first part is recognised as stored: the second request's chunk is made for the second part
    // alone (its bytes hold both, as the request did), and the first part still points to the first.
    store.write_spans(&[one.clone(), two.clone()]).unwrap();
    assert_eq!(store.trace(&[1; 16]).unwrap(), vec![one]);
    assert_eq!(store.trace(&[2; 16]).unwrap(), vec![two]);
    let parts_per_chunk: Vec<Vec<[u8; 16]>> = store
        .chunks
        .iter()
        .map(|kv| {
            let (_, value) = kv.unwrap();
            let chunk = chunk::Chunk::decode(&value).unwrap();
            chunk.parts().map(|p| p.trace()).collect()
        })
        .collect();
    assert_eq!(parts_per_chunk, vec![vec![[1; 16]], vec![[2; 16]]]);
}

#[test]
fn a_chunk_stays_while_one_of_its_parts_is_left() {
    let (_dir, store) = open();
    store
        .write_spans(&[rec(1, 1, "a", 100, false), rec(2, 2, "a", 110, false)])
        .unwrap();
    assert_eq!(store.chunks.len().unwrap(), 1, "one write, one chunk");
    store.delete_traces(&[[1; 16]]).unwrap();
    assert_eq!(store.chunks.len().unwrap(), 1);
    assert!(store.trace(&[1; 16]).unwrap().is_empty());
    assert_eq!(
        store.trace(&[2; 16]).unwrap(),
        vec![rec(2, 2, "a", 110, false)]
    );
    store.delete_traces(&[[2; 16]]).unwrap();
    assert!(store.chunks.is_empty().unwrap());
    assert_eq!(store.stored_bytes().unwrap(), 0);
}

#[test]
fn a_part_stored_twice_by_a_retry_after_a_restart_reads_once_and_goes_whole() {
    // After a restart the retry is not recognised: its part is written again, into a new chunk. Both
    // copies are found, the spans shown once; deleting the trace deletes both.
    let r = rec(1, 1, "a", 100, false);
    let (_dir, store) = retried_after_a_restart(&r);
    assert_eq!(store.chunks.len().unwrap(), 2);
    assert_eq!(store.trace(&[1; 16]).unwrap(), vec![r]);
    store.delete_traces(&[[1; 16]]).unwrap();
    assert!(store.chunks.is_empty().unwrap());
    assert!(store.search.is_empty().unwrap());
    assert_eq!(store.stored_bytes().unwrap(), 0);
}

#[test]
fn a_trace_whose_chunk_is_missing_reads_as_empty_instead_of_failing() {
    let (_dir, store) = open();
    store
        .write_spans(&[rec(1, 1, "a", 100, false), rec(2, 1, "a", 100, false)])
        .unwrap();
    let key = store.chunks.first_key_value().unwrap().unwrap().0;
    store.chunks.remove(key).unwrap();
    assert!(store.trace(&[1; 16]).unwrap().is_empty());
    assert!(store.trace_skeletons(&[1; 16]).unwrap().is_empty());
    assert!(store.trace_summary(&[1; 16]).unwrap().is_none());
    store.delete_traces(&[[1; 16], [2; 16]]).unwrap();
    assert!(store.find_traces(&query("a")).unwrap().is_empty());
}

#[test]
fn retention_drops_the_runs_of_deleted_chunks_and_keeps_the_others() {
    let (_dir, store) = open();
    store.write_spans(&[rec(1, 1, "a", 100, false)]).unwrap();
    assert!(store.index.seal(&store.db).unwrap());
    store.write_spans(&[rec(2, 1, "a", 5_000, false)]).unwrap();
    assert!(store.index.seal(&store.db).unwrap());
    assert_eq!(store.index.counts(), (2, 0));
    let policy = RetentionPolicy {
        max_age_us: 1_000,
        error_max_age_us: None,
        max_bytes: 0,
    };
    let report = store.apply_retention(&policy, 2_000).unwrap();
    assert_eq!(report.expired_by_age, 1);
    assert_eq!(
        store.index.counts(),
        (1, 0),
        "the first run named only trace 1's chunk"
    );
    assert_eq!(store.trace(&[2; 16]).unwrap().len(), 1);
    store.apply_retention(&policy, 10_000).unwrap();
    assert_eq!(store.index.counts(), (0, 0));
    assert!(store
        .index
        .view()
        .unwrap()
        .chunks_of(&[2; 16])
        .unwrap()
        .is_empty());
}

#[test]
fn a_search_without_service_merges_every_service_newest_first() {
    let (_dir, store) = open();
    store
        .write_spans(&[
            rec(1, 1, "a", 100, false),
            rec(2, 1, "b", 300, false),
            rec(3, 1, "c", 200, true),
            rec(4, 1, "a", 400, false),
        ])
        .unwrap();
    let any = TraceQuery {
        service: None,
        ..query("")
    };
    assert_eq!(
        store.find_traces(&any).unwrap(),
        vec![[4u8; 16], [2; 16], [3; 16], [1; 16]],
        "all services, newest first"
    );
    let errors = TraceQuery {
        tags: vec![TagMatch::exact("error", "true")],
        ..any.clone()
    };
    assert_eq!(store.find_traces(&errors).unwrap(), vec![[3u8; 16]]);
    let limited = TraceQuery { limit: 2, ..any };
    assert_eq!(
        store.find_traces(&limited).unwrap(),
        vec![[4u8; 16], [2; 16]]
    );
}

#[test]
fn a_tag_condition_matches_any_of_its_keys() {
    let (_dir, store) = open();
    store
        .write_spans(&[
            tagged(1, 1, 100, 5, &[("http.response.status_code", "500")]),
            tagged(2, 1, 200, 5, &[("http.status_code", "500")]),
            tagged(3, 1, 300, 5, &[("http.status_code", "200")]),
        ])
        .unwrap();
    let q = TraceQuery {
        tags: vec![TagMatch {
            keys: vec![
                "http.status_code".into(),
                "http.response.status_code".into(),
            ],
            value: "500".into(),
        }],
        ..query("a")
    };
    assert_eq!(store.find_traces(&q).unwrap(), vec![[2u8; 16], [1; 16]]);
}

#[test]
fn scans_stop_at_the_deadline_and_say_so() {
    let (_dir, store) = open();
    store
        .write_spans(&[rec(1, 1, "a", 100, false), rec(2, 1, "a", 200, false)])
        .unwrap();
    let filter = query("a").scan_filter();
    let past = std::time::Instant::now();
    let report = store
        .scan(&filter, Some(past), |_, _| Ok(Flow::Continue))
        .unwrap();
    assert!(report.truncated && report.traces == 0, "{report:?}");
    let mut seen = Vec::new();
    let report = store
        .scan(&filter, None, |c, reader| {
            seen.push((c.trace, reader.skeletons(&c.trace)?.len()));
            Ok(Flow::Continue)
        })
        .unwrap();
    assert!(!report.truncated);
    assert_eq!(seen, vec![([2u8; 16], 1), ([1u8; 16], 1)]);
}

#[test]
fn a_write_that_would_eat_the_flush_reserve_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), &StoreOptions::new(1 << 20)).unwrap();
    db.check_space(1 << 10).unwrap();
    let err = db.check_space(u64::MAX / 4).err().unwrap();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    assert!(err.is_retryable(), "passes once space is freed");
    let text = err.to_string();
    assert!(text.contains(db.path().to_str().unwrap()), "{text}");
}

#[test]
fn the_compaction_reserve_grows_with_the_store_up_to_a_sixteenth_of_the_disk_and_1_gib() {
    use super::database::space_needed;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    // A new store on a big, nearly full disk: the spans twice and the memtables, no 1 GiB.
    assert_eq!(
        space_needed(MIB, 250 * GIB, 3 * MIB, 8 * MIB),
        2 * MIB + 8 * MIB + 3 * MIB
    );
    // A large store on a big disk: capped at 1 GiB.
    assert_eq!(space_needed(0, 250 * GIB, 40 * GIB, 0), GIB);
    // A large store on a small disk: a sixteenth of it.
    assert_eq!(space_needed(0, 1600 * MIB, 900 * MIB, 0), 100 * MIB);
    // Saturates instead of wrapping.
    assert_eq!(space_needed(u64::MAX, GIB, 0, 1), u64::MAX);
}

/// After a crash fjall 2.11 wakes its flusher once per partition with sealed memtables, and each wake
/// flushes at most `flush_workers` of them: with its default (2 on two cores) memtables beyond that stayed
/// queued for good, their bytes held the write buffer over its limit and the first commit after a
/// restart under load waited forever (`make soak` hung the collector this way). Here a keyspace whose
/// flusher never ran (fjall's `flush_workers(0)`) is left with six sealed memtables in each of eight
/// partitions, as a kill -9 leaves it; reopened as our store, every one of them is flushed.
#[test]
fn a_store_reopened_after_a_crash_flushes_every_sealed_memtable() {
    use fjall::{Config, PartitionCreateOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let keyspace = Config::new(&path).flush_workers(0).open().unwrap();
        let meta = keyspace
            .open_partition(schema::META, PartitionCreateOptions::default())
            .unwrap();
        meta.insert(schema::META_FORMAT, schema::FORMAT_VERSION.to_be_bytes())
            .unwrap();
        for p in 0..8 {
            let partition = keyspace
                .open_partition(&format!("p{p}"), PartitionCreateOptions::default())
                .unwrap();
            for round in 0..6u32 {
                partition
                    .insert(round.to_be_bytes(), vec![0u8; 64 << 10])
                    .unwrap();
                // fjall's own (hidden) rotation: seals the memtable and the journal, as its monitor does.
                assert!(partition.rotate_memtable().unwrap());
            }
        }
        keyspace.persist(fjall::PersistMode::SyncAll).unwrap();
        assert!(keyspace.write_buffer_size() >= 48 * (64 << 10));
    }
    let db = Database::open(dir.path(), &StoreOptions::new(1 << 20)).unwrap();
    // What stays is the active memtables: the format marker `Database::open` writes, well under one
    // 64 KiB value.
    let unflushed = || db.keyspace().write_buffer_size();
    wait_up_to_30s(|| unflushed() < 64 << 10);
    assert!(
        unflushed() < 64 << 10,
        "{} bytes of sealed memtables left unflushed after the restart",
        unflushed()
    );
}

#[test]
fn a_data_dir_that_is_a_file_or_damaged_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = Store::open(&file, 1 << 20).err().unwrap();
    assert!(matches!(err, StoreError::Unusable(_)), "{err}");
    assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");

    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), 1 << 20).unwrap());
    let version = dir.path().join("db").join("version");
    assert!(
        version.exists(),
        "fjall's version marker is where this test expects it"
    );
    std::fs::write(&version, b"garbage").unwrap();
    let err = Store::open(dir.path(), 1 << 20).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unusable(_)), "{text}");
    assert!(text.contains("move that directory away"), "{text}");
    assert!(
        text.contains(dir.path().join("db").to_str().unwrap()),
        "{text}"
    );
}

#[test]
fn a_deleted_trace_leaves_its_entry_and_the_other_traces_stay_found() {
    let (_dir, store) = open();
    store
        .write_spans(&[
            tagged(1, 1, 100, 5, &[("k", "v")]),
            tagged(2, 2, 110, 5, &[("k", "v")]),
        ])
        .unwrap();
    assert_eq!(
        store.search.len().unwrap(),
        1,
        "one entry per submission and service"
    );
    let tagged_v = TraceQuery {
        tags: vec![TagMatch::exact("k", "v")],
        ..query("a")
    };
    assert_eq!(
        store.find_traces(&tagged_v).unwrap(),
        vec![[2u8; 16], [1; 16]]
    );
    store.delete_traces(&[[2; 16]]).unwrap();
    assert_eq!(store.find_traces(&tagged_v).unwrap(), vec![[1u8; 16]]);
    assert_eq!(store.find_traces(&query("a")).unwrap(), vec![[1u8; 16]]);
    let (key, value) = store.search.first_key_value().unwrap().unwrap();
    let start = entry::key_start(&key).unwrap();
    let items: Vec<TraceId> = entry::EntryView::decode(start, &value)
        .unwrap()
        .items()
        .map(|i| i.trace)
        .collect();
    assert_eq!(
        items,
        vec![[1u8; 16]],
        "the entry lost the deleted trace's item"
    );
}

#[test]
fn items_come_in_exact_start_order_across_overlapping_entries() {
    let (_dir, store) = open();
    // The first write's starts spread wider than an entry may: two entries; the second write's entry
    // starts between them and ends after the first write's first entry.
    let wide = entry::ENTRY_SPREAD_US + 500_000;
    store
        .write_spans(&[rec(1, 1, "a", 100, false), rec(2, 1, "a", wide, false)])
        .unwrap();
    store
        .write_spans(&[rec(3, 1, "a", 300, false), rec(4, 1, "a", 400_000, false)])
        .unwrap();
    store
        .write_spans(&[rec(5, 1, "b", 200, false), rec(6, 1, "b", 350, false)])
        .unwrap();
    assert_eq!(store.search.len().unwrap(), 4);
    let any = TraceQuery {
        service: None,
        ..query("")
    };
    let newest_first = [[2u8; 16], [4; 16], [6; 16], [3; 16], [5; 16], [1; 16]];
    assert_eq!(store.find_traces(&any).unwrap(), newest_first);
    for limit in 1..newest_first.len() {
        let limited = TraceQuery {
            limit,
            ..any.clone()
        };
        assert_eq!(store.find_traces(&limited).unwrap(), newest_first[..limit]);
    }
    assert_eq!(
        store.find_traces(&query("a")).unwrap(),
        [[2u8; 16], [4; 16], [3; 16], [1; 16]]
    );
    // Oldest first goes by entries (their latest start), each entry's items in start order, and says
    // how early anything after an item can start.
    let at = store.keyspace.instant();
    let oldest: Vec<scan::Oldest> = store
        .oldest_first(at, 0, u64::MAX)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let order: Vec<(u64, u8)> = oldest.iter().map(|o| (o.start_us, o.trace[0])).collect();
    assert_eq!(
        order,
        [
            (100, 1),
            (200, 5),
            (350, 6),
            (300, 3),
            (400_000, 4),
            (wide, 2)
        ]
    );
    for (i, item) in oldest.iter().enumerate() {
        assert!(
            oldest[i + 1..].iter().all(|o| o.start_us >= item.floor_us),
            "nothing after {item:?} starts before its floor"
        );
    }
    assert_eq!(oldest[5].floor_us, wide - entry::ENTRY_SPREAD_US);
    let window: Vec<u8> = store
        .oldest_first(at, 250, 400_000)
        .unwrap()
        .map(|r| r.unwrap().trace[0])
        .collect();
    assert_eq!(window, [6, 3, 4], "only items starting in the window");
}

#[test]
fn an_item_left_by_a_trace_rewritten_after_a_restart_finds_nothing_once_it_is_deleted() {
    // After a restart the retry of trace 1 is not recognised: its part is written again, into a second
    // chunk. Deleting the trace deletes the second chunk and trims the first one's table and entry;
    // the first chunk stays for trace 2.
    let dir = tempfile::tempdir().unwrap();
    let one = rec(1, 1, "a", 100, false);
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store
            .write_spans(&[one.clone(), rec(2, 1, "a", 200, false)])
            .unwrap();
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.write_spans(std::slice::from_ref(&one)).unwrap();
    store.delete_traces(&[[1; 16]]).unwrap();
    assert_eq!(store.find_traces(&query("a")).unwrap(), vec![[2u8; 16]]);
    let everything = RetentionPolicy {
        max_age_us: 1,
        error_max_age_us: None,
        max_bytes: 0,
    };
    let report = store.apply_retention(&everything, 10_000).unwrap();
    assert_eq!(report.expired_by_age, 1, "trace 2 only, and the pass ends");
    assert!(store.chunks.is_empty().unwrap());
    assert!(store.search.is_empty().unwrap());
}

/// fjall's background threads are started while the keyspace opens, from a thread of lowered priority
/// (`crate::background`): they run below the thread that opened the store.
#[cfg(target_os = "linux")]
#[test]
fn the_keyspace_background_threads_run_at_lowered_priority() {
    use rustix::process::{getpriority_process, Pid};
    let ours = getpriority_process(Some(rustix::thread::gettid())).unwrap();
    let (_dir, _store) = open();
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap();
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let name = name.trim();
        if !matches!(name, "flusher" | "compactor" | "monitor") {
            continue;
        }
        let tid = task.file_name().to_str().unwrap().parse::<i32>().unwrap();
        // A thread of another test's store may have ended since it was listed.
        if let Ok(nice) = getpriority_process(Pid::from_raw(tid)) {
            found.push((name.to_string(), nice));
        }
    }
    for name in ["flusher", "compactor", "monitor"] {
        assert!(
            found.iter().any(|(n, _)| n == name),
            "no {name} thread among {found:?}"
        );
    }
    let lowered = (ours + crate::background::NICE_STEPS).min(19);
    assert!(
        found.iter().all(|(_, nice)| *nice == lowered),
        "fjall's threads {found:?}, expected nice {lowered}"
    );
}
