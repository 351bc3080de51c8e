"""Collector ingest and query figures, with rotel (receive-only) as the peer.

Load: wrk POSTs OTLP/HTTP protobuf batches of realistic sidecar spans (about
15 attributes each, 100 spans a batch) over loopback. Every request carries
new trace ids (bench/otlp_post.lua), so the store keeps every span. wrk's own
CPU is measured too: it shares the cores with the server it loads, and a rate
means something only while wrk is far from a whole core. `WRK_SCRIPT=path` runs
another script in its place (to compare generators).
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from meshtrace_testkit import LOOPBACK, RELEASE_COLLECTOR, ROOT, Collector, free_port, port_open, request
from meshtrace_testkit.procs import Process, cpu_seconds, rss_mib
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SPANS_PER_BATCH = 100
MARKER = b"\xab" * 8
SERVICES = ["frontend", "cart", "catalog", "payment", "shipping"]
ROUTES = ["/api/cart", "/api/items/{id}", "/api/checkout", "/api/users/{id}", "/healthz"]


def kv(k, v):
    if isinstance(v, int):
        return KeyValue(key=k, value=AnyValue(int_value=v))
    return KeyValue(key=k, value=AnyValue(string_value=v))


def batch(rng: random.Random) -> bytes:
    """One sidecar's export: 100 spans of 50 two-span traces (SERVER + CLIENT)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    svc = rng.choice(SERVICES)
    rs.resource.attributes.extend([kv("service.name", svc), kv("k8s.namespace.name", "shop"),
                                   kv("k8s.pod.name", f"{svc}-7d9f{rng.randrange(100)}"),
                                   kv("telemetry.sdk.name", "meshtrace")])
    ss = rs.scope_spans.add()
    ss.scope.name = "meshtrace"
    now = time.time_ns()
    for _ in range(SPANS_PER_BATCH // 2):
        trace_id = MARKER + rng.getrandbits(64).to_bytes(8, "big")
        server_id = rng.getrandbits(64).to_bytes(8, "big")
        route = rng.choice(ROUTES)
        status = rng.choice([200] * 30 + [404, 500])
        start = now - rng.randrange(10**9)
        for kind, span_id, parent in ((2, server_id, b""), (3, rng.getrandbits(64).to_bytes(8, "big"), server_id)):
            s = ss.spans.add()
            s.trace_id, s.span_id, s.parent_span_id = trace_id, span_id, parent
            s.name, s.kind = f"GET {route}", kind
            s.start_time_unix_nano = start
            s.end_time_unix_nano = start + rng.randrange(1_000_000, 200_000_000)
            s.flags = 0x301
            s.attributes.extend([
                kv("http.request.method", "GET"), kv("http.route", route), kv("url.path", route.replace("{id}", "42")),
                kv("url.scheme", "http"), kv("server.address", f"{svc}.shop"), kv("server.port", 8080),
                kv("client.address", "10.0.0.7"), kv("network.peer.address", "10.0.0.7"),
                kv("network.peer.port", 51000), kv("user_agent.original", "Go-http-client/1.1"),
                kv("http.response.status_code", status), kv("network.protocol.version", "1.1"),
                kv("guid:x-request-id", f"{rng.getrandbits(128):032x}"), kv("upstream_cluster", f"inbound|8080||{svc}"),
                kv("http.response.body.size", rng.randrange(100, 5000)),
            ])
            if status >= 500:
                s.status.code = 2
    return req.SerializeToString()


def write_batches(directory: Path, n: int, seed=3) -> None:
    rng = random.Random(seed)
    for i in range(1, n + 1):
        (directory / f"{i}.pb").write_bytes(batch(rng))


def meshtrace_collector(data_dir):
    ports = {k: free_port() for k in ("http", "grpc", "zipkin", "query")}
    p = Collector(data_dir, ["--retention-max-age", "0", "--retention-max-bytes", "0"], binary=RELEASE_COLLECTOR,
                  log_level="warn", listen={"otlp_http": ports["http"], "otlp_grpc": ports["grpc"],
                                            "zipkin": ports["zipkin"], "http": ports["query"]})
    return p, ports["http"], ports["query"]


def rotel(tmp):
    import rotel as rotel_pkg
    agent = Path(rotel_pkg.__file__).parent / "rotel-agent"
    http, grpc = free_port(), free_port()
    p = Process([str(agent), "start", "--exporter", "blackhole", "--otlp-http-endpoint", f"{LOOPBACK}:{http}",
                 "--otlp-grpc-endpoint", f"{LOOPBACK}:{grpc}", "--pid-file", str(Path(tmp) / "rotel.pid")],
                ready=lambda: port_open(http), what="rotel ready", timeout=30)
    return p, http


# Connections of the second, many-senders measurement (the first uses wrk_ingest's 8).
MANY = 64

_SALTS = iter(range(random.randrange(1, 2**14), 2**15))


def wrk_ingest(port, batches_dir, n_batches, seconds, connections=8, salt=None):
    # Distinct per run (a random salt per run repeated one in ~100-run fills, and the repeated run's
    # traces were duplicates the store rightly ignored while the fill counted them).
    salt = salt if salt is not None else next(_SALTS)
    before = os.times()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", os.environ.get("WRK_SCRIPT", str(ROOT / "bench" / "otlp_post.lua")), f"http://{LOOPBACK}:{port}/",
                          "--", str(batches_dir), str(n_batches), str(salt)],
                         capture_output=True, text=True, check=True).stdout
    after = os.times()
    total = int(re.search(r"(\d+) requests in ([\d.]+)(s|m)", out).group(1))
    dur = float(re.search(r"requests in ([\d.]+)s", out).group(1)) if "s," in out else seconds
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    spans = (total - non2xx) * SPANS_PER_BATCH  # acknowledged
    # The load generator's own CPU: it shares the machine's cores with the server it loads.
    wrk_cpu_s = after.children_user + after.children_system - before.children_user - before.children_system
    return {"requests": total, "refused": non2xx, "spans": spans, "spans_per_s": spans / dur,
            "seconds": dur, "wrk_cpu_s": wrk_cpu_s}


def check_generator(batches_dir, n_batches, seconds=1):
    """Runs the load (wrk and bench/otlp_post.lua) for `seconds` into a plain HTTP server on loopback that
    keeps the bodies, and fails unless every span is new: a trace id of an earlier request, or a marker
    left unreplaced, would be a retry the store skips, and inflate its figure (an earlier version of the
    script repeated traces with some salts)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = []

    class Keep(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

        def handle(self):
            try:
                super().handle()
            except ConnectionError:  # wrk closes its connections at the end
                pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Keep)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        wrk_ingest(server.server_port, batches_dir, n_batches, seconds, connections=2)
    finally:
        server.shutdown()
    seen, spans = set(), 0
    for body in bodies:
        if MARKER in body:
            raise RuntimeError("bench/otlp_post.lua left a trace id marker in a request")
        request_ids = set()
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                request_ids.update(s.trace_id for s in ss.spans)
                spans += len(ss.spans)
        if request_ids & seen:
            raise RuntimeError("bench/otlp_post.lua repeated an earlier request's trace ids")
        seen |= request_ids
    if not bodies or spans != len(bodies) * SPANS_PER_BATCH:
        raise RuntimeError(f"bench/otlp_post.lua: {len(bodies)} requests with {spans} spans")
    return len(bodies)


def sample_rss(pid, stop, out):
    while not stop.is_set():
        try:
            out.append(rss_mib(pid))
        except OSError:
            return
        time.sleep(0.5)


def ingest(proc, port, batches, n, seconds, connections=8):
    stop, rss = threading.Event(), []
    t = threading.Thread(target=sample_rss, args=(proc.proc.pid, stop, rss))
    t.start()
    r = wrk_ingest(port, batches, n, seconds, connections)
    stop.set()
    t.join()
    r["rss_mib_max"] = max(rss) if rss else None
    return r


def settle(pid, cap=30.0, step=0.5, idle=0.05):
    """Waits until the process uses less than `idle` of a core (its flushes and compactions after a load
    done), at most `cap` seconds; returns the CPU seconds it has used by then."""
    end, last = time.monotonic() + cap, cpu_seconds(pid)
    while time.monotonic() < end:
        time.sleep(step)
        now = cpu_seconds(pid)
        if now - last < idle * step:
            return now
        last = now
    return last


def queries(query_port, stop, latencies, path_fn):
    while not stop.is_set():
        t0 = time.perf_counter()
        request(query_port, path_fn())
        latencies.append((time.perf_counter() - t0) * 1000)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def trace_ids(query_port, n=200):
    status, _, body = request(query_port, "/api/traces?service=cart&limit=%d" % n)
    return [t["traceID"] for t in json.loads(body)["data"]]


# The search timed at each store size: a service, a tag and a minimum duration (Jaeger's API).
SEARCH_PATH = ("/api/traces?service=cart&minDuration=150ms&limit=20&tags="
               + urllib.parse.quote(json.dumps({"http.response.status_code": "500"})))


def query_latencies(query_port, n=300):
    ids = trace_ids(query_port)
    by_id, search = [], []
    for i in range(n):
        t0 = time.perf_counter()
        request(query_port, f"/api/traces/{ids[i % len(ids)]}")
        by_id.append((time.perf_counter() - t0) * 1000)
    for _ in range(max(n // 5, 20)):
        t0 = time.perf_counter()
        request(query_port, SEARCH_PATH)
        search.append((time.perf_counter() - t0) * 1000)
    return {"by_id_p50_ms": percentile(by_id, 50), "by_id_p99_ms": percentile(by_id, 99),
            "search_p50_ms": percentile(search, 50), "search_p99_ms": percentile(search, 99)}


def tree_bytes(directory: Path, pattern: str = "*") -> int:
    """The bytes of the files under `directory` matching `pattern` (recursively)."""
    return sum(f.stat().st_size for f in directory.rglob(pattern) if f.is_file())


def fill(port, batches, n, target_spans):
    """Ingests until the store holds `target_spans` spans: a first round of 2 s to learn the rate, then
    rounds of up to 10 s, each only as long as the last rate needs for what is left (rounds of 10 s
    throughout overshot 10M by up to a round's 1.5M spans, and the figures were then taken at a larger
    store than their row says)."""
    stored, seconds = 0, 2
    while stored < target_spans:
        r = wrk_ingest(port, batches, n, seconds)
        stored += r["spans"]
        rate = max(r["spans_per_s"], 1.0)
        seconds = min(10, max(1, math.ceil((target_spans - stored) / rate)))
    return stored


def run(seconds=10, rounds=3, sizes=(1_000_000,), n_batches=300):
    tmp = Path(tempfile.mkdtemp(prefix="meshtrace-bench-"))
    batches = tmp / "batches"
    batches.mkdir()
    write_batches(batches, n_batches)
    results = {"batch_bytes": statistics.mean(p.stat().st_size for p in batches.iterdir())}
    try:
        check_generator(batches, n_batches)
        data = tmp / "store"
        coll, coll_port, query_port = meshtrace_collector(data)
        rot, rot_port = rotel(tmp)
        try:
            ingest(coll, coll_port, batches, n_batches, 2)  # warm-up
            ingest(rot, rot_port, batches, n_batches, 2)
            peers = {"meshtrace": (coll, coll_port), "rotel": (rot, rot_port)}

            def side_by_side(connections):
                """Rounds of one measurement of each, the order turned every round: the one measured second
                meets what the first leaves running (the collector's flushes and compactions go on after
                its round), and the machine's other work drifts between rounds, so a round's two figures
                are taken as close together as they can be."""
                out = {"meshtrace": [], "rotel": []}
                settle(coll.proc.pid)  # what the rounds before left running is not this block's
                cpu = {name: cpu_seconds(proc.proc.pid) for name, (proc, _) in peers.items()}
                for r in range(rounds):
                    for name in (("meshtrace", "rotel") if r % 2 == 0 else ("rotel", "meshtrace")):
                        proc, port = peers[name]
                        out[name].append(ingest(proc, port, batches, n_batches, seconds, connections))
                # CPU per span, all threads, the work a load leaves behind included (the collector's flushes
                # and compactions run on after its rounds; rotel leaves none): unlike spans/s, it does not
                # depend on which process the scheduler runs first on a machine wrk shares.
                settle(coll.proc.pid)
                for name, (proc, _) in peers.items():
                    spans = sum(s["spans"] for s in out[name])
                    cpu[name] = (cpu_seconds(proc.proc.pid) - cpu[name]) / max(spans, 1) * 1e6
                return out, cpu

            samples, cpu = side_by_side(8)
            # Many senders at once (a fleet of sidecars): the durable store answers a group commit per
            # fsync, so its rate follows the spans one fsync carries, which more connections raise.
            many, many_cpu = side_by_side(MANY)
            # Ingest while queries run.
            stop, lat = threading.Event(), []
            qt = threading.Thread(target=queries, args=(query_port, stop, lat,
                                                        lambda: "/api/traces?service=cart&limit=20"))
            qt.start()
            with_queries = ingest(coll, coll_port, batches, n_batches, seconds)
            stop.set()
            qt.join()
        finally:
            rot.stop()
        def round_ratios(measured):
            return [round(m["spans_per_s"] / max(r["spans_per_s"], 1), 3)
                    for m, r in zip(measured["meshtrace"], measured["rotel"])]

        def medians(measured):
            return {k: statistics.median(s["spans_per_s"] for s in v) for k, v in measured.items()}

        def generator(measured):
            """wrk's CPU per span against each server, and its busiest share of a core in any round."""
            return {k: {"cpu_us_per_span": sum(s["wrk_cpu_s"] for s in v) / max(sum(s["spans"] for s in v), 1) * 1e6,
                        "max_core_share": max(s["wrk_cpu_s"] / s["seconds"] for s in v)}
                    for k, v in measured.items()}

        med, med_many = medians(samples), medians(many)
        results["ingest"] = {
            "meshtrace_spans_per_s": med["meshtrace"], "rotel_spans_per_s": med["rotel"],
            "ratio": med["meshtrace"] / med["rotel"],
            "meshtrace_rss_mib_max": max(s["rss_mib_max"] or 0 for s in samples["meshtrace"]),
            "rotel_rss_mib_max": max(s["rss_mib_max"] or 0 for s in samples["rotel"]),
            "meshtrace_refused_requests": sum(s["refused"] for s in samples["meshtrace"]),
            "rounds": {k: [round(s["spans_per_s"]) for s in v] for k, v in samples.items()},
            "round_ratios": round_ratios(samples),
            "meshtrace_cpu_us_per_span": cpu["meshtrace"], "rotel_cpu_us_per_span": cpu["rotel"],
            "cpu_ratio": cpu["meshtrace"] / cpu["rotel"],
            "many_connections": MANY,
            "many_meshtrace_cpu_us_per_span": many_cpu["meshtrace"], "many_rotel_cpu_us_per_span": many_cpu["rotel"],
            "many_cpu_ratio": many_cpu["meshtrace"] / many_cpu["rotel"],
            "many_meshtrace_spans_per_s": med_many["meshtrace"], "many_rotel_spans_per_s": med_many["rotel"],
            "many_ratio": med_many["meshtrace"] / med_many["rotel"],
            "many_meshtrace_refused_requests": sum(s["refused"] for s in many["meshtrace"]),
            "many_rounds": {k: [round(s["spans_per_s"]) for s in v] for k, v in many.items()},
            "many_round_ratios": round_ratios(many),
            "wrk": generator(samples), "many_wrk": generator(many),
            "with_queries_spans_per_s": with_queries["spans_per_s"],
            "with_queries_ratio": with_queries["spans_per_s"] / med["meshtrace"],
            "queries_during_ingest": len(lat), "query_p50_ms": percentile(lat, 50), "query_p99_ms": percentile(lat, 99),
        }
        # Query latency at each store size, in a store of its own: the ingest rounds above stored some
        # millions of spans that a count of the fill alone left out (the "1M" row then held about 6M).
        coll.stop()
        shutil.rmtree(data, ignore_errors=True)
        data = tmp / "query-store"
        coll, coll_port, query_port = meshtrace_collector(data)
        results["query"] = []
        stored = 0
        for size in sizes:
            stored += fill(coll_port, batches, n_batches, size - stored)
            time.sleep(2)
            q = query_latencies(query_port)
            q["stored_spans"] = stored
            q["store_bytes"] = tree_bytes(data)
            # The journal holds recent batches until the LSM flushes them (bounded, 512 MiB at most).
            q["journal_bytes"] = tree_bytes(data, "journals/*")
            q["bytes_per_span"] = q["store_bytes"] / max(stored, 1)
            results["query"].append(q)
        coll.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    sizes = tuple(int(s) for s in os.environ.get("BENCH_SIZES", "1000000").split(","))
    print(json.dumps(run(seconds=int(os.environ.get("BENCH_SECONDS", "5")),
                         rounds=int(os.environ.get("BENCH_ROUNDS", "3")), sizes=sizes), indent=1))
