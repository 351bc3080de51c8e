"""Envoy's own tracers send to the collector: the OpenTelemetry tracer over OTLP/HTTP (http_service) and
the Zipkin tracer over Zipkin v2 JSON. One Envoy runs a front listener that routes to a back listener,
so a request makes a trace that crosses two connection managers."""

import urllib.request

import pytest

from meshtrace_testkit import (Envoy, bootstrap, cluster, direct_response, free_port, http_listener, route,
                               virtual_host)
from meshtrace_testkit.jaeger import span_tree


def listener(name: str, port: int, tracing: dict, to: dict) -> dict:
    """A connection manager with Envoy's own tracing, making request ids; the router starts a child span
    for each upstream call."""
    return http_listener(name, port, virtual_hosts=[virtual_host([to], name=name)],
                         hcm={"generate_request_id": True, "tracing": tracing}, router={"start_child_span": True})


def envoy_config(provider: dict, collector_cluster: dict, front: int, back: int) -> dict:
    tracing = {"provider": provider, "random_sampling": {"value": 100}}
    return bootstrap(
        [listener("front", front, tracing, route("back")), listener("back", back, tracing, direct_response(200, "ok"))],
        [cluster("back", back), collector_cluster],
        # The Zipkin tracer's service name is the node's cluster.
        node={"id": "node-1", "cluster": "envoy-zipkin"})


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
    return free_port(), free_port()


def test_envoy_opentelemetry_tracer_over_otlp_http(collector, tmp_path, ports):
    front, back = ports
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
    envoy = Envoy(envoy_config(provider, cluster("collector", collector.port("otlp_http")), front, back),
                  directory=tmp_path).start()
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
    front, back = ports
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
    envoy = Envoy(envoy_config(provider, cluster("collector", collector.port("zipkin")), front, back),
                  directory=tmp_path).start()
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
