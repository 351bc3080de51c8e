"""Envoy bootstrap (JSON) for one shop service's sidecar: an inbound listener
in front of the application and an outbound listener the application calls
its upstreams through (routed by Host), meshtrace on both with
`direction: auto`, and the collector cluster.

Used by integration/demo.py (everything on 127.0.0.1) and, as
`python sidecar.py`, by the compose sidecar image (addresses from the
environment).
"""
from __future__ import annotations

import json
import os
import sys

from meshtrace_testkit.envoy import bootstrap as envoy_bootstrap
from meshtrace_testkit.envoy import cluster, http_listener, route, virtual_host, wasm_filter

try:
    from topology import PROPAGATORS, callees
except ImportError:  # imported as integration.shop.sidecar
    from .topology import PROPAGATORS, callees


def meshtrace_filter(service: str, wasm_path: str, flush_ms: int = 1000) -> dict:
    config = {
        "direction": "auto",
        "propagators": PROPAGATORS,
        "sampling": {"randomSamplingPercentage": 100},
        "exporter": {"cluster": "meshtrace-collector", "flushIntervalMs": flush_ms},
    }
    return wasm_filter(config, {"OTEL_SERVICE_NAME": service}, wasm=wasm_path)


def bootstrap(service: str, *, wasm_path: str, inbound: tuple[str, int], outbound: tuple[str, int],
              app: tuple[str, int], upstreams: dict[str, tuple[str, int]], collector: tuple[str, int],
              admin: tuple[str, int], flush_ms: int = 1000) -> dict:
    """`upstreams` maps each callee name to the address of its sidecar's inbound listener. No `tracing:`
    block on the listeners: Envoy's own tracer stays off, meshtrace owns the headers."""
    flt = [meshtrace_filter(service, wasm_path, flush_ms)]
    inbound_vhosts = [virtual_host([route("app", name=f"{service}-inbound", timeout="10s")], name="app")]
    outbound_vhosts = [virtual_host([route(callee, name=f"{service}-to-{callee}", timeout="10s")], name=callee,
                                    domains=[callee, f"{callee}:*"]) for callee in upstreams]
    clusters = [cluster("app", app[1], host=app[0]), cluster("meshtrace-collector", collector[1], host=collector[0])]
    clusters += [cluster(callee, port, host=host) for callee, (host, port) in upstreams.items()]
    listeners = [http_listener("inbound", inbound[1], host=inbound[0], direction="INBOUND",
                               virtual_hosts=inbound_vhosts, filters=flt)]
    if upstreams:
        listeners.append(http_listener("outbound", outbound[1], host=outbound[0], direction="OUTBOUND",
                                       virtual_hosts=outbound_vhosts, filters=flt))
    return envoy_bootstrap(
        listeners, clusters, admin=admin,
        node={"id": f"{service}-sidecar", "cluster": service,
              "metadata": {"NAMESPACE": "shop", "NAME": f"{service}-0", "LABELS": {"app": service, "version": "v1"}}})


def main() -> None:
    """Compose form: one sidecar per container, upstreams are `{callee}:15006`."""
    service = os.environ["SERVICE_NAME"]
    collector_host, collector_port = os.environ.get("COLLECTOR", "collector:4318").rsplit(":", 1)
    doc = bootstrap(
        service,
        wasm_path=os.environ.get("MESHTRACE_WASM", "/etc/meshtrace/plugin.wasm"),
        inbound=("0.0.0.0", 15006),
        outbound=("127.0.0.1", 15001),
        app=("127.0.0.1", int(os.environ.get("APP_PORT", "8080"))),
        upstreams={callee: (callee, 15006) for callee in callees(service)},
        collector=(collector_host, int(collector_port)),
        admin=("127.0.0.1", 15000),  # admin stays inside the container
    )
    json.dump(doc, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
