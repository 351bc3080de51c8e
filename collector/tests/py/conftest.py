"""Starts the real meshtrace-collector on loopback ephemeral ports for each test."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def collector_bin() -> str:
    path = os.environ.get("MESHTRACE_COLLECTOR_BIN") or str(REPO / "target" / "debug" / "meshtrace-collector")
    if not Path(path).exists():
        pytest.fail(f"collector binary {path} not built (cargo build -p meshtrace-collector)")
    return path


def envoy_bin() -> str:
    path = os.environ.get("ENVOY") or str(Path(sys.prefix) / "bin" / "envoy")
    if not Path(path).exists():
        path = shutil.which("envoy") or path
    return path


class Collector:
    def __init__(self, data_dir: Path, extra_args=(), ssl_context=None):
        """`ssl_context`: the collector serves TLS (`--tls-cert-file`); queries use it."""
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context else "http"
        self.proc = subprocess.Popen(
            [
                collector_bin(),
                "--otlp-http-addr", "127.0.0.1:0",
                "--otlp-grpc-addr", "127.0.0.1:0",
                "--zipkin-addr", "127.0.0.1:0",
                "--sampling-addr", "127.0.0.1:0",
                "--http-addr", "127.0.0.1:0",
                "--tempo-addr", "127.0.0.1:0",
                "--data-dir", str(data_dir),
                "--log-format", "json",
                *extra_args,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.logs: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.addrs = {}
        while True:
            # Generous bound, only so that a broken binary fails instead of hanging.
            line = self.logs.get(timeout=120)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "listening":
                self.addrs[event["listener"]] = event["addr"]
            if event.get("message") == "ready":
                break
            if event.get("level") == "ERROR":
                raise RuntimeError(f"collector failed: {line}")

    def _pump(self):
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.logs.put(line)

    def get(self, path: str):
        try:
            url = f"{self.scheme}://{self.addrs['http']}{path}"
            with urllib.request.urlopen(url, timeout=10, context=self.ssl_context) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def metrics(self) -> str:
        url = f"{self.scheme}://{self.addrs['http']}/metrics"
        with urllib.request.urlopen(url, timeout=10, context=self.ssl_context) as r:
            return r.read().decode()

    def post_otlp_json(self, body: dict):
        request = urllib.request.Request(
            f"http://{self.addrs['otlp_http']}/v1/traces",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def wait_for_traces(self, service: str, want_spans: int, deadline_s: float = 60.0):
        """Polls the query API until a trace of `service` has `want_spans` spans; returns the traces seen."""
        end = time.monotonic() + deadline_s
        traces = []
        while time.monotonic() < end:
            status, body = self.get(f"/api/traces?service={service}&limit=20")
            assert status == 200, body
            traces = body["data"]
            if any(len(t["spans"]) >= want_spans for t in traces):
                return traces
            time.sleep(0.2)
        return traces

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def collector(tmp_path):
    c = Collector(tmp_path / "data")
    yield c
    c.stop()
    assert c.proc.returncode == 0, f"collector exited with {c.proc.returncode}"


def span_tree(trace):
    """Maps span id -> parent span id (None for roots), checking every parent is in the trace."""
    ids = {s["spanID"] for s in trace["spans"]}
    parents = {}
    for s in trace["spans"]:
        refs = [r for r in s["references"] if r["refType"] == "CHILD_OF"]
        parents[s["spanID"]] = refs[0]["spanID"] if refs else None
        if refs:
            assert refs[0]["spanID"] in ids, f"parent of {s['operationName']} missing from the trace"
    return parents
