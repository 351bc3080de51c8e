"""What an exported span says: kinds, attributes, status, timing, resource."""
import time

from harness import attrs, hexid, request, spans_of


def trace_of(sc):
    return sc.app.header("traceparent").split("-")[1]


def test_server_and_client_span_attributes(mesh):
    status, _, _ = mesh.get("/call/status/503?q=1", headers={"user-agent": "probe/1"})
    assert status == 503
    server, client = spans_of(mesh.sink, trace_of(mesh), 2)

    s = attrs(server)
    assert s["http.request.method"] == "GET"
    assert s["url.path"] == "/call/status/503" and s["url.query"] == "q=1"
    assert s["url.scheme"] == "http"
    assert s["server.address"] == "127.0.0.1" and s["server.port"] == mesh.inbound_port
    assert s["client.address"] == "127.0.0.1" and s["network.peer.address"] == "127.0.0.1"
    assert s["user_agent.original"] == "probe/1"
    assert s["http.response.status_code"] == 503
    assert s["error.type"] == "503" and server.status.code == 2
    assert s["upstream_cluster"] == "app"
    assert s["guid:x-request-id"] == mesh.app.header("x-request-id")
    assert s["network.protocol.version"] == "1.1"
    assert "http.response.body.size" in s

    c = attrs(client)
    assert c["server.address"] == "upstream.local" and c["server.port"] == 80
    assert c["url.full"] == "http://upstream.local/status/503?q=1"
    assert c["network.peer.address"] == "127.0.0.1"
    assert c["upstream_address"] == f"127.0.0.1:{mesh.upstream.port}"
    assert c["http.response.status_code"] == 503 and client.status.code == 2

    for span in (server, client):
        assert span.name == "GET", "never the Host header"
    assert not server.parent_span_id and server.flags & 0x300 == 0x100, "a root: no remote parent"
    assert client.flags & 0x300 == 0x300, "parent (the app's context) is remote"


def test_4xx_is_an_error_on_client_spans_only(mesh):
    mesh.get("/call/status/404")
    server, client = spans_of(mesh.sink, trace_of(mesh), 2)
    assert server.status.code == 0 and "error.type" not in attrs(server)
    assert client.status.code == 2 and attrs(client)["error.type"] == "404"


def test_span_timing_follows_the_request(mesh):
    t0 = time.time_ns()
    mesh.get("/slow/300")
    t1 = time.time_ns()
    (server,) = spans_of(mesh.sink, trace_of(mesh), 1)
    assert t0 <= server.start_time_unix_nano <= server.end_time_unix_nano <= t1
    assert server.end_time_unix_nano - server.start_time_unix_nano >= 300_000_000


def test_resource_from_vm_env_and_node_metadata(mesh):
    mesh.get("/")
    trace = trace_of(mesh)
    spans_of(mesh.sink, trace, 1)
    res = next(r for r, s in mesh.sink.spans() if hexid(s.trace_id) == trace)
    assert res["service.name"] == "shop", "OTEL_SERVICE_NAME from the VM environment"
    assert res["k8s.namespace.name"] == "prod" and res["k8s.pod.name"] == "shop-7f9c"
    assert res["service.version"] == "v3"
    assert res["telemetry.sdk.name"] == "meshtrace"


def test_service_name_precedence(sidecar):
    node = {"id": "n", "metadata": {"WORKLOAD_NAME": "cart-v1", "LABELS": {"app": "cart"}}}
    cases = [
        ({"serviceName": "configured"}, {"OTEL_SERVICE_NAME": "env"}, node, "configured"),
        ({}, None, node, "cart-v1"),
        ({}, None, {"id": "n", "metadata": {"LABELS": {"app": "cart"}}}, "cart"),
        ({}, None, None, "unknown_service"),
    ]
    for config, env, node_meta, want in cases:
        sc = sidecar(config, env=env, node=node_meta)
        sc.get("/")
        spans_of(sc.sink, trace_of(sc), 1)
        assert sc.sink.spans()[0][0]["service.name"] == want


def test_outbound_connection_failure_is_recorded(sidecar):
    sc = sidecar({})
    sc.upstream.close()  # nothing listens there any more
    status, _, _ = sc.get("/call/x")
    assert status == 503
    server, client = spans_of(sc.sink, trace_of(sc), 2)
    c = attrs(client)
    assert client.status.code == 2
    assert "UF" in c["response_flags"].split(","), c
    assert c["http.response.status_code"] == 503


def test_every_request_is_counted(mesh):
    before = mesh.envoy.settled("spans_started")
    for _ in range(5):
        request(mesh.inbound_port, "/")
    assert mesh.envoy.settled("spans_started") == before + 5
