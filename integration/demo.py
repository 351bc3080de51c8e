"""`make demo`: the shop of integration/shop/ as local processes on 127.0.0.1.

Starts the collector (dist/meshtrace-collector, a temporary data directory),
one Envoy per service running dist/meshtrace.wasm on its inbound and outbound
listeners, and the Python services, each forwarding only its own trace format.
Then it sends traffic, prints where to look and draws one trace as a tree.

  DEMO_SECONDS unset   runs until Ctrl-C
  DEMO_SECONDS=N       sends traffic for N seconds, then checks that every
                       answered request's trace reached the collector complete
                       (every hop, one trace id, correct parents); exits 1 if not
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from meshtrace_testkit import (LOOPBACK, RELEASE_COLLECTOR, ROOT, WASM, Collector, Envoy, NotReady, envoy_bin,
                               free_port, wait_until)
from meshtrace_testkit.jaeger import parent_of, tag
from meshtrace_testkit.procs import stop as stop_process
from meshtrace_testkit.procs import tail

SHOP = ROOT / "integration" / "shop"
sys.path.insert(0, str(SHOP))

import loadgen  # noqa: E402
import sidecar  # noqa: E402
from topology import ENTRY, PROPAGATORS, SERVICES, callees, expected_span_count  # noqa: E402

RATE = 4.0           # requests per second from the load generator
FLUSH_MS = 200       # the sidecars' export interval, short so traces show up at once
FORMAT_NAMES = {"w3c": "W3C", "b3": "B3", "jaeger": "Jaeger"}


class Shop:
    """Every process of the demo; `stop()` ends them all, whatever happened."""

    def __init__(self, workdir: Path, interactive: bool):
        self.dir = workdir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.query_port = free_port(16686 if interactive else None)
        self.otlp_port = free_port(4318 if interactive else None)
        self.tempo_port = free_port(3200 if interactive else None)
        self.zipkin_port = free_port(9411 if interactive else None)
        self.inbound = {name: free_port() for name in SERVICES}
        self.outbound = {name: free_port() for name in SERVICES}
        self.app = {name: free_port() for name in SERVICES}
        self.admin = {name: free_port() for name in SERVICES}
        self.collector: Collector | None = None
        self.envoys: dict[str, Envoy] = {}

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.dir / f"{name}.log"
        with open(log, "wb") as out:
            # A session of its own: Ctrl-C reaches only demo.py, which stops
            # the children in order (load first, the collector last).
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc, log

    def start(self):
        log = self.dir / "collector.log"
        # In a session of its own, like every child (see `spawn`).
        self.collector = Collector(
            self.dir / "collector-data", binary=RELEASE_COLLECTOR, log_path=log, own_session=True,
            listen={"otlp_http": self.otlp_port, "zipkin": self.zipkin_port, "http": self.query_port,
                    "tempo": self.tempo_port})
        self.procs.append(("collector", self.collector.proc, log))

        for name in SERVICES:
            self.spawn(name, [sys.executable, str(SHOP / "service.py")], {
                "SERVICE_NAME": name, "PORT": str(self.app[name]), "BIND": LOOPBACK,
                "OUTBOUND": f"{LOOPBACK}:{self.outbound[name]}"})

        for name in SERVICES:
            config = sidecar.bootstrap(
                name, wasm_path=str(WASM),
                inbound=(LOOPBACK, self.inbound[name]), outbound=(LOOPBACK, self.outbound[name]),
                app=(LOOPBACK, self.app[name]),
                upstreams={c: (LOOPBACK, self.inbound[c]) for c in callees(name)},
                collector=(LOOPBACK, self.otlp_port), admin=(LOOPBACK, self.admin[name]),
                flush_ms=FLUSH_MS)
            envoy = Envoy(config, directory=self.dir, name=f"envoy-{name}", own_session=True)
            self.envoys[name] = envoy.start(expect_ready=False)
            self.procs.append((envoy.name, envoy.proc, envoy.log_path))
        for envoy in self.envoys.values():
            envoy.wait_ready(timeout=90)
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(log)}")

    def stop(self):
        for _, proc, _ in reversed(self.procs):  # the collector was started first, it stops last
            stop_process(proc, 15)

    def stat(self, service: str, name: str) -> int:
        return self.envoys[service].stat(name)

    def trace(self, trace_id: str) -> dict | None:
        return self.collector.trace(trace_id)


# ---- checking a trace --------------------------------------------------------

def check_trace(trace: dict | None, trace_id: str, caller_span: str) -> list[str]:
    """What is wrong with one trace of the shop's entry request ([] if complete)."""
    if trace is None:
        return ["not in the collector"]
    problems = []
    spans = trace.get("spans", [])
    procs = trace.get("processes", {})
    service = {s["spanID"]: procs.get(s["processID"], {}).get("serviceName", "?") for s in spans}
    kind = {s["spanID"]: tag(s, "span.kind") for s in spans}
    by_id = {s["spanID"]: s for s in spans}
    if len(spans) != expected_span_count():
        problems.append(f"{len(spans)} spans, expected {expected_span_count()}")
    for s in spans:
        if s.get("traceID", "").rjust(32, "0") != trace_id:
            problems.append(f"span {s['spanID']} has trace id {s.get('traceID')}")
    servers = {}
    for sid, svc in service.items():
        if kind[sid] == "server":
            if svc in servers:
                problems.append(f"two SERVER spans for {svc}")
            servers[svc] = sid
    for name in SERVICES:
        if name not in servers:
            problems.append(f"no SERVER span for {name}")
    # The root: the frontend's SERVER span, child of the load generator's context if it sent one.
    if ENTRY in servers and (parent_of(by_id[servers[ENTRY]]) or "") != caller_span:
        problems.append(f"{ENTRY} SERVER parent is {parent_of(by_id[servers[ENTRY]]) or 'none'}, "
                        f"expected {caller_span or 'none'}")
    for name in SERVICES:
        clients = [sid for sid in by_id if service[sid] == name and kind[sid] == "client"]
        if len(clients) != len(callees(name)):
            problems.append(f"{name} has {len(clients)} CLIENT spans, expected {len(callees(name))}")
        for sid in clients:
            if (parent_of(by_id[sid]) or "") != servers.get(name):
                fmt = FORMAT_NAMES[SERVICES[name][0]]
                problems.append(f"{name} CLIENT span {sid} is not a child of its SERVER span "
                                f"(the {fmt}-only hop broke)")
        for callee in callees(name):
            sid = servers.get(callee)
            if sid is None:
                continue
            parent = parent_of(by_id[sid])
            if parent not in clients:
                problems.append(f"{callee} SERVER parent {parent or 'none'} is not a CLIENT span of {name}")
    return problems


# ---- drawing a trace ---------------------------------------------------------

def draw(trace: dict) -> str:
    spans = sorted(trace["spans"], key=lambda s: s["startTime"])
    procs = trace["processes"]
    ids = {s["spanID"] for s in spans}
    children: dict[str, list[dict]] = {}
    roots = []
    for s in spans:
        parent = parent_of(s)
        if parent in ids:
            children.setdefault(parent, []).append(s)
        else:
            roots.append(s)
    total = max(s["startTime"] + s["duration"] for s in spans) - min(s["startTime"] for s in spans)
    lines = [f"trace {trace['traceID']}  ({len(spans)} spans, {total / 1000:.1f} ms)"]

    def label(s: dict) -> str:
        svc = procs.get(s["processID"], {}).get("serviceName", "?")
        k = (tag(s, "span.kind") or "").upper()
        status = tag(s, "http.response.status_code")
        if k == "CLIENT":
            what = f"{s['operationName']} -> {tag(s, 'server.address')}"
        else:
            what = f"{s['operationName']} {tag(s, 'url.path') or ''}"
        note = ""
        if k == "SERVER" and svc in SERVICES and callees(svc):
            note = f"   [app forwards {FORMAT_NAMES[SERVICES[svc][0]]} only]"
        return f"{svc} {k} {what} {status}  {s['duration'] / 1000:.1f} ms{note}"

    def walk(s: dict, prefix: str, last: bool, top: bool):
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(f"{prefix}{branch}{label(s)}")
        kids = children.get(s["spanID"], [])
        for i, c in enumerate(kids):
            walk(c, prefix + ("" if top else ("   " if last else "│  ")), i == len(kids) - 1, False)

    for r in roots:
        walk(r, "", True, True)
    return "\n".join(lines)


# ---- the demo ----------------------------------------------------------------

def where_to_look(shop: Shop, trace_id: str, timed: bool = False):
    q = f"http://{LOOPBACK}:{shop.query_port}"
    if timed:
        print("\n(DEMO_SECONDS is set: everything stops now; `make demo` keeps it running.)")
    print(f"""
Open the viewer: {q}/
  the trace drawn above:  {q}/trace/{trace_id}
  its service map:        {q}/dependencies
The collector's query APIs (point Jaeger UI, Grafana or Zipkin's UI at it as below):
  curl -s {q}/api/services
  curl -s '{q}/api/traces?service={ENTRY}&limit=5'
  curl -s {q}/api/traces/{trace_id}
  curl -s '{q}/api/dependencies?endTs={int(time.time() * 1000)}&lookback=3600000'
  curl -s {q}/metrics
  curl -s {q}/api/meshtrace/traces/{trace_id}/diagnostics
  curl -sG http://{LOOPBACK}:{shop.tempo_port}/api/search --data-urlencode 'q={{ resource.service.name = "{ENTRY}" }} >> {{ kind = server }}'
Viewers (collector/README.md, "Viewers"):
  Jaeger UI (v3 API, Monitor tab)   query base {q}
  Grafana, Tempo data source        URL http://{LOOPBACK}:{shop.tempo_port}, search streaming off
  Grafana, Jaeger data source       URL {q}
  Zipkin UI                         /api/v2 proxied to http://{LOOPBACK}:{shop.zipkin_port}
The shop's entry, through the frontend's sidecar:
  curl -si -H 'host: {ENTRY}' http://{LOOPBACK}:{shop.inbound[ENTRY]}/checkout
The filter's counters in one sidecar (Envoy admin):
  curl -s http://{LOOPBACK}:{shop.admin[ENTRY]}/stats | grep wasmcustom.meshtrace
Logs: {shop.dir}
""", flush=True)


def wait_complete(shop: Shop, sent: loadgen.Sent, timeout: float) -> tuple[dict | None, list[str]]:
    """The trace and what is wrong with it: nothing once it is complete, else what was wrong last."""
    last = None, []

    def complete():
        nonlocal last
        trace = shop.trace(sent.trace_id)
        last = trace, check_trace(trace, sent.trace_id, sent.parent_span_id)
        return not last[1]
    try:
        wait_until(complete, timeout, f"trace {sent.trace_id} complete", interval=0.25)
    except NotReady:
        pass
    return last


def show_one(shop: Shop, sent: list[loadgen.Sent]) -> str | None:
    """Draws the first complete trace the frontend's sidecar started; returns its id."""
    for s in sent:
        if s.kind == "none" and s.status == 200 and s.trace_id:
            trace, problems = wait_complete(shop, s, 10)
            if trace and not problems:
                print(draw(trace), flush=True)
                return s.trace_id
    return None


def timed(shop: Shop, seconds: float) -> int:
    print(f"sending {RATE:g} requests/s to {ENTRY} for {seconds:g} s ...", flush=True)
    sent = loadgen.run((LOOPBACK, shop.inbound[ENTRY]), RATE, seconds)
    answered = [s for s in sent if s.status == 200 and s.trace_id]
    print(f"{len(sent)} requests, {len(answered)} answered 200", flush=True)
    failures = []
    complete_by_kind: dict[str, int] = {}
    deadline = time.monotonic() + 20
    for s in answered:
        _, problems = wait_complete(shop, s, max(0.5, deadline - time.monotonic()))
        if problems:
            failures.append((s, problems))
        else:
            complete_by_kind[s.kind] = complete_by_kind.get(s.kind, 0) + 1
    shown = show_one(shop, answered)
    where_to_look(shop, shown or (answered[0].trace_id if answered else "<trace id>"), timed=True)
    print("complete traces by how the context arrived: "
          + ", ".join(f"{k} {complete_by_kind.get(k, 0)}" for k in loadgen.KINDS), flush=True)
    for name in SERVICES:
        print(f"  {name:9} sidecar: spans_started {shop.stat(name, 'spans_started')}, "
              f"spans_exported {shop.stat(name, 'spans_exported')}, "
              f"spans_dropped {shop.stat(name, 'spans_dropped')}", flush=True)
    ok = True
    if len(answered) < len(sent) or not sent:
        print(f"FAIL: {len(sent) - len(answered)} of {len(sent)} requests were not answered 200", flush=True)
        ok = False
    if failures:
        print(f"FAIL: {len(failures)} of {len(answered)} traces incomplete, e.g.:", flush=True)
        for s, problems in failures[:5]:
            print(f"  {s.trace_id} (context: {s.kind}): " + "; ".join(problems), flush=True)
        ok = False
    missing = [k for k in loadgen.KINDS if not complete_by_kind.get(k)]
    if missing:
        print(f"FAIL: no complete trace for requests arriving with: {', '.join(missing)}", flush=True)
        ok = False
    if ok:
        print(f"OK: {len(answered)} complete traces of {expected_span_count()} spans each, one trace id "
              f"across W3C-only, B3-only and Jaeger-only services", flush=True)
    return 0 if ok else 1


def forever(shop: Shop) -> int:
    stop = threading.Event()
    live: list[loadgen.Sent] = []
    worker = threading.Thread(target=loadgen.run, args=((LOOPBACK, shop.inbound[ENTRY]), RATE, 0),
                              kwargs={"stop": stop.is_set, "on_sent": live.append}, daemon=True)
    worker.start()
    try:
        time.sleep(2)
        shown = show_one(shop, list(live))
        where_to_look(shop, shown or "<trace id>")
        print(f"sending {RATE:g} requests/s; Ctrl-C stops everything", flush=True)
        while True:
            time.sleep(10)
            print(f"{len(live)} requests sent, {sum(1 for s in live if s.status == 200)} answered 200; "
                  f"frontend sidecar exported {shop.stat(ENTRY, 'spans_exported')} spans", flush=True)
    finally:
        stop.set()
        worker.join(5)


def _interrupt(*_):
    raise KeyboardInterrupt


def main() -> int:
    for path, how in ((WASM, "make wasm"), (RELEASE_COLLECTOR, "make collector-build"),
                       (envoy_bin(), "make .venv/.ready")):
        if not path.exists():
            print(f"demo: {path} is missing (run `{how}`, or simply `make demo`)", file=sys.stderr)
            return 2
    seconds = float(os.environ.get("DEMO_SECONDS", "0") or 0)
    # SIGTERM stops the demo like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="meshtrace-demo-"))
    shop = Shop(workdir, interactive=seconds <= 0)
    code = 1
    try:
        print(f"starting the collector, {len(SERVICES)} services and their Envoy sidecars "
              f"(propagators {', '.join(PROPAGATORS)}) ...", flush=True)
        shop.start()
        print(f"viewer: http://{LOOPBACK}:{shop.query_port}/", flush=True)
        for name, (fmt, calls) in SERVICES.items():
            to = ", ".join(f"{c}{p}" for c, p in calls) or "-"
            print(f"  {name:9} app forwards {FORMAT_NAMES[fmt]:6} only; calls {to}; "
                  f"sidecar inbound :{shop.inbound[name]}, admin :{shop.admin[name]}", flush=True)
        code = timed(shop, seconds) if seconds > 0 else forever(shop)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        code = 0 if seconds <= 0 else 130
    except (RuntimeError, OSError, NotReady) as err:
        print(f"demo: {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shop.stop()
        if code == 1:
            for name, _, log in shop.procs:
                if name.startswith("envoy") and "panicked at" in log.read_text(errors="replace"):
                    print(f"{name}: the module panicked:\n{tail(log)}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
