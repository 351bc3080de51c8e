"""The real meshtrace-collector, started on loopback for a test, the demo or a benchmark."""
from __future__ import annotations

import json
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

from . import procs
from .net import LOOPBACK, NotReady, http_ok, wait_until
from .paths import collector_bin

# Each listener's flag; the names are those of the collector's "listening" log events.
LISTENERS = {
    "otlp_http": "--otlp-http-addr",
    "otlp_grpc": "--otlp-grpc-addr",
    "zipkin": "--zipkin-addr",
    "sampling": "--sampling-addr",
    "http": "--http-addr",
    "tempo": "--tempo-addr",
}


class Collector:
    """Starts the collector and returns once it logged "ready"; with a `log_level` that hides that
    (warn, error), once /readyz answers on the query port, which `listen` must then name.

    Every listener of LISTENERS is on 127.0.0.1; a port the kernel picks unless `listen` names one
    (`{"http": 16686}`); `addrs` maps each listener to the address it took, read from the collector's
    JSON log, whose lines also go to `log_path` (default: beside `data_dir`). `args` are more flags
    (TLS, tokens, exporters, other receivers); `ssl_context`: the collector serves TLS and `get` uses it.
    An ERROR logged before "ready" fails the start, as does the process exiting."""

    def __init__(self, data_dir: Path, args=(), *, listen: dict | None = None,
                 ssl_context: ssl.SSLContext | None = None, binary: Path | None = None,
                 log_path: Path | None = None, log_level: str | None = None, own_session: bool = False,
                 timeout: float = 120.0):
        self.binary = Path(binary or collector_bin())
        if not self.binary.exists():
            raise NotReady(f"collector binary {self.binary} is missing: cargo build -p meshtrace-collector")
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path or self.data_dir.parent / f"{self.data_dir.name}.log")
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context else "http"
        self.args = [*(["--log-level", log_level] if log_level else []), *args]
        # Without info lines the addresses come from `listen` alone, and readiness from /readyz.
        self._probe = log_level is not None and log_level.split(",")[0] in ("warn", "error", "off")
        if self._probe and not (listen or {}).get("http"):
            raise ValueError(f"log level {log_level} hides the collector's readiness: give listen={{'http': port}}")
        self.own_session = own_session
        self.timeout = timeout
        self._start({name: 0 for name in LISTENERS} | (listen or {}))

    def restart(self) -> None:
        """Starts it again (after `kill9` or `stop`; stops it first otherwise) on the same data directory,
        flags and LISTENERS ports, as a restarted deployment would be."""
        procs.stop(self.proc, 30)
        self._start({name: self.port(name) if name in self.addrs else 0 for name in LISTENERS})

    def _start(self, ports: dict) -> None:
        self.addrs = {name: f"{LOOPBACK}:{port}" for name, port in ports.items() if port}
        flags = [x for name, port in ports.items() for x in (LISTENERS[name], f"{LOOPBACK}:{port}")]
        self._ready = threading.Event()
        self._error = None
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [str(self.binary), *flags, "--data-dir", str(self.data_dir), "--log-format", "json", *self.args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=self.own_session,
        )
        self._pump_thread = threading.Thread(target=self._pump, args=(self.proc, log, self._ready), daemon=True)
        self._pump_thread.start()
        try:
            wait_until(self._started, self.timeout, f"collector ready ({self.binary})", interval=0.02,
                       log=self.log_path)
        except BaseException:
            procs.stop(self.proc, 10)
            raise

    def _pump(self, proc: subprocess.Popen, log, ready: threading.Event):
        """Copies the collector's log to `log_path`, learning its addresses and whether it is ready."""
        with log:
            for line in proc.stderr:
                log.write(line)
                log.flush()
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("message") == "listening":
                    self.addrs[event["listener"]] = event["addr"]
                elif event.get("message") == "ready":
                    ready.set()
                elif event.get("level") == "ERROR" and not ready.is_set() and self._error is None:
                    self._error = line.strip()

    def _started(self) -> bool:
        if self.proc.poll() is not None:
            self._pump_thread.join(5)  # the log's last lines
            raise NotReady(f"collector ({self.binary}) exited with {self.proc.returncode}"
                           f"\n--- {self.log_path} ends:\n{procs.tail(self.log_path)}")
        if self._error:
            raise NotReady(f"collector failed: {self._error}")
        if self._ready.is_set():
            return True
        return self._probe and http_ok(self.port("http"), "/readyz")

    def port(self, listener: str) -> int:
        return int(self.addrs[listener].rsplit(":", 1)[1])

    def get(self, path: str, timeout: float = 10.0):
        """(status, JSON body) of a GET on the query port (`--http-addr`)."""
        try:
            url = f"{self.scheme}://{self.addrs['http']}{path}"
            with urllib.request.urlopen(url, timeout=timeout, context=self.ssl_context) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def metrics(self) -> str:
        url = f"{self.scheme}://{self.addrs['http']}/metrics"
        with urllib.request.urlopen(url, timeout=10, context=self.ssl_context) as r:
            return r.read().decode()

    def post_otlp_json(self, body: dict) -> int:
        request = urllib.request.Request(
            f"http://{self.addrs['otlp_http']}/v1/traces",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status

    def trace(self, trace_id: str) -> dict | None:
        """The trace from /api/traces/{id}, or None while it is not there."""
        status, body = self.get(f"/api/traces/{trace_id}")
        return body["data"][0] if status == 200 and body and body.get("data") else None

    def wait_for_trace(self, trace_id: str, done=lambda trace: True, timeout: float = 30.0) -> dict:
        """Polls until the trace is there and `done(trace)` holds; returns it."""
        def ready():
            trace = self.trace(trace_id)
            return trace if trace is not None and done(trace) else None
        return wait_until(ready, timeout, f"trace {trace_id} complete in the collector", interval=0.1)

    def wait_for_traces(self, service: str, want_spans: int, deadline_s: float = 60.0):
        """Polls the search until a trace of `service` has `want_spans` spans; returns the traces seen
        last (which the caller checks), also when none got there in time."""
        traces = []

        def found():
            nonlocal traces
            status, body = self.get(f"/api/traces?service={service}&limit=20")
            assert status == 200, body
            traces = body["data"]
            return any(len(t["spans"]) >= want_spans for t in traces)
        try:
            wait_until(found, deadline_s, f"a trace of {service} with {want_spans} spans", interval=0.2)
        except NotReady:
            pass
        return traces

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the collector drains and exits 0), SIGKILL after `timeout` s; returns the exit code."""
        return procs.stop(self.proc, timeout)
