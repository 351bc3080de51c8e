"""`make soak`: two sidecars with the filter and the collector under steady load for SOAK_MINUTES, the
collector killed with SIGKILL and restarted every few minutes (down a minute each time), a query loop
and an acknowledgement probe running throughout.

Topology (all loopback): wrk -> front Envoy inbound (SERVER span) -> front outbound (CLIENT span) -> back
Envoy inbound (SERVER span) -> a direct-response app; both Envoys export OTLP/HTTP to the collector.

It reports, in bench/soak-results.json, bench/soak.svg and on stdout:
- the RSS of both sidecars and of the collector over time, and their slope per hour;
- requests failed (non-2xx, socket errors, timeouts) and request latency while the collector is up and
  while it is down (tracing must add nothing noticeable while it is down);
- spans started vs sampled vs exported vs dropped-and-counted by the filters, and spans the collector
  accepted: every span the filters did not export must be in their dropped counter;
- acknowledged spans lost: a probe posts OTLP spans straight to the collector all along; every trace it
  got a 200 for must be readable at the end (must be 0 lost).
Exit status 1 when a request failed, an acknowledged span was lost, the filters' books do not balance, or
the module panicked.

Every process runs at the Makefile's SOAK_NICE (0 by default: the builders' own priority) on a machine
that may be shared: the load average is recorded next to every figure.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import meshtrace_testkit as kit
from meshtrace_testkit import (LOOPBACK, RELEASE_COLLECTOR, ROOT, Envoy, bootstrap, cluster, direct_response,
                               free_port, http_listener, request, route, wait_until, wasm_filter)
from meshtrace_testkit.procs import rss_mib
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
KILL_EVERY = float(os.environ.get("SOAK_KILL_EVERY_S", "240"))
DOWN_FOR = float(os.environ.get("SOAK_DOWN_S", "60"))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "8"))
SEGMENT = 10  # seconds per wrk run: one throughput / latency point
COLLECTOR = Path(os.environ.get("MESHTRACE_COLLECTOR_BIN", RELEASE_COLLECTOR))
OUT = ROOT / "bench"


def rss_kib(pid: int) -> int:
    try:
        return round(rss_mib(pid) * 1024)
    except OSError:
        return 0


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def sidecar_listener(name: str, port: int, direction: str, target: str, filters: list) -> dict:
    return http_listener(name, port, [route(target, name=f"{name}-route", timeout="10s")], filters=filters,
                         direction=direction)


class Collector:
    """The release collector (meshtrace_testkit's), restarted on the same data directory and loopback ports
    after each kill; counts the spans it accepted over all its lifetimes."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.running: kit.Collector | None = None
        self.proc = None
        self.accepted_before = 0.0  # spans accepted by earlier lifetimes (last scrape before each kill)
        self.last_accepted = 0.0

    def start(self):
        if self.running is None:
            self.running = kit.Collector(Path(self.data_dir), binary=COLLECTOR,
                                         log_path=Path(self.data_dir).parent / "collector.log")
        else:
            self.running.restart()
        self.proc = self.running.proc
        self.otlp, self.http = self.running.port("otlp_http"), self.running.port("http")

    def scrape(self) -> float:
        try:
            _, _, body = request(self.http, "/metrics", timeout=2)
        except OSError:
            return self.last_accepted
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith("meshtrace_collector_spans_accepted_total{"):
                total += float(line.rsplit(" ", 1)[1])
        self.last_accepted = total
        return total

    def accepted(self) -> float:
        return self.accepted_before + self.last_accepted

    def kill9(self):
        self.scrape()
        self.running.kill9()
        self.accepted_before += self.last_accepted
        self.last_accepted = 0.0

    def stop(self):
        if self.running:
            self.running.stop(60)


class Probe(threading.Thread):
    """Posts one OTLP span every 200 ms straight to the collector; keeps the trace ids it got a 200 for."""

    def __init__(self, collector: Collector, stop: threading.Event):
        super().__init__(daemon=True)
        self.c, self.stop_event = collector, stop
        self.acked: list[str] = []
        self.refused = 0

    def run(self):
        n = 0
        while not self.stop_event.is_set():
            n += 1
            trace = (0x50AC << 112 | n).to_bytes(16, "big")
            req = ExportTraceServiceRequest()
            rs = req.resource_spans.add()
            a = rs.resource.attributes.add()
            a.key, a.value.string_value = "service.name", "soak-probe"
            s = rs.scope_spans.add().spans.add()
            s.trace_id, s.span_id, s.name, s.kind = trace, (n | 1 << 62).to_bytes(8, "big"), "probe", 2
            s.start_time_unix_nano = time.time_ns()
            s.end_time_unix_nano = s.start_time_unix_nano + 1000
            try:
                status, _, _ = request(self.c.otlp, "/v1/traces", method="POST", timeout=5,
                                       body=req.SerializeToString(),
                                       headers={"content-type": "application/x-protobuf"})
                if status == 200:
                    self.acked.append(trace.hex())
                else:
                    self.refused += 1
            except OSError:
                self.refused += 1
            self.stop_event.wait(0.2)


class QueryLoop(threading.Thread):
    """Asks the query API for recent front traces every second."""

    def __init__(self, collector: Collector, stop: threading.Event, up: threading.Event):
        super().__init__(daemon=True)
        self.c, self.stop_event, self.up = collector, stop, up
        self.ok = self.failed_while_up = self.failed_while_down = 0

    def run(self):
        while not self.stop_event.is_set():
            was_up = self.up.is_set()
            try:
                status, _, body = request(self.c.http, "/api/traces?service=front&limit=20&lookback=5m", timeout=10)
                good = status == 200 and "data" in json.loads(body)
            except (OSError, ValueError):
                good = False
            if good:
                self.ok += 1
            elif was_up and self.up.is_set():
                self.failed_while_up += 1
            else:
                self.failed_while_down += 1
            self.stop_event.wait(1.0)


WRK_LAT = re.compile(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$")


def to_ms(v: str, unit: str) -> float:
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "2s", "--latency",
         f"http://{LOOPBACK}:{port}/soak"],
        capture_output=True, text=True, check=False).stdout
    r = {"requests": 0, "non2xx": 0, "socket_errors": 0, "timeouts": 0, "p50_ms": None, "p99_ms": None,
         "max_ms": None}
    for line in out.splitlines():
        if m := WRK_LAT.match(line):
            r[f"p{m.group(1)}_ms"] = to_ms(m.group(2), m.group(3))
        elif m := re.match(r"^\s+(\d+) requests in", line):
            r["requests"] = int(m.group(1))
        elif m := re.match(r"^\s+Non-2xx or 3xx responses: (\d+)", line):
            r["non2xx"] = int(m.group(1))
        elif m := re.match(r"^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line):
            r["socket_errors"] = sum(int(x) for x in m.groups()[:3])
            r["timeouts"] = int(m.group(4))
        elif m := re.match(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", line):
            r["max_ms"] = to_ms(m.group(1), m.group(2))
    return r


def envoy_stats(e: Envoy) -> dict:
    names = ["spans_started", "spans_sampled", "spans_exported", "spans_dropped", "export_failures"]
    return {n: e.stat(n) for n in names}


def slope_per_hour(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (MiB) against time, per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    sxy = sum((t - mx) * (v - my) for t, v in points)
    return (sxy / sxx) * 3600 / 1024 if sxx else 0.0


def svg(samples: list[dict], segments: list[dict], outages: list[tuple[float, float]], path: Path):
    """RSS of the three processes (MiB, left axis) and throughput (req/s, right axis) over time."""
    w, h, pad = 900, 420, 60
    end = max([s["t"] for s in samples] + [1])
    rss_max = max([max(s["front"], s["back"], s["collector"]) for s in samples] + [1]) / 1024 * 1.15
    rps_max = max([g["rps"] for g in segments] + [1]) * 1.15

    def x(t):
        return pad + (w - 2 * pad) * t / end

    def y(v, top):
        return h - pad - (h - 2 * pad) * v / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>']
    for a, b in outages:
        parts.append(f'<rect x="{x(a):.1f}" y="{pad}" width="{max(x(b) - x(a), 1):.1f}" height="{h - 2 * pad}" fill="#f3d5d5"/>')
    parts.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>')
    parts.append(f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>')
    parts.append(f'<line x1="{w - pad}" y1="{pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>')
    for i in range(6):
        v = rss_max * i / 5
        parts.append(f'<text x="{pad - 6}" y="{y(v, rss_max) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        r = rps_max * i / 5
        parts.append(f'<text x="{w - pad + 6}" y="{y(r, rps_max) + 4:.1f}">{r:.0f}</text>')
        t = end * i / 5
        parts.append(f'<text x="{x(t):.1f}" y="{h - pad + 18}" text-anchor="middle">{t / 60:.0f} min</text>')
    parts.append(f'<text x="{pad}" y="{pad - 24}">RSS (MiB, left) and throughput (req/s, right); '
                 f'shaded: collector killed (SIGKILL) and down</text>')
    for key, colour in (("front", "#1f77b4"), ("back", "#2ca02c"), ("collector", "#d62728")):
        pts = " ".join(f"{x(s['t']):.1f},{y(s[key] / 1024, rss_max):.1f}" for s in samples)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    pts = " ".join(f"{x(g['t']):.1f},{y(g['rps'], rps_max):.1f}" for g in segments)
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#7f7f7f" stroke-width="1.5" stroke-dasharray="4 3"/>')
    for i, (label, colour) in enumerate((("front sidecar RSS", "#1f77b4"), ("back sidecar RSS", "#2ca02c"),
                                         ("collector RSS", "#d62728"), ("req/s", "#7f7f7f"))):
        parts.append(f'<rect x="{pad + 10 + i * 170}" y="{pad - 16}" width="12" height="4" fill="{colour}"/>'
                     f'<text x="{pad + 26 + i * 170}" y="{pad - 10}">{label}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main() -> int:
    for what in (COLLECTOR, ROOT / "dist" / "meshtrace.wasm"):
        if not what.exists():
            print(f"soak: {what} is missing (make build)", file=sys.stderr)
            return 2
    tmp = tempfile.TemporaryDirectory(prefix="meshtrace-soak-")
    data = Path(tmp.name) / "data"
    data.mkdir()
    c = Collector(str(data))
    c.start()
    up = threading.Event()
    up.set()

    f_in, f_out, b_in, b_app = free_port(), free_port(), free_port(), free_port()
    flt = lambda name: [wasm_filter({"serviceName": name, "propagators": ["tracecontext", "baggage"]})]  # noqa: E731
    front = Envoy(bootstrap(
        [sidecar_listener("inbound", f_in, "INBOUND", "app", flt("front")),
         sidecar_listener("outbound", f_out, "OUTBOUND", "upstream", flt("front"))],
        [cluster("app", f_out), cluster("upstream", b_in), cluster("meshtrace-collector", c.otlp)]))
    back = Envoy(bootstrap(
        [sidecar_listener("inbound", b_in, "INBOUND", "app", flt("back")),
         http_listener("app", b_app, [direct_response(200, "ok")])],
        [cluster("app", b_app), cluster("meshtrace-collector", c.otlp)]))
    front.start()
    back.start()

    stop = threading.Event()
    probe = Probe(c, stop)
    queries = QueryLoop(c, stop, up)
    probe.start()
    queries.start()
    t0 = time.monotonic()
    samples: list[dict] = []
    segments: list[dict] = []
    outages: list[tuple[float, float]] = []

    def sampler():
        while not stop.is_set():
            samples.append({"t": time.monotonic() - t0, "front": rss_kib(front.proc.pid),
                            "back": rss_kib(back.proc.pid),
                            "collector": rss_kib(c.proc.pid) if up.is_set() else 0, "load": loadavg()})
            if up.is_set():
                c.scrape()
            stop.wait(5)

    def chaos():
        while not stop.wait(KILL_EVERY):
            a = time.monotonic() - t0
            up.clear()
            c.kill9()
            if stop.wait(DOWN_FOR):
                outages.append((a, time.monotonic() - t0))
                break
            c.start()
            up.set()
            outages.append((a, time.monotonic() - t0))

    threads = [threading.Thread(target=sampler, daemon=True), threading.Thread(target=chaos, daemon=True)]
    for t in threads:
        t.start()
    deadline = t0 + MINUTES * 60
    while time.monotonic() < deadline:
        down_at_start = not up.is_set()
        seg = wrk(f_in, int(min(SEGMENT, max(1, deadline - time.monotonic()))))
        seg["t"] = time.monotonic() - t0
        seg["collector_down"] = down_at_start or not up.is_set()
        seg["rps"] = seg["requests"] / SEGMENT
        seg["load"] = loadavg()
        segments.append(seg)
        print(json.dumps(seg), flush=True)
    stop.set()
    for t in threads:
        t.join(DOWN_FOR + 130)
    if not up.is_set():
        c.start()
        up.set()
    # Let the filters' queues drain into the collector, then read the books.
    time.sleep(5)
    wait_until(lambda: all(envoy_stats(e)["spans_sampled"] == envoy_stats(e)["spans_exported"] + envoy_stats(e)["spans_dropped"]
                           for e in (front, back)), timeout=120, interval=1, what="filter queues drained")
    stats = {"front": envoy_stats(front), "back": envoy_stats(back)}
    c.scrape()
    probe.join(5)
    queries.join(15)

    missing = []
    for i in range(0, len(probe.acked), 50):
        chunk = probe.acked[i:i + 50]
        _, _, body = request(c.http, "/api/traces?" + "&".join(f"traceID={t}" for t in chunk), timeout=30)
        found = {t["traceID"].rjust(32, "0") for t in json.loads(body)["data"]}
        missing += [t for t in chunk if t not in found]

    panics = front.panics() + back.panics()
    front.stop()
    back.stop()
    c.stop()

    up_segs = [s for s in segments if not s["collector_down"]]
    down_segs = [s for s in segments if s["collector_down"]]

    def pct(segs, key):
        vals = sorted(s[key] for s in segs if s[key] is not None)
        return vals[len(vals) // 2] if vals else None

    started = sum(s["spans_started"] for s in stats.values())
    sampled = sum(s["spans_sampled"] for s in stats.values())
    exported = sum(s["spans_exported"] for s in stats.values())
    dropped = sum(s["spans_dropped"] for s in stats.values())
    result = {
        "minutes": MINUTES,
        "kill_every_s": KILL_EVERY,
        "down_s": DOWN_FOR,
        "collector_kills": len(outages),
        "load_average": {"min": min(s["load"] for s in samples), "max": max(s["load"] for s in samples),
                         "mean": sum(s["load"] for s in samples) / len(samples)},
        "requests": sum(s["requests"] for s in segments),
        "requests_failed": sum(s["non2xx"] + s["socket_errors"] + s["timeouts"] for s in segments),
        "mean_rps": sum(s["requests"] for s in segments) / (len(segments) * SEGMENT),
        "median_p50_ms": {"collector_up": pct(up_segs, "p50_ms"), "collector_down": pct(down_segs, "p50_ms")},
        "median_p99_ms": {"collector_up": pct(up_segs, "p99_ms"), "collector_down": pct(down_segs, "p99_ms")},
        "worst_max_ms": max((s["max_ms"] or 0) for s in segments),
        "rss_mib": {k: {"first": samples[0][k] / 1024, "last": max(s[k] for s in samples[-3:]) / 1024,
                        "max": max(s[k] for s in samples) / 1024,
                        "slope_per_hour": slope_per_hour([(s["t"], s[k]) for s in samples if s[k]]),
                        "slope_per_hour_second_half": slope_per_hour(
                            [(s["t"], s[k]) for s in samples if s[k] and s["t"] > samples[-1]["t"] / 2])}
                    for k in ("front", "back", "collector")},
        "filters": stats,
        "spans": {"started": started, "sampled": sampled, "exported": exported, "dropped_counted": dropped,
                  "unaccounted": sampled - exported - dropped,
                  "collector_accepted": c.accepted()},
        "probe": {"acknowledged": len(probe.acked), "refused_or_unreachable": probe.refused,
                  "acknowledged_lost": len(missing)},
        "queries": {"ok": queries.ok, "failed_while_up": queries.failed_while_up,
                    "failed_while_down": queries.failed_while_down},
        "panics": panics,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "soak-results.json").write_text(json.dumps(
        {**result, "segments": segments, "samples": samples, "outages": outages}, indent=1))
    svg(samples, segments, outages, OUT / "soak.svg")
    print(json.dumps(result, indent=1))
    ok = (result["requests_failed"] == 0 and not missing and result["spans"]["unaccounted"] == 0
          and not panics and queries.failed_while_up == 0)
    print("soak:", "PASS" if ok else "FAIL")
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
