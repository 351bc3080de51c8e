"""Envoy's own tracers send to the collector: the OpenTelemetry tracer over OTLP/HTTP (http_service) and
the Zipkin tracer over Zipkin v2 JSON. One Envoy runs a front listener that routes to a back listener,
so a request makes a trace that crosses two connection managers."""

import json
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import envoy_bin, span_tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def static_cluster(name: str, host: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}],
        },
    }


def listener(name: str, port: int, tracing: dict, route: dict) -> dict:
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "generate_request_id": True,
                    "tracing": tracing,
                    "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}]},
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                            "start_child_span": True,
                        },
                    }],
                },
            }],
        }],
    }


def envoy_config(provider: dict, collector_cluster: dict, front: int, back: int, admin: int) -> dict:
    tracing = {"provider": provider, "random_sampling": {"value": 100}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                listener("front", front, tracing, {"match": {"prefix": "/"}, "route": {"cluster": "back"}}),
                listener("back", back, tracing, {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}),
            ],
            "clusters": [static_cluster("back", "127.0.0.1", back), collector_cluster],
        },
    }


class Envoy:
    def __init__(self, tmp_path, config: dict, admin: int):
        path = tmp_path / "envoy.json"
        path.write_text(json.dumps(config))
        self.log = open(tmp_path / "envoy.log", "w")
        self.proc = subprocess.Popen(
            [envoy_bin(), "-c", str(path), "--service-cluster", "envoy-zipkin", "--service-node", "node-1",
             "--log-level", "warn", "--base-id", str(admin)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (tmp_path / "envoy.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("envoy did not become ready")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def send_requests(port: int, n: int):
    for _ in range(n):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/checkout", timeout=10) as r:
            assert r.status == 200


def check_two_hop_trace(traces):
    """A trace with the front ingress span, its router child span and the back ingress span beneath it."""
    assert traces, "no trace arrived"
    trace = max(traces, key=lambda t: len(t["spans"]))
    assert len(trace["spans"]) >= 3, trace
    parents = span_tree(trace)
    roots = [s for s, p in parents.items() if p is None]
    assert len(roots) == 1, f"one root expected: {trace}"
    depth = {}

    def level(span_id):
        if span_id not in depth:
            parent = parents[span_id]
            depth[span_id] = 0 if parent is None else level(parent) + 1
        return depth[span_id]

    assert max(level(s) for s in parents) >= 2, f"the back span hangs under the front's router span: {trace}"


@pytest.fixture
def ports():
    return free_port(), free_port(), free_port()


def test_envoy_opentelemetry_tracer_over_otlp_http(collector, tmp_path, ports):
    front, back, admin = ports
    host, port = collector.addrs["otlp_http"].rsplit(":", 1)
    provider = {
        "name": "envoy.tracers.opentelemetry",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
            "service_name": "envoy-otel",
            "http_service": {
                "http_uri": {"uri": f"http://{collector.addrs['otlp_http']}/v1/traces", "cluster": "collector", "timeout": "2s"},
            },
        },
    }
    envoy = Envoy(tmp_path, envoy_config(provider, static_cluster("collector", host, int(port)), front, back, admin), admin)
    try:
        # Envoy flushes its span buffer every 5 s or every 5 spans: 3 requests make 9 spans.
        send_requests(front, 3)
        traces = collector.wait_for_traces("envoy-otel", 3)
    finally:
        envoy.stop()
    check_two_hop_trace(traces)


@pytest.mark.parametrize("version", ["HTTP_JSON", "HTTP_PROTO"])
def test_envoy_zipkin_tracer(collector, tmp_path, ports, version):
    """Envoy's Zipkin tracer in both its v2 encodings: JSON, and protobuf (`ListOfSpans`)."""
    front, back, admin = ports
    host, port = collector.addrs["zipkin"].rsplit(":", 1)
    provider = {
        "name": "envoy.tracers.zipkin",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
            "collector_cluster": "collector",
            "collector_endpoint": "/api/v2/spans",
            "collector_endpoint_version": version,
            # With the shared span context (the default) Envoy 1.40 sends every span of a hop with one id
            # and no parent: the collector keeps them all, but only distinct ids make a tree.
            "shared_span_context": False,
        },
    }
    envoy = Envoy(tmp_path, envoy_config(provider, static_cluster("collector", host, int(port)), front, back, admin), admin)
    try:
        send_requests(front, 3)
        traces = collector.wait_for_traces("envoy-zipkin", 3)
    finally:
        envoy.stop()
    check_two_hop_trace(traces)
    trace = max(traces, key=lambda t: len(t["spans"]))
    kinds = sorted({t["value"] for s in trace["spans"] for t in s["tags"] if t["key"] == "span.kind"})
    assert "server" in kinds, trace
    assert {p["serviceName"] for p in trace["processes"].values()} == {"envoy-zipkin"}
