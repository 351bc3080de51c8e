"""Traces that survive an application that forwards no trace headers but
does forward x-request-id: the outbound side finds the inbound request's
SERVER span by its x-request-id (Envoy's shared data) and parents the CLIENT
span on it, across Envoy workers, under concurrency."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from meshtrace_testkit import request, wait_until
from meshtrace_testkit.sidecar import Recorder, attrs, hexid, spans_of

P = "00f067aa0ba902b7"
REQUESTS = 200
CLIENTS = 16


def trace(i: int) -> str:
    return f"{i + 1:08x}" + "4bf92f3577b34da6a3ce929d"


def only_request_id():
    return Recorder("app", forward=("x-request-id",))


def worker_connections(sc, port: int) -> list[int]:
    stats = sc.envoy.stats_all()
    return [int(stats.get(f"listener.127.0.0.1_{port}.worker_{w}.downstream_cx_total", 0)) for w in (0, 1)]


def check_linked(sc, trace_id: str, caller_parent: str | None):
    """One request's tree: SERVER (child of the caller), then CLIENT (child of
    SERVER, linked by x-request-id), and the upstream got the CLIENT's context."""
    server, client = spans_of(sc.sink, trace_id, 2, timeout=20)
    assert (server.kind, client.kind) == (2, 3)
    assert (hexid(server.parent_span_id) or None) == caller_parent
    assert client.parent_span_id == server.span_id, "CLIENT is the SERVER span's child"
    assert attrs(client)["meshtrace.context.source"] == "x-request-id"
    assert attrs(server)["meshtrace.context.source"] == ("tracecontext" if caller_parent else "none")
    rid = attrs(server)["guid:x-request-id"]
    assert attrs(client)["guid:x-request-id"] == rid
    up = [r["headers"] for r in sc.upstream.requests if r["headers"].get("x-request-id") == [rid]]
    assert len(up) == 1, rid
    # A trace the SERVER span started has a random id: the flag is linked too.
    flags = "01" if caller_parent else "03"
    assert up[0]["traceparent"] == [f"00-{trace_id}-{hexid(client.span_id)}-{flags}"], \
        "upstream continues the trace"
    assert up[0]["x-b3-traceid"] == [trace_id] and up[0]["x-b3-spanid"] == [hexid(client.span_id)], \
        "in every configured format"


def test_many_concurrent_requests_on_two_workers_each_get_one_tree(sidecar):
    sc = sidecar({"propagators": ["tracecontext", "b3multi"]}, app=only_request_id(),
                 concurrency=2, exact_balance=True)

    def call(i):
        # Half the callers send a context, half start a new trace.
        headers = {"traceparent": f"00-{trace(i)}-{P}-01"} if i % 2 == 0 else {}
        status, _, _ = request(sc.inbound_port, "/call/items", headers=headers)
        return status

    with ThreadPoolExecutor(CLIENTS) as pool:
        assert list(pool.map(call, range(REQUESTS))) == [200] * REQUESTS

    # The app saw the SERVER span's context; the new traces are read from there.
    app_traces = {r["headers"]["x-request-id"][0]: r["headers"]["traceparent"][0].split("-")[1]
                  for r in sc.app.requests}
    assert len(app_traces) == REQUESTS, "a distinct x-request-id per request"
    for i in range(0, REQUESTS, 2):
        check_linked(sc, trace(i), P)
    callers = {trace(i) for i in range(0, REQUESTS, 2)}
    new = [t for t in app_traces.values() if t not in callers]
    assert len(new) == REQUESTS // 2
    for t in new:
        check_linked(sc, t, None)

    assert sc.envoy.settled("request_id_links") == REQUESTS
    assert sc.envoy.settled("request_id_misses") == 0
    for port in (sc.inbound_port, sc.outbound_port):
        assert all(n > 0 for n in worker_connections(sc, port)), f"both workers served {port}"


def test_without_the_link_the_app_splits_every_trace(sidecar):
    """The same app with linkByRequestId off: what the link repairs."""
    sc = sidecar({"linkByRequestId": False}, app=only_request_id())
    t = trace(1)
    request(sc.inbound_port, "/call/items", headers={"traceparent": f"00-{t}-{P}-01"})
    (server,) = spans_of(sc.sink, t, 1)
    wait_until(lambda: len(sc.sink.spans()) >= 2, what="the CLIENT span")
    (client,) = [s for _, s in sc.sink.spans() if s.kind == 3]
    assert hexid(client.trace_id) != t, "a new trace"
    assert not client.parent_span_id
    assert attrs(client)["meshtrace.context.source"] == "none"


def test_an_app_that_forwards_nothing_gets_a_new_trace_and_a_miss(sidecar):
    # Envoy gives the outbound request an x-request-id of its own: no match.
    sc = sidecar({}, app=Recorder("app", forward=()))
    t = trace(2)
    request(sc.inbound_port, "/call/items", headers={"traceparent": f"00-{t}-{P}-01"})
    wait_until(lambda: len(sc.sink.spans()) >= 2, what="both spans")
    (client,) = [s for _, s in sc.sink.spans() if s.kind == 3]
    assert hexid(client.trace_id) != t
    assert sc.envoy.settled("request_id_misses") == 1
    assert sc.envoy.settled("request_id_links") == 0


@pytest.mark.parametrize("sampled", [False, True])
def test_the_linked_span_carries_the_server_spans_decision(sidecar, sampled):
    sc = sidecar({"sampling": {"randomSamplingPercentage": 100}}, app=only_request_id())
    t = trace(3)
    flags = "01" if sampled else "00"
    request(sc.inbound_port, "/call/items", headers={"traceparent": f"00-{t}-{P}-{flags}"})
    assert sc.upstream.header("traceparent").split("-")[1] == t
    assert sc.upstream.header("traceparent").endswith(f"-{flags}"), "the caller's decision, linked"
