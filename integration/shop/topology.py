"""The demo shop: which service calls which, and which trace format each
application forwards. One definition for `make demo` (local processes) and
the docker-compose sidecars.

    loadgen -> frontend (W3C only) -> catalog (B3 only)     -> inventory
                                   -> cart    (Jaeger only) -> payment

Every application forwards ONLY the headers of its own format; every
sidecar's meshtrace lists all formats, so the trace survives each hop.
"""
from __future__ import annotations

# Headers an application of each format copies from its request to its calls.
FORWARDED = {
    "w3c": ("traceparent", "tracestate", "baggage"),
    "b3": ("b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"),
    "jaeger": ("uber-trace-id",),  # plus every uberctx-* header
}
PREFIXES = {"w3c": (), "b3": (), "jaeger": ("uberctx-",)}

# name -> (format the application forwards, [(callee, path), ...])
SERVICES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "frontend": ("w3c", [("catalog", "/products"), ("cart", "/checkout")]),
    "catalog": ("b3", [("inventory", "/stock")]),
    "cart": ("jaeger", [("payment", "/charge")]),
    "inventory": ("b3", []),
    "payment": ("w3c", []),
}
ENTRY = "frontend"
ENTRY_PATH = "/checkout"

# Every propagator meshtrace knows: a sidecar must read whatever its
# application forwards and write what the next application understands.
PROPAGATORS = ["tracecontext", "baggage", "b3", "b3multi", "jaeger"]


def callees(service: str) -> list[str]:
    return [callee for callee, _ in SERVICES[service][1]]


def expected_edges() -> list[tuple[str, str]]:
    """Caller -> callee pairs one entry request crosses, depth first."""
    out: list[tuple[str, str]] = []

    def walk(svc: str):
        for callee in callees(svc):
            out.append((svc, callee))
            walk(callee)

    walk(ENTRY)
    return out


def expected_span_count() -> int:
    """One SERVER span per service visited, one CLIENT span per call."""
    return 1 + 2 * len(expected_edges())
