"""The filter's test pod: a real Envoy running dist/meshtrace.wasm on an inbound listener in front of an
application and an outbound one in front of an upstream, both recording what they receive, and an OTLP
sink decoding what the filter exports (`Sidecar`). Needs the venv's opentelemetry-proto (the official
OTLP messages, tests/requirements.txt).

Everything listens on 127.0.0.1 on ports the kernel hands out.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .envoy import TRUST_LOOPBACK, Envoy, cluster, http_listener, route, wasm_filter
from .envoy import bootstrap as envoy_bootstrap
from .net import LOOPBACK, free_port, request, wait_until


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and TCP_NODELAY: the test servers
    answer in small writes, which Nagle's algorithm would hold for a delayed
    ACK (40 ms a request)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass


class HttpServer:
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


class JsonServer(HttpServer):
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


class Recorder(HttpServer):
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


@dataclass
class Sink(HttpServer):
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
        inbound = http_listener(
            "inbound", self.inbound_port, [route("app", name="inbound-route", timeout="10s")], filters=flt,
            direction="INBOUND", hcm=TRUST_LOOPBACK if self.internal else None, exact_balance=self.exact_balance)
        outbound = http_listener(
            "outbound", self.outbound_port,
            [route("upstream", name="outbound-route", timeout="10s", retry_policy=self.outbound_retry)],
            filters=flt, direction="OUTBOUND", exact_balance=self.exact_balance)
        clusters = [
            cluster("app", self.app.port, h2=self.h2),
            cluster("upstream", self.upstream_port or self.upstream.port, h2=self.h2),
            cluster("meshtrace-collector", collector),
            *(cluster(n, p) for n, p in (self.clusters or {}).items()),
        ]
        bootstrap = envoy_bootstrap([inbound, outbound], clusters, node=self.node)
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
