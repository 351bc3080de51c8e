"""Envoy bootstrap (JSON) for one shop service's sidecar: an inbound listener
in front of the application and an outbound listener the application calls
its upstreams through (routed by Host), meshtrace on both with
`direction: auto`, and the collector cluster.

Used by integration/demo.py (everything on 127.0.0.1) and, as
`python sidecar.py`, by the compose sidecar image (addresses from the
environment).
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys

try:
    from topology import PROPAGATORS, callees
except ImportError:  # imported as integration.shop.sidecar
    from .topology import PROPAGATORS, callees

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def meshtrace_filter(service: str, wasm_path: str, flush_ms: int = 1000) -> dict:
    config = {
        "direction": "auto",
        "propagators": PROPAGATORS,
        "sampling": {"randomSamplingPercentage": 100},
        "exporter": {"cluster": "meshtrace-collector", "flushIntervalMs": flush_ms},
    }
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "meshtrace",
                "root_id": "meshtrace",
                # A tracer must never take traffic down with it.
                "failure_policy": "FAIL_OPEN",
                "vm_config": {
                    "vm_id": "meshtrace",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm_path}},
                    "environment_variables": {"key_values": {"OTEL_SERVICE_NAME": service}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(config),
                },
            },
        },
    }


def _cluster(name: str, host: str, port: int) -> dict:
    try:
        ipaddress.ip_address(host)
        kind = "STATIC"
    except ValueError:
        kind = "STRICT_DNS"
    return {
        "name": name,
        "type": kind,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
    }


def _listener(name: str, direction: str, address: str, port: int, vhosts: list, flt: dict) -> dict:
    return {
        "name": name,
        "traffic_direction": direction,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": name,
                "route_config": {"virtual_hosts": vhosts},
                # No `tracing:` block: Envoy's own tracer stays off, meshtrace owns the headers.
                "http_filters": [flt, {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
            },
        }]}],
    }


def bootstrap(service: str, *, wasm_path: str, inbound: tuple[str, int], outbound: tuple[str, int],
              app: tuple[str, int], upstreams: dict[str, tuple[str, int]], collector: tuple[str, int],
              admin: tuple[str, int], flush_ms: int = 1000) -> dict:
    """`upstreams` maps each callee name to the address of its sidecar's inbound listener."""
    flt = meshtrace_filter(service, wasm_path, flush_ms)
    inbound_vhosts = [{"name": "app", "domains": ["*"], "routes": [
        {"name": f"{service}-inbound", "match": {"prefix": "/"}, "route": {"cluster": "app", "timeout": "10s"}}]}]
    outbound_vhosts = [{
        "name": callee, "domains": [callee, f"{callee}:*"],
        "routes": [{"name": f"{service}-to-{callee}", "match": {"prefix": "/"},
                    "route": {"cluster": callee, "timeout": "10s"}}],
    } for callee in upstreams]
    clusters = [_cluster("app", *app), _cluster("meshtrace-collector", *collector)]
    clusters += [_cluster(callee, *addr) for callee, addr in upstreams.items()]
    listeners = [_listener("inbound", "INBOUND", *inbound, inbound_vhosts, flt)]
    if upstreams:
        listeners.append(_listener("outbound", "OUTBOUND", *outbound, outbound_vhosts, flt))
    return {
        "node": {"id": f"{service}-sidecar", "cluster": service,
                 "metadata": {"NAMESPACE": "shop", "NAME": f"{service}-0",
                              "LABELS": {"app": service, "version": "v1"}}},
        "admin": {"address": {"socket_address": {"address": admin[0], "port_value": admin[1]}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


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
