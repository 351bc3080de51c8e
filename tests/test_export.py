"""Export: batching, retries, and a collector that is down, slow or refusing
never failing or holding up requests."""
from meshtrace_testkit import free_port, request, wait_until
from meshtrace_testkit.sidecar import Sink


def test_spans_are_batched(sidecar):
    sc = sidecar({"exporter": {"maxBatchSpans": 5, "flushIntervalMs": 2000}})
    for _ in range(12):
        assert sc.get("/")[0] == 200
    sc.sink.wait_spans(12)
    sizes = [len(b.resource_spans[0].scope_spans[0].spans) for b in sc.sink.batches]
    assert sum(sizes) == 12 and max(sizes) <= 5, sizes
    assert sizes[:2] == [5, 5], "full batches go before the flush interval"


def test_export_request_headers(sidecar):
    sc = sidecar({"exporter": {"headers": {"authorization": "Bearer s3cret"}, "path": "/v1/traces"}})
    sc.get("/")
    sc.sink.wait_spans(1)
    h = sc.sink.last_headers
    assert h["content-type"] == "application/x-protobuf"
    assert h["authorization"] == "Bearer s3cret"


def test_unreachable_collector_never_fails_requests(sidecar):
    sc = sidecar({}, collector_port=free_port())  # nothing listens there
    for _ in range(30):
        assert sc.get("/call/x", timeout=5)[0] == 200
    wait_until(lambda: sc.envoy.stat("export_failures") > 0, what="export failures counted")
    assert sc.envoy.settled("spans_exported") == 0


def test_hanging_collector_never_holds_up_requests(sidecar):
    # The export timeout is 4 s; every request must finish within 1 s, so a
    # request waiting on an export would fail here.
    sc = sidecar({"exporter": {"timeoutMs": 4000, "flushIntervalMs": 50}})
    sc.sink.hang = True
    for _ in range(20):
        status, _, _ = request(sc.inbound_port, "/call/x", timeout=1)
        assert status == 200
    wait_until(lambda: sc.sink.attempts > 0, what="an export attempt")


def test_retryable_answers_are_retried_until_delivered(sidecar):
    sc = sidecar({})
    sc.sink.script = [503, 429]
    sc.sink.retry_after = "1"
    sc.get("/")
    spans = sc.sink.wait_spans(1, timeout=15)
    assert len(spans) == 1, "delivered once"
    assert sc.sink.attempts == 3
    assert sc.envoy.settled("export_failures") == 2
    wait_until(lambda: sc.envoy.stat("spans_exported") == 1, what="exported counted")


def test_other_4xx_are_not_retried(sidecar):
    sc = sidecar({})
    sc.sink.script = [400]
    sc.get("/")
    wait_until(lambda: sc.envoy.stat("spans_dropped") == 1, what="the refused span dropped")
    sc.get("/")
    sc.sink.wait_spans(1)
    assert sc.sink.attempts == 2, "the refused batch was not sent again"


def test_full_queue_drops_and_counts(sidecar):
    sc = sidecar({"exporter": {"maxQueueSpans": 3, "maxBatchSpans": 3, "flushIntervalMs": 60000}},
                 collector_port=free_port())
    for _ in range(10):
        assert sc.get("/")[0] == 200
    wait_until(lambda: sc.envoy.stat("spans_dropped") >= 7, what="overflow counted")


def test_unknown_exporter_cluster_never_fails_requests(sidecar):
    sc = sidecar({"exporter": {"cluster": "no-such-cluster"}})
    for _ in range(5):
        assert sc.get("/")[0] == 200
    wait_until(lambda: sc.envoy.stat("export_failures") > 0, what="export failures counted")
    assert sc.get("/")[0] == 200
    assert sc.envoy.stats().get("wasm.meshtrace.vm_reload", 0) == 0
    assert "panicked" not in sc.envoy.log_text()


def test_exporter_named_by_istio_service(sidecar):
    host = "meshtrace-collector.tracing.svc.cluster.local"
    sink = Sink()
    try:
        sc = sidecar({"exporter": {"service": f"{host}:4318"}}, clusters={f"outbound|4318||{host}": sink.port})
        sc.get("/")
        sink.wait_spans(1)
        assert sink.last_headers["host"] == f"{host}:4318"
        assert not sc.sink.spans(), "nothing went to the plain-Envoy cluster"
    finally:
        sink.close()
