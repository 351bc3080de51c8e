"""Real Jaeger clients against the collector's Jaeger receivers: the Python jaeger-client (PyPI) over UDP
thrift compact, the Node.js jaeger-client (npm, installed by `make collector-py-test`) over UDP thrift
binary and over HTTP to /api/traces. Each trace must come back with its parent, kinds, error status,
log and process."""

import subprocess
import sys
from pathlib import Path

import pytest

from meshtrace_testkit import Collector

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE.parent / "node"


@pytest.fixture
def jaeger_collector(tmp_path):
    c = Collector(tmp_path / "data", [
        "--jaeger-compact-addr", "127.0.0.1:0",
        "--jaeger-binary-addr", "127.0.0.1:0",
        "--jaeger-http-addr", "127.0.0.1:0",
    ])
    yield c
    c.stop()
    assert c.proc.returncode == 0


def run(argv, **kw) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def node(*args) -> str:
    if not (NODE_DIR / "node_modules" / "jaeger-client").exists():
        pytest.fail("the Node.js jaeger-client is not installed: make collector-py-test installs it")
    return run(["node", str(NODE_DIR / "send_spans.js"), *args])


def wait_for_trace(collector, trace_id: str, want_spans: int):
    return collector.wait_for_trace(trace_id, lambda t: len(t["spans"]) >= want_spans)


def check(trace, service: str, client_version_prefix: str):
    by_name = {s["operationName"]: s for s in trace["spans"]}
    root, child = by_name["GET /checkout"], by_name["SELECT cart"]
    assert child["references"] == [{"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": root["spanID"]}]
    assert root["references"] == []
    root_tags = {t["key"]: t["value"] for t in root["tags"]}
    child_tags = {t["key"]: t["value"] for t in child["tags"]}
    assert root_tags["span.kind"] == "server"
    assert root_tags["http.status_code"] == 200
    assert "error" not in root_tags, "200 on a server span: no error"
    assert child_tags["span.kind"] == "client"
    assert child_tags["error"] is True and child_tags["otel.status_code"] == "ERROR"
    [log] = child["logs"]
    fields = {f["key"]: f["value"] for f in log["fields"]}
    assert fields == {"event": "retry", "attempt": 2}
    process = trace["processes"][root["processID"]]
    assert process["serviceName"] == service
    ptags = {t["key"]: t["value"] for t in process["tags"]}
    assert "host.name" in ptags, "the client's hostname tag becomes host.name"
    assert ptags["opencensus.exporterversion"].startswith(f"Jaeger-{client_version_prefix}"), ptags


def test_python_jaeger_client_over_udp_compact(jaeger_collector):
    trace_id, _ = run([sys.executable, str(HERE / "send_jaeger_python.py"),
                       jaeger_collector.addrs["jaeger_compact"], "py-jaeger"]).split()
    check(wait_for_trace(jaeger_collector, trace_id, 2), "py-jaeger", "Python-4.8.0")


def test_node_jaeger_client_over_udp_binary(jaeger_collector):
    trace_id = node("udp", jaeger_collector.addrs["jaeger_binary"], "node-jaeger-udp")
    check(wait_for_trace(jaeger_collector, trace_id, 2), "node-jaeger-udp", "Node-3.19.0")


def test_node_jaeger_client_over_http(jaeger_collector):
    url = f"http://{jaeger_collector.addrs['jaeger_http']}/api/traces"
    trace_id = node("http", url, "node-jaeger-http")
    check(wait_for_trace(jaeger_collector, trace_id, 2), "node-jaeger-http", "Node-3.19.0")
