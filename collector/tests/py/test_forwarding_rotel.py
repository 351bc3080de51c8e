"""Forwarding through rotel (PyPI `rotel`, the Rust OpenTelemetry collector): a meshtrace collector in
gateway mode (`--store=false`) exports over OTLP/HTTP and OTLP/gRPC to rotel, which forwards to a second
meshtrace collector (the sink). Rotel is down while the spans are sent, and the gateway is killed with
SIGKILL and restarted during the outage. Every span must still arrive: at least once (both exporters
deliver a copy, and a batch whose deletion a crash cut short is sent again; the sink stores by span key).

Rotel listens only on loopback ephemeral ports (its defaults are localhost:4317/4318) and writes its pid
and log files under the test's temporary directory (its defaults are in /tmp).
"""

import os
import subprocess
from pathlib import Path

import pytest

from meshtrace_testkit import Collector, free_port, procs, wait_until

rotel = pytest.importorskip("rotel")
ROTEL_AGENT = Path(rotel.__file__).parent / "rotel-agent"
TRACES = 30


def spans_request(n: int) -> dict:
    spans = []
    for i in range(n):
        trace = f"{0xabc0000000000000 + 1:016x}{i + 1:016x}"
        spans.append({"traceId": trace, "spanId": "00000000000000a1", "name": "GET /a", "kind": 2,
                      "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"})
        spans.append({"traceId": trace, "spanId": "00000000000000a2", "parentSpanId": "00000000000000a1",
                      "name": "SELECT", "kind": 3,
                      "startTimeUnixNano": "1700000000010000000", "endTimeUnixNano": "1700000000090000000"})
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "edge"}}]},
        "scopeSpans": [{"spans": spans}]}]}


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


# Waits are bounded only so that a broken setup cannot hang the suite; passing never depends on timing.
WAIT_S = 120


def test_every_span_arrives_through_rotel_despite_outage_and_gateway_restart(tmp_path):
    if not os.access(ROTEL_AGENT, os.X_OK):
        pytest.skip("rotel-agent binary not available")
    sink = Collector(tmp_path / "sink")
    rotel_grpc, rotel_http = free_port(), free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[exporters]]
name = "rotel-http"
protocol = "http"
endpoint = "http://127.0.0.1:{rotel_http}/v1/traces"
max-backoff = "500ms"
[[exporters]]
name = "rotel-grpc"
protocol = "grpc"
endpoint = "http://127.0.0.1:{rotel_grpc}"
max-backoff = "500ms"
""")
    gateway_args = ["--config", str(config), "--store=false"]
    gateway = Collector(tmp_path / "gateway", gateway_args)
    agent = None
    try:
        assert gateway.post_otlp_json(spans_request(TRACES)) == 200
        wait_until(lambda: 'kind="retryable"' in gateway.metrics(), WAIT_S, "exporters failed while rotel is down")
        gateway.kill9()
        gateway = Collector(tmp_path / "gateway", gateway_args)
        agent = subprocess.Popen(
            [str(ROTEL_AGENT), "start",
             "--otlp-grpc-endpoint", f"127.0.0.1:{rotel_grpc}",
             "--otlp-http-endpoint", f"127.0.0.1:{rotel_http}",
             "--exporter", "otlp",
             "--otlp-exporter-endpoint", f"http://{sink.addrs['otlp_grpc']}",
             "--otlp-exporter-protocol", "grpc",
             "--otlp-exporter-retry-initial-backoff", "100ms",
             "--pid-file", str(tmp_path / "rotel.pid"),
             "--log-file", str(tmp_path / "rotel.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Both exporters deliver every span (2 per trace) through rotel.
        wait_until(lambda: metric(sink.metrics(), 'meshtrace_collector_spans_accepted_total{receiver="otlp_grpc"}')
                   >= 4 * TRACES, WAIT_S, "both copies of every span reached the sink")
        for i in range(TRACES):
            trace = f"{0xabc0000000000000 + 1:016x}{i + 1:016x}"
            status, body = sink.get(f"/api/traces/{trace}")
            assert status == 200, trace
            assert len(body["data"][0]["spans"]) == 2, trace
        wait_until(lambda: all(
            metric(gateway.metrics(), f'meshtrace_collector_exporter_queue_spans{{exporter="{name}"}}') == 0
            for name in ("rotel-http", "rotel-grpc")), WAIT_S, "gateway queues drained")
    finally:
        procs.stop(agent, 30)
        gateway.stop()
        sink.stop()
