"""One trace across formats: what the app and the upstream receive, and the
spans exported for it, for each format a caller may speak."""
import pytest

from harness import context_in
from meshtrace_testkit.sidecar import attrs, hexid, spans_of

T = "4bf92f3577b34da6a3ce929d0e0e4736"
P = "00f067aa0ba902b7"

# Each case its own trace id: the sidecar is shared by the module's tests.
T1, T2, T3, T4 = (f"{i}" * 8 + T[8:] for i in range(1, 5))
INCOMING = {
    "tracecontext": ({"traceparent": f"00-{T1}-{P}-01"}, T1, P),
    "b3": ({"b3": f"{T2}-{P}-1"}, T2, P),
    "b3multi": ({"x-b3-traceid": T3, "x-b3-spanid": P, "x-b3-sampled": "1"}, T3, P),
    # Short ids with URL-encoded separators, as some Jaeger clients send them.
    "jaeger": ({"uber-trace-id": f"{T4[16:]}%3A{P[2:]}%3A0%3A1"}, "0" * 16 + T4[16:], P),
}

FORMATS = ["tracecontext", "b3", "b3multi", "jaeger"]


@pytest.mark.parametrize("fmt", list(INCOMING))
def test_every_format_continues_the_trace_in_every_format(mesh, fmt):
    headers, trace_id, parent = INCOMING[fmt]
    status, _, _ = mesh.get("/call/items", headers=headers)
    assert status == 200

    server, client = spans_of(mesh.sink, trace_id, 2)
    assert (server.kind, client.kind) == (2, 3), "SERVER then CLIENT"
    assert hexid(server.parent_span_id) == parent, "SERVER is the caller's child"
    assert client.parent_span_id == server.span_id, "CLIENT is the SERVER span's child"
    assert attrs(server)["meshtrace.context.source"] == fmt, "where the caller's context came from"
    assert attrs(client)["meshtrace.context.source"] == "tracecontext", "the app forwarded all: the first listed"

    app = context_in(mesh.app.header)
    up = context_in(mesh.upstream.header)
    assert sorted(app) == sorted(FORMATS) == sorted(up), "every format written"
    for f in FORMATS:
        assert app[f] == (trace_id, hexid(server.span_id), True), f"app sees SERVER span in {f}"
        assert up[f] == (trace_id, hexid(client.span_id), True), f"upstream sees CLIENT span in {f}"


def test_malformed_traceparent_restarts_and_is_never_forwarded(mesh):
    before = mesh.envoy.settled("malformed_headers")
    bad = f"00-{T.upper()}-{P}-01"
    status, _, _ = mesh.get("/", headers={"traceparent": bad, "tracestate": "vendor=1"})
    assert status == 200
    tp = mesh.app.header("traceparent")
    assert tp != bad and tp.startswith("00-") and len(tp) == 55
    assert tp.split("-")[1] != T.lower(), "a new trace"
    assert tp.endswith("-03"), "sampled, random trace id"
    assert mesh.app.header("tracestate") is None, "tracestate dropped with it"
    assert mesh.envoy.settled("malformed_headers") == before + 1


def test_invalid_traceparent_falls_back_to_the_next_format(mesh):
    b3_trace = "80f198ee56343ba864fe8b2a57d3eff7"
    mesh.get("/", headers={"traceparent": "00-zz-00-01", "b3": f"{b3_trace}-e457b5a2e4d86bd1-1"})
    assert context_in(mesh.app.header)["tracecontext"][0] == b3_trace


def test_not_sampled_caller_decision_is_kept_and_passed_on(mesh):
    unsampled = "11111111111111111111111111111111"
    mesh.get("/call/x", headers={"traceparent": f"00-{unsampled}-{P}-00"})
    for f, (t, _, sampled) in context_in(mesh.upstream.header).items():
        assert (t, sampled) == (unsampled, False), f
    assert mesh.upstream.header("x-b3-sampled") == "0"
    # A sampled trace sent after it is exported; the unsampled one never is.
    marker = "22222222222222222222222222222222"
    mesh.get("/", headers={"traceparent": f"00-{marker}-{P}-01"})
    spans_of(mesh.sink, marker, 1)
    assert not [s for _, s in mesh.sink.spans() if hexid(s.trace_id) == unsampled]


def test_b3_deny_is_followed(mesh):
    mesh.get("/", headers={"b3": "0"})
    ctx = context_in(mesh.app.header)
    assert all(not sampled for _, _, sampled in ctx.values())
    assert mesh.app.header("b3").endswith("-0")


def test_b3_debug_is_carried(mesh):
    mesh.get("/", headers={"b3": f"{T}-{P}-d"})
    assert mesh.app.header("b3").endswith("-d")
    assert mesh.app.header("x-b3-flags") == "1" and mesh.app.header("x-b3-sampled") is None
    assert mesh.app.header("uber-trace-id").endswith(":3")


def test_64_bit_ids_stay_short_in_b3_and_jaeger(mesh):
    short = "a3ce929d0e0e4736"
    mesh.get("/", headers={"x-b3-traceid": short, "x-b3-spanid": P, "x-b3-sampled": "1"})
    assert mesh.app.header("x-b3-traceid") == short
    assert mesh.app.header("b3").startswith(short + "-")
    assert mesh.app.header("traceparent").split("-")[1] == "0" * 16 + short


def test_tracestate_is_kept(mesh):
    mesh.get("/", headers={"traceparent": f"00-{T}-{P}-01", "tracestate": "congo=t61rcWkgMzE,rojo=1"})
    assert mesh.app.header("tracestate") == "congo=t61rcWkgMzE,rojo=1"


def test_baggage_crosses_between_w3c_and_jaeger(mesh):
    mesh.get("/call/x", headers={"baggage": "user=alice%20b", "uberctx-tenant": "acme"})
    assert mesh.upstream.header("uberctx-user") == "alice%20b"
    assert mesh.upstream.header("uberctx-tenant") == "acme"
    members = set(mesh.upstream.header("baggage").split(","))
    assert members == {"user=alice%20b", "tenant=acme"}


def test_formats_not_configured_are_removed(sidecar):
    sc = sidecar({"propagators": ["tracecontext"]})
    sc.get("/", headers={"b3": f"{T}-{P}-1", "uber-trace-id": f"{T}:{P}:0:1", "traceparent": f"00-{T}-{P}-01"})
    assert sc.app.header("b3") is None and sc.app.header("uber-trace-id") is None
    assert sc.app.header("traceparent").split("-")[1] == T


@pytest.mark.parametrize("configured,incoming,written,absent", [
    ("b3multi", {"b3": f"{T1}-{P}-1"}, "x-b3-traceid", "b3"),
    ("b3", {"x-b3-traceid": T1, "x-b3-spanid": P, "x-b3-sampled": "1"}, "b3", "x-b3-traceid"),
], ids=["single read with b3multi configured", "multi read with b3 configured"])
def test_b3_is_read_in_both_encodings_and_written_in_the_configured_one(sidecar, configured, incoming,
                                                                         written, absent):
    sc = sidecar({"propagators": ["tracecontext", configured]})
    sc.get("/", headers=incoming)
    (span,) = spans_of(sc.sink, T1, 1)
    assert hexid(span.parent_span_id) == P, "the caller's trace continues"
    assert attrs(span)["meshtrace.context.source"] == ("b3" if "b3" in incoming else "b3multi")
    assert sc.app.header(written) is not None and sc.app.header(absent) is None
    # A single-header deny is honoured too.
    sc.get("/", headers={"b3": f"{T2}-{P}-0"})
    assert sc.app.header("traceparent") == f"00-{T2}-{sc.app.header('traceparent').split('-')[2]}-00"
