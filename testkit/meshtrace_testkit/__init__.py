"""meshtrace's test kit: what the filter's tests (tests/), the collector's Python and browser tests
(collector/tests/), the demo and deployment tests (integration/) and the benchmarks (bench/) all need,
once.

    net        LOOPBACK, free_port, request, wait_until, wait_for_http, wait_for_port, NotReady
    procs      `Process` (start, wait until ready, stop), `stop` a child for sure, a log's tail,
               a process's RSS and CPU time
    paths      ROOT, WASM, RELEASE_COLLECTOR, envoy_bin(), collector_bin()
    envoy      Envoy bootstrap builders and `Envoy`, a real Envoy process
    collector  `Collector`, the real meshtrace-collector on loopback
    jaeger     reading the Jaeger query API's trace JSON
    sidecar    the filter's test pod (`Sidecar`: Envoy + recording app and upstream + OTLP sink);
               imported on its own, as it needs the venv's opentelemetry-proto

Only the standard library is needed outside `sidecar`. `make` puts this directory on the project venv's
path (a .pth file): `import meshtrace_testkit` works from any directory with .venv/bin/python.
"""
from .collector import Collector
from .envoy import (Envoy, bootstrap, cluster, direct_response, http_listener, route, virtual_host,
                    wasm_filter)
from .net import (LOOPBACK, NotReady, free_port, http_ok, port_open, request, wait_for_http, wait_for_port,
                  wait_until)
from .paths import RELEASE_COLLECTOR, ROOT, WASM, collector_bin, envoy_bin

__all__ = [
    "Collector", "Envoy", "bootstrap", "cluster", "direct_response", "http_listener", "route",
    "virtual_host", "wasm_filter", "LOOPBACK", "NotReady", "free_port", "http_ok", "port_open", "request",
    "wait_for_http", "wait_for_port", "wait_until", "RELEASE_COLLECTOR", "ROOT", "WASM", "collector_bin",
    "envoy_bin",
]
