"""Known mesh traces, as OTLP JSON, for the viewer's tests, screenshots and bench.

Each builder returns (trace_id, [resourceSpans]) for one trace, with times relative to `t0_ns`. The
shapes are those of a mesh traced by sidecars: a SERVER span per inbound hop, a CLIENT span per outbound
call, `meshtrace.context.source` on SERVER spans, HTTP semantic-convention attributes.
"""
from __future__ import annotations

import random
import time

MS = 1_000_000  # ns


def _value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def attrs(d: dict) -> list:
    return [{"key": k, "value": _value(v)} for k, v in d.items()]


class TraceBuilder:
    """Collects spans of one trace, grouped by service into resourceSpans."""

    KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}

    def __init__(self, trace_id: str, t0_ns: int):
        self.trace_id = trace_id
        self.t0 = t0_ns
        self.by_service: dict[str, list] = {}
        self._next = 1

    def span_id(self) -> str:
        self._next += 1
        return f"{int(self.trace_id[:8], 16) ^ self._next:08x}{self._next:08x}"

    def span(self, service, name, kind, start_ms, dur_ms, parent="", error=None, attributes=None,
             events=(), links=(), span_id=None):
        sid = span_id or self.span_id()
        span = {
            "traceId": self.trace_id, "spanId": sid, "parentSpanId": parent, "name": name,
            "kind": self.KINDS[kind],
            "startTimeUnixNano": str(self.t0 + int(start_ms * MS)),
            "endTimeUnixNano": str(self.t0 + int((start_ms + dur_ms) * MS)),
            "attributes": attrs(attributes or {}),
            "events": [{"timeUnixNano": str(self.t0 + int(at * MS)), "name": n, "attributes": attrs(a)}
                       for at, n, a in events],
            "links": [{"traceId": t, "spanId": s} for t, s in links],
            "status": {"code": 2, "message": error} if error else {"code": 0},
        }
        self.by_service.setdefault(service, []).append(span)
        return sid

    def server(self, service, name, start_ms, dur_ms, parent="", source="tracecontext", status=200, **kw):
        a = {"http.request.method": name.split(" ")[0], "url.path": name.split(" ")[-1],
             "http.response.status_code": status, "meshtrace.context.source": source,
             "server.address": f"{service}.shop.svc.cluster.local", "user_agent.original": "python-urllib/3.11"}
        a.update(kw.pop("attributes", {}))
        return self.span(service, name, "server", start_ms, dur_ms, parent, attributes=a, **kw)

    def client(self, service, callee, method, start_ms, dur_ms, parent, status=200, **kw):
        a = {"http.request.method": method, "server.address": f"{callee}.shop.svc.cluster.local",
             "http.response.status_code": status, "upstream.cluster": f"outbound|80||{callee}"}
        a.update(kw.pop("attributes", {}))
        return self.span(service, f"{method}", "client", start_ms, dur_ms, parent, attributes=a, **kw)

    def resource_spans(self) -> list:
        return [{
            "resource": {"attributes": attrs({"service.name": svc, "k8s.namespace.name": "shop",
                                              "k8s.pod.name": f"{svc}-7d9f8c-x2k4p",
                                              "telemetry.sdk.name": "meshtrace"})},
            "scopeSpans": [{"scope": {"name": "meshtrace", "version": "0.1.0"}, "spans": spans}],
        } for svc, spans in self.by_service.items()]


def trace_id(n: int, salt: int) -> str:
    return f"{salt:08x}{n:024x}"


def checkout(tid: str, t0: int, pay_ms=40.0, error=False, retry=False, rng=None):
    """gateway -> checkout -> (cart, payment -> db); payment fails when `error`, checkout retries it when `retry`."""
    rng = rng or random.Random(1)
    b = TraceBuilder(tid, t0)
    total = 20 + pay_ms + (pay_ms + 5 if retry else 0) + 25
    root = b.server("api-gateway", "GET /checkout", 0, total, source="none",
                    status=502 if error else 200, error="upstream returned 502" if error else None)
    c1 = b.client("api-gateway", "checkout", "POST", 1, total - 2, root, status=502 if error else 200)
    chk = b.server("checkout", "POST /checkout", 2, total - 4, c1, source="tracecontext",
                   status=502 if error else 200, error="payment failed" if error else None,
                   attributes={"user.id": "u-1042", "cart.items": 3})
    c2 = b.client("checkout", "cart", "GET", 4, 12, chk)
    cart = b.server("cart", "GET /cart", 5, 10, c2, source="b3",
                    events=[(9, "cache hit", {"cache.key": "cart:u-1042"})])
    b.span("cart", "redis GET", "client", 6, 2.5 + rng.random(), cart, attributes={"db.system": "redis"})
    at = 18
    for attempt in range(2 if retry else 1):
        failing = error and attempt == (1 if retry else 0) or (retry and attempt == 0)
        c3 = b.client("checkout", "payment", "POST", at, pay_ms, chk, status=502 if failing else 200)
        pay = b.server("payment", "POST /charge", at + 1, pay_ms - 2, c3, source="b3multi",
                       status=502 if failing else 200, error="card declined" if failing else None,
                       events=[(at + 3, "card authorized" if not failing else "card declined",
                                {"card.brand": "visa"})])
        b.span("payment", "SELECT payments", "client", at + 3, pay_ms * 0.6, pay,
               attributes={"db.system": "postgresql", "db.statement": "SELECT * FROM payments WHERE id = $1"})
        at += pay_ms + 5
    b.span("checkout", "render receipt", "internal", at, 8, chk)
    return tid, b.resource_spans()


def broken(tid: str, t0: int):
    """Propagation broke: an orphan (its caller's span never arrived), a second root (a hop restarted the
    trace), a CLIENT call to an untraced service, and a child that starts before its parent (clock skew)."""
    b = TraceBuilder(tid, t0)
    root = b.server("api-gateway", "GET /orders", 0, 90, source="none")
    c1 = b.client("api-gateway", "orders", "GET", 2, 80, root)
    orders = b.server("orders", "GET /orders", 4, 75, c1, source="jaeger")
    b.client("orders", "inventory", "GET", 10, 20, orders, attributes={"server.address": "inventory.legacy"})
    # Clock skew: the server half starts 3 ms before the client call that caused it.
    c2 = b.client("orders", "ledger", "GET", 35, 30, orders)
    b.server("ledger", "GET /ledger", 32, 25, c2, source="tracecontext")
    # An orphan: its parent (a CLIENT span of an unsidecarred caller) never arrived.
    b.server("notifications", "POST /notify", 60, 12, "00000000deadbeef", source="b3")
    # A second root: a hop that dropped the context and started over inside the same trace id.
    b.server("audit", "POST /audit", 70, 9, source="x-request-id")
    return tid, b.resource_spans()


def hostile(tid: str, t0: int):
    """Markup and script in every string a span carries."""
    b = TraceBuilder(tid, t0)
    root = b.server("api-gateway", "<img src=x onerror=alert(1)>", 0, 30, source="tracecontext",
                    attributes={"evil.value": "<script>window.__pwned=1</script>",
                                "<b>key</b>": "\"><svg onload=alert(3)>"},
                    events=[(5, "<iframe src=javascript:alert(4)>", {"x": "<img src=y onerror=alert(5)>"})])
    b.span("<svg/onload=alert(2)>", "<a href=javascript:alert(6)>click</a>", "server", 5, 10, root)
    return tid, b.resource_spans()


def linked(tid: str, t0: int, other: str, other_span: str):
    """A consumer trace linked to the span `other_span` of the producer trace `other`."""
    b = TraceBuilder(tid, t0)
    b.span("notifications", "process order-created", "consumer", 0, 15,
           attributes={"messaging.system": "kafka"}, links=[(other, other_span)])
    return tid, b.resource_spans()


def wide(tid: str, t0: int, spans: int, services=12):
    """One trace of `spans` spans, a few levels deep (the 10,000-span case)."""
    b = TraceBuilder(tid, t0)
    root = b.server("reports", "GET /report", 0, spans * 0.2 + 10)
    parents = [root]
    for i in range(1, spans):
        parent = parents[(i * 7919) % len(parents)]
        svc = f"svc-{i % services:02d}"
        sid = b.span(svc, f"op-{i % 37}", "server" if i % 3 else "client", 1 + i * 0.15, 0.5 + (i % 11) * 0.3,
                     parent, attributes={"i": i})
        if len(parents) < 400:
            parents.append(sid)
    return tid, b.resource_spans()


def root_span_id(resource_spans: list) -> str:
    """The span id of the first span without a parent."""
    for rs in resource_spans:
        for span in rs["scopeSpans"][0]["spans"]:
            if not span["parentSpanId"]:
                return span["spanId"]
    raise ValueError("no root")


def now_ns() -> int:
    return time.time_ns()
