"""What an exported span says: kinds, attributes, status, timing, resource."""
import time

from meshtrace_testkit import request
from meshtrace_testkit.sidecar import attrs, hexid, spans_of


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
    canonical = "service.istio.io/canonical-name"
    labels = {canonical: "cart-canonical", "app": "cart-app"}
    cases = [
        ({"serviceName": "configured"}, {"OTEL_SERVICE_NAME": "env"}, {"LABELS": labels}, "configured"),
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource"}, {"LABELS": labels}, "from-resource"),
        ({}, None, {"WORKLOAD_NAME": "cart-v1", "LABELS": labels}, "cart-canonical"),
        ({}, None, {"WORKLOAD_NAME": "cart-v1"}, "cart-v1"),
        ({}, None, None, "unknown_service"),
    ]
    for config, env, meta, want in cases:
        sc = sidecar(config, env=env, node={"id": "n", "metadata": meta} if meta else None)
        sc.get("/")
        spans_of(sc.sink, trace_of(sc), 1)
        assert sc.sink.spans()[0][0]["service.name"] == want


def test_kubernetes_resource_from_istio_node_metadata_and_the_environment(sidecar):
    node = {"id": "n", "metadata": {
        "NAMESPACE": "shop", "NAME": "cart-7d9f-x2", "NODE_NAME": "node-3", "CLUSTER_ID": "east",
        "OWNER": "kubernetes://apis/apps/v1/namespaces/shop/deployments/cart",
        "LABELS": {"service.istio.io/canonical-name": "cart", "service.istio.io/canonical-revision": "v7",
                   "version": "v1"}}}
    env = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod%20eu,k8s.cluster.name=east-1"}
    sc = sidecar({}, env=env, node=node)
    sc.get("/")
    spans_of(sc.sink, trace_of(sc), 1)
    res = sc.sink.spans()[0][0]
    assert res["service.name"] == "cart" and res["service.version"] == "v7", "Istio's canonical service"
    assert res["k8s.namespace.name"] == "shop" and res["k8s.pod.name"] == "cart-7d9f-x2"
    assert res["k8s.node.name"] == "node-3" and res["k8s.deployment.name"] == "cart"
    assert res["k8s.cluster.name"] == "east-1", "OTEL_RESOURCE_ATTRIBUTES wins over what is detected"
    assert res["deployment.environment.name"] == "prod eu"


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


def test_client_spans_count_envoys_retries_as_resends(sidecar):
    sc = sidecar({}, outbound_retry={"retry_on": "5xx", "num_retries": 2,
                                     "retry_back_off": {"base_interval": "0.01s"}})
    assert sc.get("/call/status/503")[0] == 503
    server, client = spans_of(sc.sink, trace_of(sc), 2)
    assert attrs(client)["http.request.resend_count"] == 2, "three tries"
    assert len([r for r in sc.upstream.requests if r["path"] == "/status/503"]) == 3
    assert "http.request.resend_count" not in attrs(server)
    sc.get("/call/ok")
    _, client = spans_of(sc.sink, trace_of(sc), 2)
    assert "http.request.resend_count" not in attrs(client), "no resend, no attribute"
