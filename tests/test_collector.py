"""The filter in a real Envoy exporting to the real collector: the Jaeger
query API gives back one trace tree across two sidecars."""
from meshtrace_testkit.jaeger import parent_of, service_of, tag


def test_one_trace_tree_across_two_sidecars_in_the_collector(sidecar, collector):
    otlp = collector.port("otlp_http")
    # Service "back": its own sidecar, the app answers directly.
    back = sidecar({"serviceName": "back", "propagators": ["b3multi"]}, collector_port=otlp)
    # Service "front": its app calls "back" through front's outbound listener,
    # whose upstream is back's inbound listener.
    front = sidecar({"serviceName": "front", "propagators": ["tracecontext", "b3multi"]},
                    collector_port=otlp, upstream_port=back.inbound_port)
    status, _, _ = front.get("/call/checkout")
    assert status == 200
    trace_id = front.app.header("traceparent").split("-")[1]

    t = collector.wait_for_trace(trace_id, lambda t: len(t["spans"]) >= 3, timeout=15)
    spans = {(service_of(t, s), tag(s, "span.kind")): s for s in t["spans"]}
    front_server, front_client, back_server = spans[("front", "server")], spans[("front", "client")], spans[("back", "server")]
    assert parent_of(front_server) is None, "the root"
    assert parent_of(front_client) == front_server["spanID"]
    assert parent_of(back_server) == front_client["spanID"], "the hop crosses sidecars"

    status, body = collector.get("/api/services")
    assert {"front", "back"} <= set(body["data"])
    status, body = collector.get("/api/dependencies?endTs=%d&lookback=3600000" % (10**13))
    assert status == 200
