"""The OpenTelemetry Python SDK's OTLP exporters send to the collector; the query API returns their traces
with the right trees."""

import base64
import json
import urllib.request

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from meshtrace_testkit.jaeger import span_tree


def make_trace(exporter: SpanExporter, service: str) -> str:
    """Three spans (server root, internal child, client grandchild) exported synchronously; returns the trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("meshtrace-tests")
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("price"):
            with tracer.start_as_current_span("call cart", kind=SpanKind.CLIENT) as leaf:
                leaf.set_attribute("peer.service", "cart")
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


def check_trace(collector, service: str, trace_id: str):
    status, body = collector.get(f"/api/traces/{trace_id}")
    assert status == 200, body
    trace = body["data"][0]
    by_name = {s["operationName"]: s for s in trace["spans"]}
    assert set(by_name) == {"GET /checkout", "price", "call cart"}
    parents = span_tree(trace)
    assert parents[by_name["GET /checkout"]["spanID"]] is None
    assert parents[by_name["price"]["spanID"]] == by_name["GET /checkout"]["spanID"]
    assert parents[by_name["call cart"]["spanID"]] == by_name["price"]["spanID"]
    assert trace["processes"][by_name["price"]["processID"]]["serviceName"] == service
    tags = {t["key"]: t["value"] for t in by_name["GET /checkout"]["tags"]}
    assert tags["http.response.status_code"] == 200
    assert tags["span.kind"] == "server"
    # And the search finds it.
    status, body = collector.get(f"/api/traces?service={service}&operation=call%20cart")
    assert [t["traceID"] for t in body["data"]] == [trace_id]


class Recording(SpanExporter):
    """Wraps an exporter and remembers its results, so a failed export fails the test."""

    def __init__(self, inner):
        self.inner = inner
        self.results = []

    def export(self, spans):
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self):
        self.inner.shutdown()


def test_http_protobuf_exporter(collector):
    exporter = Recording(HttpExporter(endpoint=f"http://{collector.addrs['otlp_http']}/v1/traces"))
    trace_id = make_trace(exporter, "py-http")
    assert exporter.results == [SpanExportResult.SUCCESS] * 3
    check_trace(collector, "py-http", trace_id)


def test_http_protobuf_exporter_with_gzip(collector):
    from opentelemetry.exporter.otlp.proto.http import Compression

    exporter = Recording(
        HttpExporter(endpoint=f"http://{collector.addrs['otlp_http']}/v1/traces", compression=Compression.Gzip)
    )
    trace_id = make_trace(exporter, "py-http-gzip")
    assert exporter.results == [SpanExportResult.SUCCESS] * 3
    check_trace(collector, "py-http-gzip", trace_id)


def test_grpc_exporter(collector):
    exporter = Recording(GrpcExporter(endpoint=f"http://{collector.addrs['otlp_grpc']}", insecure=True))
    trace_id = make_trace(exporter, "py-grpc")
    assert exporter.results == [SpanExportResult.SUCCESS] * 3
    check_trace(collector, "py-grpc", trace_id)


def to_otlp_json(message) -> bytes:
    """The SDK's own encoding of the spans, in OTLP JSON form: protobuf JSON mapping, except ids in hex."""
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)

    def fix(node):
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in node:
                    node[key] = base64.b64decode(node[key]).hex()
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(doc)
    return json.dumps(doc).encode()


def test_http_json(collector):
    # The official OTLP JSON exporter for Python is beta and its pins conflict with the 1.45.2 protobuf
    # exporters, so the SDK's spans are encoded by the SDK's encoder and sent as OTLP JSON.
    memory = InMemorySpanExporter()
    trace_id = make_trace(memory, "py-json")
    body = to_otlp_json(encode_spans(memory.get_finished_spans()))
    request = urllib.request.Request(
        f"http://{collector.addrs['otlp_http']}/v1/traces",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        response = json.loads(r.read())
    assert not (response.get("partialSuccess") or {}).get("rejectedSpans")
    check_trace(collector, "py-json", trace_id)
