"""Load generator: GET the shop's entry through its sidecar, at a fixed rate,
for a bounded time. Requests rotate through the ways a trace can arrive at the
edge: no context (the frontend's sidecar starts the trace), or a caller's
context in W3C, B3 single, B3 multi or Jaeger form.

Environment (compose form): TARGET host:port (default frontend:15006),
RATE requests per second (default 2), DURATION seconds (default 600, 0 = forever).
"""
from __future__ import annotations

import http.client
import os
import secrets
import time
from dataclasses import dataclass

try:
    from topology import ENTRY, ENTRY_PATH
except ImportError:  # imported as integration.shop.loadgen
    from .topology import ENTRY, ENTRY_PATH

KINDS = ["none", "tracecontext", "b3", "b3multi", "jaeger"]


@dataclass
class Sent:
    kind: str              # how the context arrived
    trace_id: str          # 32 hex; learned from the answer when kind == "none"
    parent_span_id: str    # the caller's span id, '' for a new trace
    status: int


def context_headers(kind: str, trace_id: str, span_id: str) -> dict[str, str]:
    if kind == "tracecontext":
        return {"traceparent": f"00-{trace_id}-{span_id}-01", "baggage": "shop.user=demo"}
    if kind == "b3":
        return {"b3": f"{trace_id}-{span_id}-1"}
    if kind == "b3multi":
        return {"x-b3-traceid": trace_id, "x-b3-spanid": span_id, "x-b3-sampled": "1"}
    if kind == "jaeger":
        return {"uber-trace-id": f"{trace_id}:{span_id}:0:1", "uberctx-shop.user": "demo"}
    return {}


def send_one(target: tuple[str, int], kind: str) -> Sent:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = context_headers(kind, trace_id, span_id)
    conn = http.client.HTTPConnection(*target, timeout=15)
    try:
        conn.request("GET", ENTRY_PATH, headers={**headers, "host": ENTRY})
        resp = conn.getresponse()
        resp.read()
        seen = resp.getheader("x-shop-trace-id", "")
        status = resp.status
    except OSError:
        seen, status = "", 0
    finally:
        conn.close()
    if kind == "none":
        return Sent(kind, seen, "", status)
    return Sent(kind, trace_id, span_id, status)


def run(target: tuple[str, int], rate: float, duration: float, stop=lambda: False, on_sent=None) -> list[Sent]:
    """Sends `rate` requests per second for `duration` seconds (0: until `stop()`)."""
    sent: list[Sent] = []
    start = time.monotonic()
    i = 0
    while not stop() and (duration <= 0 or time.monotonic() - start < duration):
        s = send_one(target, KINDS[i % len(KINDS)])
        sent.append(s)
        if on_sent:
            on_sent(s)
        i += 1
        next_at = start + i / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    return sent


def main() -> None:
    host, port = os.environ.get("TARGET", f"{ENTRY}:15006").rsplit(":", 1)
    rate = float(os.environ.get("RATE", "2"))
    duration = float(os.environ.get("DURATION", "600"))
    sent = run((host, int(port)), rate, duration,
               on_sent=lambda s: print(f"loadgen: {s.status} trace {s.trace_id or '-'} (context: {s.kind})",
                                       flush=True))
    print(f"loadgen: done, {sum(s.status == 200 for s in sent)} of {len(sent)} answered 200", flush=True)


if __name__ == "__main__":
    main()
