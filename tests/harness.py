"""Real parts for the filter's tests: Envoy from the project venv running
dist/meshtrace.wasm, a recording application, an upstream, and an OTLP sink.

Everything listens on 127.0.0.1 on ports the kernel hands out.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "dist" / "meshtrace.wasm"
ENVOY = Path(sys.executable).parent / "envoy"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Client:
    """A keep-alive HTTP/1.1 client, for many requests in a row."""

    def __init__(self, port, timeout=10.0):
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)

    def get(self, path="/", headers=None):
        self.conn.request("GET", path, headers=headers or {})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self):
        self.conn.close()


def request(port, path="/", headers=None, method="GET", timeout=10.0, body=None):
    """One HTTP/1.1 request; returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and TCP_NODELAY: the test servers
    answer in small writes, which Nagle's algorithm would hold for a delayed
    ACK (40 ms a request)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass


class _Server:
    """A threaded HTTP server on a free loopback port."""

    def __init__(self, handler_cls):
        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), handler_cls)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class JsonServer(_Server):
    """Answers every GET with `self.status` and `self.body` (mutable)."""

    def __init__(self, body: bytes = b"{}", status: int = 200):
        self.body, self.status, self.hits = body, status, 0
        srv = self

        class H(QuietHandler):

            def do_GET(self):
                srv.hits += 1
                srv.last_path = self.path
                srv.last_headers = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(srv.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(srv.body)))
                self.end_headers()
                self.wfile.write(srv.body)

        super().__init__(H)


class Recorder(_Server):
    """An application or upstream: records every request's headers.

    Paths: `/status/N` answers N; `/slow/MS` answers after MS ms;
    `/respond/NAME/VALUE` answers with that response header;
    `/call/...` makes an outbound request through `outbound_port`, forwarding
    the headers in `forward` it received (by default every trace header and
    x-request-id), and answers with the upstream's status.
    """

    FORWARD = ("traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid",
               "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id", "x-request-id")

    def __init__(self, name="app", forward=FORWARD):
        self.name = name
        self.forward = tuple(forward)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.outbound_port = None
        super().__init__(self._handler())

    def _handler(self):
        rec = self

        class H(QuietHandler):

            def do_GET(self):
                # Read the body: left on a kept-alive connection it would be
                # taken for the next request.
                self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {}
                for k, v in self.headers.items():
                    headers.setdefault(k.lower(), []).append(v)
                with rec.lock:
                    rec.requests.append({"path": self.path, "headers": headers})
                status = 200
                extra = {}
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[0] == "status" and len(parts) > 1:
                    status = int(parts[1])
                elif parts[0] == "slow" and len(parts) > 1:
                    time.sleep(int(parts[1]) / 1000)
                elif parts[0] == "respond" and len(parts) > 2:
                    extra[parts[1]] = urllib.parse.unquote(parts[2])
                elif parts[0] == "call" and rec.outbound_port:
                    fwd = {k: v[0] for k, v in headers.items()
                           if k in rec.forward or (k.startswith("uberctx-") and "baggage" in rec.forward)}
                    fwd["host"] = "upstream.local"
                    query = self.path.partition("?")[2]
                    rest = "/" + "/".join(parts[1:]) + (f"?{query}" if query else "")
                    status, _, _ = request(rec.outbound_port, rest, headers=fwd)
                body = json.dumps({"from": rec.name}).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        return H

    def last(self) -> dict:
        with self.lock:
            return self.requests[-1]["headers"]

    def by_path(self, path: str) -> dict | None:
        """The headers of the last request to `path`."""
        with self.lock:
            found = [r["headers"] for r in self.requests if r["path"] == path]
        return found[-1] if found else None

    def header(self, name: str):
        values = self.last().get(name)
        return values[0] if values else None


class TraceContextApp(_Server):
    """The application of the W3C trace-context test suite's protocol: a POST
    carries a JSON list of `{"url", "arguments"}`; for each, the app POSTs
    `arguments` to `url` through `outbound_port` (the sidecar's outbound
    listener), forwarding the traceparent and tracestate it received and
    nothing else, and answers once every call is done."""

    def __init__(self):
        self.outbound_port = None
        app = self

        class H(QuietHandler):

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                calls = json.loads(body or b"[]") or []
                fwd = [(k, v) for k, v in self.headers.items() if k.lower() in ("traceparent", "tracestate")]
                for call in calls:
                    url = urllib.parse.urlsplit(call["url"])
                    conn = http.client.HTTPConnection(LOOPBACK, app.outbound_port, timeout=10)
                    try:
                        conn.putrequest("POST", url.path or "/", skip_host=True)
                        conn.putheader("host", url.netloc)
                        for k, v in fwd:
                            conn.putheader(k, v)
                        payload = json.dumps(call.get("arguments", [])).encode()
                        conn.putheader("content-type", "application/json")
                        conn.putheader("content-length", str(len(payload)))
                        conn.endheaders(payload)
                        conn.getresponse().read()
                    finally:
                        conn.close()
                out = b"{}"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        super().__init__(H)


@dataclass
class Sink(_Server):
    """An OTLP/HTTP receiver that decodes what the filter exports.

    `script` is a list of statuses answered to the next requests (then 200);
    `hang` makes it never answer.
    """

    script: list = field(default_factory=list)
    retry_after: str | None = None
    hang: bool = False

    def __post_init__(self):
        self.batches: list[ExportTraceServiceRequest] = []
        self.attempts = 0
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def _handler(self):
        sink = self

        class H(QuietHandler):

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with sink.lock:
                    sink.attempts += 1
                    status = sink.script.pop(0) if sink.script else 200
                    if status == 200:
                        req = ExportTraceServiceRequest()
                        req.ParseFromString(body)
                        sink.batches.append(req)
                        sink.last_headers = {k.lower(): v for k, v in self.headers.items()}
                if sink.hang:
                    time.sleep(30)
                    return
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                if status != 200 and sink.retry_after:
                    self.send_header("retry-after", sink.retry_after)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        return H

    def spans(self):
        """Every exported span as (resource attributes, span)."""
        out = []
        with self.lock:
            for batch in self.batches:
                for rs in batch.resource_spans:
                    res = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            out.append((res, s))
        return out

    def wait_spans(self, n, timeout=10.0):
        return wait_until(lambda: len(self.spans()) >= n and self.spans(), timeout,
                          what=f"{n} exported spans (have {len(self.spans())})")


def value_of(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(span) -> dict:
    return {kv.key: value_of(kv.value) for kv in span.attributes}


def hexid(b: bytes) -> str:
    return b.hex()


def wasm_filter(config: dict, env: dict | None = None) -> dict:
    vm = {
        "vm_id": "meshtrace",
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(WASM)}},
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


def cluster(name: str, port: int | None, timeout="5s", h2=False) -> dict:
    """A static loopback cluster; `h2`: upstream requests keep the
    downstream protocol (HTTP/2 for gRPC, HTTP/1.1 otherwise)."""
    endpoints = []
    if port:
        endpoints = [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": LOOPBACK, "port_value": port}}}}]}]
    protocol = {"typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}},
    }}} if h2 else {}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        **protocol,
        "load_assignment": {"cluster_name": name, "endpoints": endpoints},
    }


def listener(name: str, port: int, direction: str, target: str, filters: list, exact_balance=False,
             internal=False, retry_policy: dict | None = None) -> dict:
    extra = {"connection_balance_config": {"exact_balance": {}}} if exact_balance else {}
    # Envoy strips x-envoy-* headers (x-envoy-force-trace among them) from
    # requests it does not consider internal; a mesh trusts its own traffic.
    trust = {"use_remote_address": True, "internal_address_config": {
        "cidr_ranges": [{"address_prefix": LOOPBACK, "prefix_len": 32}]}} if internal else {}
    return {
        **extra,
        "name": name,
        "traffic_direction": direction,
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                **trust,
                "route_config": {"virtual_hosts": [{
                    "name": "all", "domains": ["*"],
                    "routes": [{"name": f"{name}-route", "match": {"prefix": "/"},
                                "route": {"cluster": target, "timeout": "10s",
                                          **({"retry_policy": retry_policy} if retry_policy else {})}}],
                }]},
                "http_filters": filters + [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
            },
        }]}],
    }


class Envoy:
    """A real Envoy process with a generated JSON bootstrap."""

    def __init__(self, bootstrap: dict, concurrency=1, cpus: str | None = None):
        self.admin_port = free_port()
        bootstrap = dict(bootstrap)
        bootstrap["admin"] = {"address": {"socket_address": {"address": LOOPBACK, "port_value": self.admin_port}}}
        self.dir = tempfile.TemporaryDirectory(prefix="meshtrace-envoy-")
        self.config_path = Path(self.dir.name) / "envoy.json"
        self.config_path.write_text(json.dumps(bootstrap, indent=1))
        self.log_path = Path(self.dir.name) / "envoy.log"
        self.concurrency = concurrency
        # Pin to these CPUs (taskset list), for benchmarks.
        self.cpus = cpus
        self.proc = None

    def start(self, expect_ready=True):
        self.log = open(self.log_path, "wb")
        pin = ["taskset", "-c", self.cpus] if self.cpus else []
        self.proc = subprocess.Popen(
            [*pin, str(ENVOY), "-c", str(self.config_path), "--concurrency", str(self.concurrency),
             "--use-dynamic-base-id", "--disable-hot-restart", "-l", "info",
             "--component-log-level", "wasm:debug"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        if expect_ready:
            wait_until(self._ready, timeout=30, what=f"envoy ready (log: {self.log_path})")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"envoy exited {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            status, _, body = request(self.admin_port, "/ready", timeout=1)
            return status == 200
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict:
        _, _, body = request(self.admin_port, "/stats?format=json&filter=meshtrace")
        return {s["name"]: s.get("value", 0) for s in json.loads(body)["stats"] if "name" in s}

    def stats_all(self) -> dict:
        _, _, body = request(self.admin_port, "/stats?format=json")
        return {s["name"]: s.get("value", 0) for s in json.loads(body)["stats"] if "name" in s}

    def settled(self, name: str) -> int:
        """A counter once the filter has flushed what it counted: the module
        adds its counts to Envoy's stats on the root context's tick (at most
        every 200 ms), so a value is settled when it holds across two ticks."""
        last = self.stat(name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.45)
            now = self.stat(name)
            if now == last:
                return now
            last = now
        return last

    def stat(self, name: str) -> int:
        for k, v in self.stats().items():
            if k.endswith(name):
                return int(v)
        return 0

    def panics(self) -> list[str]:
        """Lines where the module panicked (which kills its VM)."""
        return [l for l in self.log_text().splitlines() if "panicked at" in l]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        self.dir.cleanup()


@dataclass
class Sidecar:
    """One pod: an inbound listener in front of the app and an outbound one
    in front of the upstream, meshtrace on both, exporting to `sink`."""

    config: dict
    env: dict | None = None
    concurrency: int = 1
    collector_port: int | None = None
    node: dict | None = None
    # Send outbound traffic here instead of this sidecar's own upstream
    # recorder (e.g. another sidecar's inbound port).
    upstream_port: int | None = None
    # More clusters: name -> port.
    clusters: dict | None = None
    # Spread connections evenly over the workers (both listeners).
    exact_balance: bool = False
    # Treat loopback clients as internal (keeps x-envoy-* request headers).
    internal: bool = False
    # The application and the upstream (default: Recorders); anything with
    # `port` and `close()`, and `outbound_port` for the app.
    app: object = None
    upstream: object = None
    # HTTP/2 to the app and upstream when the caller speaks it (gRPC).
    h2: bool = False
    # Envoy's retry_policy on the outbound route.
    outbound_retry: dict | None = None

    def __post_init__(self):
        self.app = self.app or Recorder("app")
        self.upstream = self.upstream or Recorder("upstream")
        self.sink = Sink()
        self.inbound_port = free_port()
        self.outbound_port = free_port()
        self.app.outbound_port = self.outbound_port
        collector = self.collector_port if self.collector_port is not None else self.sink.port
        cfg = {"exporter": {"flushIntervalMs": 100}, **self.config}
        cfg["exporter"] = {"flushIntervalMs": 100, **cfg.get("exporter", {})}
        flt = [wasm_filter(cfg, self.env)]
        bootstrap = {
            "static_resources": {
                "listeners": [
                    listener("inbound", self.inbound_port, "INBOUND", "app", flt, self.exact_balance, self.internal),
                    listener("outbound", self.outbound_port, "OUTBOUND", "upstream", flt, self.exact_balance,
                             retry_policy=self.outbound_retry),
                ],
                "clusters": [
                    cluster("app", self.app.port, h2=self.h2),
                    cluster("upstream", self.upstream_port or self.upstream.port, h2=self.h2),
                    cluster("meshtrace-collector", collector),
                    *(cluster(n, p) for n, p in (self.clusters or {}).items()),
                ],
            },
        }
        if self.node:
            bootstrap["node"] = self.node
        self.envoy = Envoy(bootstrap, self.concurrency)
        try:
            self.envoy.start()
        except BaseException:
            self.close()
            raise

    def get(self, path="/", headers=None, **kw):
        return request(self.inbound_port, path, headers=headers, **kw)

    def close(self):
        """Stops everything; returns the module's panics, if any."""
        panics = self.envoy.panics() if self.envoy.proc else []
        self.envoy.stop()
        for s in (self.app, self.upstream, self.sink):
            s.close()
        return panics


def spans_of(sink: Sink, trace_id: str, n: int, timeout=10.0):
    """Waits for `n` spans of one trace; returns them SERVER first."""
    def found():
        got = [s for _, s in sink.spans() if hexid(s.trace_id) == trace_id]
        return got if len(got) >= n else None
    got = wait_until(found, timeout, what=f"{n} spans of trace {trace_id}")
    return sorted(got, key=lambda s: (s.kind != 2, s.start_time_unix_nano))


ALL_PROPAGATORS = ["tracecontext", "baggage", "b3", "b3multi", "jaeger"]


def context_in(headers_of) -> dict:
    """The (trace id, span id, sampled) each format carries in a request."""
    h = headers_of
    out = {}
    if h("traceparent"):
        _, t, s, f = h("traceparent").split("-")
        out["tracecontext"] = (t, s, int(f, 16) & 1 == 1)
    if h("b3"):
        t, s, d = h("b3").split("-")[:3]
        out["b3"] = (t.rjust(32, "0"), s, d in ("1", "d"))
    if h("x-b3-traceid"):
        out["b3multi"] = (h("x-b3-traceid").rjust(32, "0"), h("x-b3-spanid"),
                          h("x-b3-sampled") == "1" or h("x-b3-flags") == "1")
    if h("uber-trace-id"):
        t, s, _, f = h("uber-trace-id").split(":")
        out["jaeger"] = (t.rjust(32, "0"), s.rjust(16, "0"), int(f, 16) & 1 == 1)
    return out
