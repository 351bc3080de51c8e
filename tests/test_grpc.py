"""gRPC through the sidecar, with a real gRPC server and client (grpcio):
spans follow OpenTelemetry's RPC conventions and take their status from the
gRPC status (trailers, or headers for trailers-only answers), not from the
HTTP 200 that carries a failed call."""
from concurrent import futures

import grpc
import pytest

from meshtrace_testkit import LOOPBACK
from meshtrace_testkit.sidecar import Sidecar, attrs, spans_of

SERVICE = "shop.v1.Cart"
P = "00f067aa0ba902b7"


class GrpcServer:
    """`/shop.v1.Cart/AddItem` echoes its request; `/shop.v1.Cart/Fail`
    fails with the status code named in its request (before any message:
    a trailers-only answer)."""

    def __init__(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        handlers = {
            "AddItem": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req),
            "Fail": grpc.unary_unary_rpc_method_handler(self._fail),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = self.server.add_insecure_port(f"{LOOPBACK}:0")
        self.server.start()
        self.outbound_port = None

    @staticmethod
    def _fail(request, context):
        context.abort(getattr(grpc.StatusCode, request.decode()), "failed on purpose")

    def close(self):
        self.server.stop(0)


@pytest.fixture(scope="module")
def grpc_sidecar():
    sc = Sidecar({}, app=GrpcServer(), upstream=GrpcServer(), h2=True)
    yield sc
    assert not sc.close(), "the module panicked"


def call(port: int, method: str, payload: bytes, trace_id: str):
    """One unary call; returns the gRPC status code."""
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        rpc = channel.unary_unary(f"/{SERVICE}/{method}")
        try:
            rpc(payload, metadata=[("traceparent", f"00-{trace_id}-{P}-01")], timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()


def one_span(sc, trace_id):
    (span,) = spans_of(sc.sink, trace_id, 1)
    return span, attrs(span)


def test_a_call_is_named_and_tagged_by_the_rpc_conventions(grpc_sidecar):
    sc = grpc_sidecar
    t = "a1" * 16
    assert call(sc.inbound_port, "AddItem", b"x", t) == grpc.StatusCode.OK
    span, a = one_span(sc, t)
    assert span.name == f"{SERVICE}/AddItem"
    assert (a["rpc.system"], a["rpc.service"], a["rpc.method"]) == ("grpc", SERVICE, "AddItem")
    assert a["rpc.grpc.status_code"] == 0, "from the trailers"
    assert span.status.code == 0
    assert a["network.protocol.version"] == "2"


# (code, SERVER status, CLIENT status); 2 = ERROR, 0 = UNSET.
CODES = [
    ("NOT_FOUND", 0, 2),
    ("INVALID_ARGUMENT", 0, 2),
    ("PERMISSION_DENIED", 0, 2),
    ("INTERNAL", 2, 2),
    ("UNAVAILABLE", 2, 2),
    ("UNIMPLEMENTED", 2, 2),
    ("DEADLINE_EXCEEDED", 2, 2),
]


@pytest.mark.parametrize("code,server_status,client_status", CODES, ids=[c[0] for c in CODES])
def test_a_failed_call_answered_with_http_200_gets_the_grpc_status(grpc_sidecar, code, server_status,
                                                                     client_status):
    sc = grpc_sidecar
    number = getattr(grpc.StatusCode, code).value[0]
    for kind, port, want, t in (("server", sc.inbound_port, server_status, f"{number:02x}" * 16),
                                ("client", sc.outbound_port, client_status, f"{number:02x}" + "c" * 30)):
        assert call(port, "Fail", code.encode(), t) == getattr(grpc.StatusCode, code)
        span, a = one_span(sc, t)
        assert span.kind == (2 if kind == "server" else 3)
        assert a["http.response.status_code"] == 200, "gRPC failures travel in HTTP 200"
        assert a["rpc.grpc.status_code"] == number, f"{kind}: from a trailers-only answer"
        assert span.status.code == want, f"{kind} span with {code}"
        assert (a.get("error.type") == code) == (want == 2), a.get("error.type")


def test_an_unreachable_upstream_is_unavailable(sidecar):
    dead = GrpcServer()
    sc = sidecar({}, app=GrpcServer(), upstream=dead, h2=True)
    dead.close()
    t = "dd" * 16
    assert call(sc.outbound_port, "AddItem", b"x", t) == grpc.StatusCode.UNAVAILABLE
    span, a = one_span(sc, t)
    assert a["rpc.grpc.status_code"] == 14, "Envoy's local reply, as gRPC"
    assert span.status.code == 2 and a["error.type"] == "UNAVAILABLE"
    assert "UF" in a["response_flags"].split(",")
