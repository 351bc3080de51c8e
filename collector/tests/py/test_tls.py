"""TLS with real clients and certificates made here: the OpenTelemetry Python SDK's OTLP exporters over
TLS (HTTP and gRPC), with client certificates against a collector that requires them; and a fleet that
sends Jaeger thrift (Python jaeger-client over UDP), Zipkin protobuf (Envoy's Zipkin tracer, HTTP_PROTO
over TLS) and OTLP over TLS at once, landing as one trace."""

import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind

from certs import Ca
from meshtrace_testkit import Collector, Envoy, cluster, free_port
from meshtrace_testkit.jaeger import parent_of, service_of
from test_envoy_tracers import envoy_config
from test_otel_sdk import Recording, check_trace, make_trace

HERE = Path(__file__).resolve().parent


def client_context(ca: Ca, client=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.path))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


@pytest.fixture(autouse=True)
def no_ca_bundle_from_the_environment(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the exporter's session.verify (its
    certificate_file): without this the SDK's HTTP exporter would check against the system bundle."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def pki(tmp_path):
    ca = Ca(tmp_path, "ca")
    client_ca = Ca(tmp_path, "client-ca")
    return ca, ca.issue("server"), client_ca, client_ca.issue("client", client=True)


def start(tmp_path, server, extra=(), ssl_context=None) -> Collector:
    return Collector(tmp_path / "data", ["--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key), *extra],
                     ssl_context=ssl_context)


def test_otel_sdk_exporters_over_tls(tmp_path, pki):
    ca, server, _, _ = pki
    c = start(tmp_path, server, ssl_context=client_context(ca))
    try:
        http = Recording(HttpExporter(endpoint=f"https://{c.addrs['otlp_http']}/v1/traces", certificate_file=str(ca.path)))
        trace_id = make_trace(http, "tls-http")
        assert http.results == [SpanExportResult.SUCCESS] * 3
        check_trace(c, "tls-http", trace_id)

        credentials = grpc.ssl_channel_credentials(root_certificates=ca.pem)
        grpc_exporter = Recording(GrpcExporter(endpoint=c.addrs["otlp_grpc"], credentials=credentials, insecure=False))
        trace_id = make_trace(grpc_exporter, "tls-grpc")
        assert grpc_exporter.results == [SpanExportResult.SUCCESS] * 3
        check_trace(c, "tls-grpc", trace_id)

        # Plaintext to the TLS port is refused with a readable answer.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{c.addrs['otlp_http']}/v1/traces", data=b"", timeout=10)
        assert refused.value.code == 400 and b"TLS" in refused.value.read()
    finally:
        c.stop()
    assert c.proc.returncode == 0


def test_otel_sdk_exporters_with_client_certificates(tmp_path, pki):
    ca, server, client_ca, client = pki
    c = start(tmp_path, server, ["--tls-client-ca-file", str(client_ca.path)], ssl_context=client_context(ca, client))
    try:
        http = Recording(HttpExporter(endpoint=f"https://{c.addrs['otlp_http']}/v1/traces", certificate_file=str(ca.path),
                                      client_certificate_file=str(client.cert), client_key_file=str(client.key)))
        trace_id = make_trace(http, "mtls-http")
        assert http.results == [SpanExportResult.SUCCESS] * 3
        check_trace(c, "mtls-http", trace_id)

        credentials = grpc.ssl_channel_credentials(root_certificates=ca.pem, private_key=client.key.read_bytes(),
                                                   certificate_chain=client.cert.read_bytes())
        grpc_exporter = Recording(GrpcExporter(endpoint=c.addrs["otlp_grpc"], credentials=credentials, insecure=False))
        trace_id = make_trace(grpc_exporter, "mtls-grpc")
        assert grpc_exporter.results == [SpanExportResult.SUCCESS] * 3
        check_trace(c, "mtls-grpc", trace_id)

        # Without a client certificate the same exporter is refused (one span, a short timeout: the
        # exporter retries until it runs out).
        anonymous = Recording(HttpExporter(endpoint=f"https://{c.addrs['otlp_http']}/v1/traces",
                                           certificate_file=str(ca.path), timeout=1))
        provider = TracerProvider(resource=Resource.create({"service.name": "anonymous"}))
        provider.add_span_processor(SimpleSpanProcessor(anonymous))
        with provider.get_tracer("t").start_as_current_span("refused"):
            pass
        provider.shutdown()
        assert anonymous.results == [SpanExportResult.FAILURE]
        status, body = c.get("/api/traces?service=anonymous")
        assert status == 200 and body["data"] == []
    finally:
        c.stop()
    assert c.proc.returncode == 0


def tls_cluster(name: str, port: int, ca: Ca) -> dict:
    tls = cluster(name, port)
    tls["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "localhost",
            "common_tls_context": {"validation_context": {"trusted_ca": {"filename": str(ca.path)}}},
        },
    }
    return tls


def test_a_fleet_sending_jaeger_zipkin_and_otlp_over_tls_lands_as_one_trace(tmp_path, pki):
    ca, server, _, _ = pki
    c = start(tmp_path, server, ["--jaeger-compact-addr", "127.0.0.1:0"], ssl_context=client_context(ca))
    front, back = free_port(), free_port()
    envoy = None
    try:
        # 1. A Jaeger-instrumented app starts the trace (thrift compact over UDP: no TLS on UDP).
        out = subprocess.run([sys.executable, str(HERE / "send_jaeger_python.py"), c.addrs["jaeger_compact"], "fleet-jaeger"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        trace_id, root_span = out.stdout.split()

        # 2. It calls through an Envoy whose Zipkin tracer reports protobuf over TLS.
        provider = {
            "name": "envoy.tracers.zipkin",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                "collector_cluster": "collector",
                "collector_endpoint": "/api/v2/spans",
                "collector_endpoint_version": "HTTP_PROTO",
                "collector_hostname": "localhost",
                "shared_span_context": False,
            },
        }
        config = envoy_config(provider, tls_cluster("collector", c.port("zipkin"), ca), front, back)
        # Flush each span at once instead of every 5 s.
        config["layered_runtime"] = {"layers": [{"name": "flush", "static_layer": {"tracing.zipkin.min_flush_spans": 1}}]}
        envoy = Envoy(config, directory=tmp_path).start()
        request = urllib.request.Request(f"http://127.0.0.1:{front}/checkout", headers={
            "x-b3-traceid": trace_id, "x-b3-spanid": root_span, "x-b3-sampled": "1"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200

        # 3. An OpenTelemetry-instrumented service, also called by the root, exports OTLP/gRPC over TLS.
        parent = trace_api.NonRecordingSpan(trace_api.SpanContext(
            int(trace_id, 16), int(root_span, 16), is_remote=True, trace_flags=trace_api.TraceFlags(1)))
        provider_sdk = TracerProvider(resource=Resource.create({"service.name": "fleet-otel"}))
        exporter = Recording(GrpcExporter(endpoint=c.addrs["otlp_grpc"], insecure=False,
                                          credentials=grpc.ssl_channel_credentials(root_certificates=ca.pem)))
        provider_sdk.add_span_processor(SimpleSpanProcessor(exporter))
        with provider_sdk.get_tracer("fleet").start_as_current_span(
                "price", context=trace_api.set_span_in_context(parent), kind=SpanKind.SERVER):
            pass
        provider_sdk.shutdown()
        assert exporter.results == [SpanExportResult.SUCCESS]

        fleet = {"fleet-jaeger", "envoy-zipkin", "fleet-otel"}
        # Every span asserted below: the Jaeger app's 2, Envoy's 3 (each reported on its own) and the
        # OpenTelemetry service's 1 (waiting for 5 let Envoy's last report come after the read).
        trace = c.wait_for_trace(trace_id, lambda t: {service_of(t, s) for s in t["spans"]} >= fleet
                                 and len(t["spans"]) >= 6)
        services = {service_of(trace, s) for s in trace["spans"]}
        assert services == fleet, services
        by_id = {sp["spanID"]: sp for sp in trace["spans"]}
        parent = {sp["spanID"]: parent_of(sp) for sp in trace["spans"]}
        service = {sp["spanID"]: service_of(trace, sp) for sp in trace["spans"]}
        assert parent[root_span] is None
        for sid, svc in service.items():
            if svc in ("fleet-jaeger", "fleet-otel") and sid != root_span:
                assert parent[sid] == root_span, f"{svc} span under the Jaeger root: {trace}"
        envoy_spans = [sid for sid, svc in service.items() if svc == "envoy-zipkin"]
        assert len(envoy_spans) == 3, trace
        # Envoy's own spans form one chain (front ingress -> router egress -> back ingress)...
        inside = [sid for sid in envoy_spans if parent[sid] in by_id]
        assert len(inside) == 2, trace
        # ...whose top hangs under the Jaeger root's id in the byte order Envoy 1.40 writes span ids into
        # HTTP_PROTO: host order (little-endian here), while its B3 headers and HTTP_JSON are big-endian
        # (see envoyproxy/envoy#34448). The collector keeps the bytes as zipkin.proto defines them; with
        # HTTP_JSON the same Envoy joins the tree.
        [top] = [sid for sid in envoy_spans if parent[sid] not in by_id]
        assert parent[top] == bytes.fromhex(root_span)[::-1].hex(), trace
    finally:
        if envoy:
            envoy.stop()
        c.stop()
    assert c.proc.returncode == 0
