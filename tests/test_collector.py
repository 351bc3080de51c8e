"""The filter in a real Envoy exporting to the real collector: the Jaeger
query API gives back one trace tree across two sidecars."""
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import ROOT, LOOPBACK, Sidecar, free_port, request, wait_until

COLLECTOR = Path(os.environ.get("MESHTRACE_COLLECTOR_BIN", ROOT / "target" / "debug" / "meshtrace-collector"))


@pytest.fixture
def collector():
    if not COLLECTOR.exists():
        pytest.fail(f"{COLLECTOR} is missing: build it with `cargo build -p meshtrace-collector`")
    data = tempfile.TemporaryDirectory(prefix="meshtrace-collector-")
    otlp, query = free_port(), free_port()
    proc = subprocess.Popen(
        [str(COLLECTOR), "--data-dir", data.name,
         "--otlp-http-addr", f"{LOOPBACK}:{otlp}", "--otlp-grpc-addr", f"{LOOPBACK}:{free_port()}",
         "--zipkin-addr", f"{LOOPBACK}:{free_port()}", "--http-addr", f"{LOOPBACK}:{query}",
         "--tempo-addr", f"{LOOPBACK}:{free_port()}", "--sampling-addr", f"{LOOPBACK}:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )

    def ready():
        try:
            return request(query, "/readyz", timeout=1)[0] == 200
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            return False

    wait_until(ready, timeout=30, what="collector ready")
    yield otlp, query
    proc.terminate()
    proc.wait(30)
    data.cleanup()


def jaeger(port, path):
    status, _, body = request(port, path)
    return status, json.loads(body)


def test_one_trace_tree_across_two_sidecars_in_the_collector(sidecar, collector):
    otlp, query = collector
    # Service "back": its own sidecar, the app answers directly.
    back = sidecar({"serviceName": "back", "propagators": ["b3multi"]}, collector_port=otlp)
    # Service "front": its app calls "back" through front's outbound listener,
    # whose upstream is back's inbound listener.
    front = sidecar({"serviceName": "front", "propagators": ["tracecontext", "b3multi"]},
                    collector_port=otlp, upstream_port=back.inbound_port)
    status, _, _ = front.get("/call/checkout")
    assert status == 200
    trace_id = front.app.header("traceparent").split("-")[1]

    def trace():
        status, body = jaeger(query, f"/api/traces/{trace_id}")
        if status != 200:
            return None
        t = body["data"][0]
        return t if len(t["spans"]) >= 3 else None

    t = wait_until(trace, timeout=15, what="front SERVER, front CLIENT and back SERVER in the collector")
    services = {pid: p["serviceName"] for pid, p in t["processes"].items()}
    spans = {(services[s["processID"]], next(tag["value"] for tag in s["tags"] if tag["key"] == "span.kind")): s
             for s in t["spans"]}
    front_server, front_client, back_server = spans[("front", "server")], spans[("front", "client")], spans[("back", "server")]
    parent = lambda s: next((r["spanID"] for r in s["references"] if r["refType"] == "CHILD_OF"), None)  # noqa: E731
    assert parent(front_server) is None, "the root"
    assert parent(front_client) == front_server["spanID"]
    assert parent(back_server) == front_client["spanID"], "the hop crosses sidecars"

    status, body = jaeger(query, "/api/services")
    assert {"front", "back"} <= set(body["data"])
    status, body = jaeger(query, "/api/dependencies?endTs=%d&lookback=3600000" % (10**13))
    assert status == 200
