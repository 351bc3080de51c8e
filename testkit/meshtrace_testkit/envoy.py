"""Envoy bootstraps and a real Envoy process.

The builders return the JSON form of Envoy's v3 API, one function per piece a test or benchmark varies:
`bootstrap(listeners, clusters)`, `http_listener(name, port, routes)`, `route(cluster)`,
`direct_response(status)`, `virtual_host(routes)`, `cluster(name, port)` and `wasm_filter(config)`
(meshtrace itself). `Envoy(bootstrap).start()` runs one with an admin port of its own and waits until
it is ready.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
import tempfile
import time
from pathlib import Path

from . import procs
from .net import LOOPBACK, free_port, http_ok, request, wait_until
from .paths import WASM, envoy_bin

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
# Connection-manager fields that make loopback clients internal: Envoy strips x-envoy-* headers
# (x-envoy-force-trace among them) from requests it does not consider internal; a mesh trusts its own
# traffic.
TRUST_LOOPBACK = {"use_remote_address": True, "internal_address_config": {
    "cidr_ranges": [{"address_prefix": LOOPBACK, "prefix_len": 32}]}}


def socket_address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def wasm_filter(config: dict, env: dict | None = None, wasm: Path | str = WASM, vm_id: str = "meshtrace") -> dict:
    """The HTTP filter entry that runs meshtrace (`wasm`, by default dist/meshtrace.wasm) with `config`
    as its plugin configuration and `env` as its VM's environment variables. Plugins with the same
    `vm_id` share a VM per worker (and its shared data). FAIL_OPEN: a tracer must never take traffic down
    with it."""
    vm = {
        "vm_id": vm_id,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(wasm)}},
    }
    if env:
        vm["environment_variables"] = {"key_values": env}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "meshtrace",
                "root_id": "meshtrace",
                "failure_policy": "FAIL_OPEN",
                "vm_config": vm,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(config),
                },
            },
        },
    }


def cluster(name: str, port: int | None, host: str = LOOPBACK, h2: bool = False) -> dict:
    """A cluster of one endpoint (none when `port` is None or 0): STATIC for an IP address, STRICT_DNS for
    a name. `h2`: upstream requests keep the downstream protocol (HTTP/2 for gRPC, else HTTP/1.1)."""
    endpoints = []
    if port:
        endpoints = [{"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}]
    try:
        ipaddress.ip_address(host)
        kind = "STATIC"
    except ValueError:
        kind = "STRICT_DNS"
    protocol = {"typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}},
    }}} if h2 else {}
    return {
        "name": name,
        "type": kind,
        "connect_timeout": "1s",
        **protocol,
        "load_assignment": {"cluster_name": name, "endpoints": endpoints},
    }


def route(cluster: str, name: str | None = None, timeout: str | None = None,
          retry_policy: dict | None = None) -> dict:
    """Every path to `cluster`. The name is what the filter reads as `xds.route_name`."""
    action = {"cluster": cluster}
    if timeout:
        action["timeout"] = timeout
    if retry_policy:
        action["retry_policy"] = retry_policy
    return {**({"name": name} if name else {}), "match": {"prefix": "/"}, "route": action}


def direct_response(status: int, body: str | None = None) -> dict:
    """Every path answered by Envoy itself."""
    answer = {"status": status}
    if body is not None:
        answer["body"] = {"inline_string": body}
    return {"match": {"prefix": "/"}, "direct_response": answer}


def virtual_host(routes: list, name: str = "all", domains: tuple | list = ("*",)) -> dict:
    return {"name": name, "domains": list(domains), "routes": routes}


def http_listener(name: str, port: int, routes: list | None = None, *, virtual_hosts: list | None = None,
                  filters: list | tuple = (), host: str = LOOPBACK, direction: str | None = None,
                  hcm: dict | None = None, router: dict | None = None, exact_balance: bool = False) -> dict:
    """An HTTP connection manager on `host:port` running `filters` then the router, over `routes` (one
    virtual host for every domain) or `virtual_hosts`. `direction` is the listener's traffic_direction
    (INBOUND or OUTBOUND, which the filter reads), `hcm` more connection-manager fields (`tracing`,
    TRUST_LOOPBACK...), `router` more router fields; `exact_balance` spreads connections evenly over the
    workers."""
    if virtual_hosts is None:
        virtual_hosts = [virtual_host(routes or [])]
    return {
        **({"connection_balance_config": {"exact_balance": {}}} if exact_balance else {}),
        "name": name,
        **({"traffic_direction": direction} if direction else {}),
        "address": socket_address(host, port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": name,
                **(hcm or {}),
                "route_config": {"virtual_hosts": virtual_hosts},
                "http_filters": [*filters, {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": ROUTER, **(router or {})},
                }],
            },
        }]}],
    }


def bootstrap(listeners: list, clusters: list = (), admin: tuple[str, int] | None = None,
              node: dict | None = None) -> dict:
    """A static bootstrap. Without `admin` (host, port), `Envoy` gives it an admin port of its own."""
    doc = {"static_resources": {"listeners": list(listeners), "clusters": list(clusters)}}
    if node:
        doc["node"] = node
    if admin:
        doc["admin"] = {"address": socket_address(*admin)}
    return doc


class Envoy:
    """A real Envoy process (the project venv's, see `paths.envoy_bin`) running `bootstrap`, written as
    JSON with its log beside it, in `directory` (by default a temporary one, removed by `stop`).

    `cpus`: pin to these CPUs (a taskset list), for benchmarks. `own_session`: a process group of its own,
    so Ctrl-C reaches only the script that started it."""

    def __init__(self, bootstrap: dict, concurrency: int = 1, cpus: str | None = None,
                 directory: Path | None = None, name: str = "envoy", own_session: bool = False):
        bootstrap = dict(bootstrap)
        if "admin" in bootstrap:
            self.admin_port = bootstrap["admin"]["address"]["socket_address"]["port_value"]
        else:
            self.admin_port = free_port()
            bootstrap["admin"] = {"address": socket_address(LOOPBACK, self.admin_port)}
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="meshtrace-envoy-")
        self.dir = Path(directory or self._tmp.name)
        self.name = name
        self.config_path = self.dir / f"{name}.json"
        self.config_path.write_text(json.dumps(bootstrap, indent=1))
        self.log_path = self.dir / f"{name}.log"
        self.concurrency = concurrency
        self.cpus = cpus
        self.own_session = own_session
        self.proc = None

    def start(self, expect_ready: bool = True, timeout: float = 60.0) -> "Envoy":
        pin = ["taskset", "-c", self.cpus] if self.cpus else []
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*pin, str(envoy_bin()), "-c", str(self.config_path), "--concurrency", str(self.concurrency),
                 "--use-dynamic-base-id", "--disable-hot-restart", "-l", "info",
                 "--component-log-level", "wasm:debug"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=self.own_session,
            )
        if expect_ready:
            try:
                self.wait_ready(timeout)
            except BaseException:
                procs.stop(self.proc, 10)
                raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the admin's /ready answers 200; fails at once, with the log's end, if Envoy exits."""
        wait_until(lambda: http_ok(self.admin_port, "/ready"), timeout, f"{self.name} ready", interval=0.05,
                   proc=self.proc, log=self.log_path)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self, match: str = "meshtrace") -> dict:
        """The admin's stats whose name matches `match` (a regex; "" for all), by name."""
        path = "/stats?format=json" + (f"&filter={match}" if match else "")
        _, _, body = request(self.admin_port, path)
        return {s["name"]: s.get("value", 0) for s in json.loads(body)["stats"] if "name" in s}

    def stats_all(self) -> dict:
        return self.stats("")

    def stat(self, name: str) -> int:
        """The meshtrace stat whose name ends with `name` (0 when absent)."""
        for k, v in self.stats().items():
            if k.endswith(name):
                return int(v)
        return 0

    def settled(self, name: str) -> int:
        """A counter once the filter has flushed what it counted: the module adds its counts to Envoy's
        stats on the root context's tick (at most every 200 ms), so a value is settled when it holds
        across two ticks."""
        last = self.stat(name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.45)
            now = self.stat(name)
            if now == last:
                return now
            last = now
        return last

    def panics(self) -> list[str]:
        """Lines where the module panicked (which kills its VM)."""
        return [line for line in self.log_text().splitlines() if "panicked at" in line]

    def stop(self) -> None:
        procs.stop(self.proc, 10)
        if self._tmp:
            self._tmp.cleanup()
