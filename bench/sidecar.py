"""Sidecar overhead: what tracing costs every request.

One sidecar Envoy per mode, all in front of the same backend (an Envoy
answering at once with a direct response), driven over loopback by wrk.
Modes alternate within one run, in a new random order each round, so a noisy
neighbour hurts them alike; figures are ratios to "no tracing" and to the
"headers" floor in the same run.

The floors (bench/floors/, built by `make floors` like the filter) are what any
proxy-wasm filter pays: `floor-null` returns Continue, `floor-headers` reads the
request headers, writes one and reads the response code. What meshtrace costs
over `floor-headers` is the tracer's own.

With one worker per sidecar and two or more CPUs, the sidecars are pinned to
the first CPU and the backend and wrk to the second, so a sidecar's throughput
is its own cost, not the scheduler's. With two workers (`--concurrency 2`:
two VMs, so the export queues and the Envoy-wide rate cap contend) nothing is
pinned: the sidecar needs both CPUs.
"""
from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import time
from pathlib import Path

from meshtrace_testkit import LOOPBACK, ROOT, Envoy, cluster, free_port, http_listener, request, wasm_filter
from meshtrace_testkit.procs import cpu_seconds, rss_mib

FLOORS = ROOT / "dist" / "floors"
CPUS = os.cpu_count() or 1

# Every mode, in table order. `meshtrace-cap` samples everything but takes a
# token from the Envoy-wide cap (shared data, compare-and-swap) per trace.
# The `-nolink` modes turn the x-request-id link off: what it costs at 0%
# and 1%, where it is most of what stands over the headers floor.
MODES = ["no-tracing", "floor-null", "floor-headers", "meshtrace-0", "meshtrace-0-nolink", "meshtrace-1",
         "meshtrace-1-nolink", "meshtrace-100", "envoy-otel-100"]
MODES_2 = ["no-tracing", "floor-null", "floor-headers", "meshtrace-0", "meshtrace-1", "meshtrace-100",
           "meshtrace-cap", "envoy-otel-100"]
CAP_PER_SECOND = 1000

# The filter's configuration in every meshtrace mode.
PROPAGATORS = ["tracecontext", "baggage", "b3"]


def hcm_listener(name, port, route, filters=(), tracing=None):
    """An inbound listener whose every path takes `route` (a route's action: `route` or `direct_response`)."""
    return http_listener(name, port, [{"match": {"prefix": "/"}, **route}], filters=filters, direction="INBOUND",
                         hcm={"tracing": tracing} if tracing else None)


def backend(cpus=None):
    """An Envoy that answers every request at once: the app and the OTLP sink."""
    app, sink = free_port(), free_port()
    direct = {"direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
    env = Envoy({"static_resources": {"listeners": [
        hcm_listener("app", app, direct), hcm_listener("sink", sink, {"direct_response": {"status": 200}})]}},
        concurrency=1, cpus=cpus)
    return env, app, sink


def envoy_otel_tracing(sink_cluster):
    return {"random_sampling": {"value": 100}, "provider": {
        "name": "envoy.tracers.opentelemetry",
        "typed_config": {"@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                         "service_name": "bench",
                         "http_service": {"http_uri": {"uri": "http://sink/v1/traces", "cluster": sink_cluster,
                                                       "timeout": "1s"}}}}}


def floor_filter(name):
    """A floor module in the same Wasm filter configuration as meshtrace's."""
    return wasm_filter({}, wasm=FLOORS / f"{name}.wasm", vm_id=f"floor-{name}")


def meshtrace_config(mode):
    """`meshtrace-N` samples N%; `meshtrace-cap` everything under the cap. A
    `-nolink` suffix (`meshtrace-0-nolink`) turns the x-request-id link off,
    to measure what it costs."""
    mode, nolink = (mode[:-len("-nolink")], True) if mode.endswith("-nolink") else (mode, False)
    sampling = {"randomSamplingPercentage": 100.0 if mode == "meshtrace-cap" else float(mode.split("-")[1])}
    if mode == "meshtrace-cap":
        sampling["maxTracesPerSecond"] = CAP_PER_SECOND
    config = {"direction": "inbound", "serviceName": "bench", "propagators": PROPAGATORS,
              "sampling": sampling, "exporter": {"cluster": "sink"}}
    if nolink:
        config["linkByRequestId"] = False
    return config


def bootstrap(mode, port, app_port, sink_port):
    route = {"route": {"cluster": "app"}}
    filters, tracing = [], None
    if mode == "envoy-otel-100":
        tracing = envoy_otel_tracing("sink")
    elif mode.startswith("floor-"):
        filters = [floor_filter(mode.split("-", 1)[1])]
    elif mode.startswith("meshtrace-"):
        filters = [wasm_filter(meshtrace_config(mode))]
    return {"static_resources": {
        "listeners": [hcm_listener("ingress", port, route, filters, tracing)],
        "clusters": [cluster("app", app_port), cluster("sink", sink_port)]}}


def sidecar(mode, app_port, sink_port, concurrency=1, cpus=None):
    port = free_port()
    env = Envoy(bootstrap(mode, port, app_port, sink_port), concurrency=concurrency, cpus=cpus)
    return env, port


def heap_mib(env) -> dict:
    """Envoy's allocator (tcmalloc) from the admin `/memory` endpoint: what
    is live (`allocated`) and what it holds freed (page heap and thread
    caches), which RSS counts too."""
    _, _, body = request(env.admin_port, "/memory")
    m = {k: int(v) / 2**20 for k, v in json.loads(body).items()}
    return {"allocated": m.get("allocated", 0.0),
            "held_free": m.get("pageheap_free", 0.0) + m.get("total_thread_cache", 0.0)}


def malloc_peak_mib(env) -> float:
    """tcmalloc's "Actual memory used at peak" (admin `/memory/tcmalloc`):
    the allocator's high-water mark, which for a sidecar that has served
    nothing yet is what loading the module (V8 compiling it) took."""
    _, _, body = request(env.admin_port, "/memory/tcmalloc")
    m = re.search(rb"\(\s*([\d.]+) MiB\) Actual memory used at peak", body)
    return float(m.group(1)) if m else float("nan")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(port, seconds, connections, threads=1, cpus=None):
    pin = ["taskset", "-c", cpus] if cpus else []
    out = subprocess.run([*pin, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
                          f"http://{LOOPBACK}:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M):
        lat[pct] = float(value) * UNITS[unit]
    return {"rps": rps, "requests": total, "p50_ms": lat.get("50"), "p99_ms": lat.get("99")}


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(rounds=5, seconds=5, connections=16, soak_seconds=10, concurrency=1, modes=None):
    modes = list(modes or (MODES if concurrency == 1 else MODES_2))
    pinned = concurrency == 1 and CPUS >= 2
    sidecar_cpu, load_cpu = ("0", "1") if pinned else (None, None)
    threads = concurrency
    load_before = loadavg()
    be, app_port, sink_port = backend(load_cpu)
    be.start()
    sidecars = {}
    try:
        for mode in modes:
            env, port = sidecar(mode, app_port, sink_port, concurrency, sidecar_cpu)
            env.start()
            sidecars[mode] = (env, port)
        # Memory before any request: what loading the module cost.
        time.sleep(2)
        idle = {m: {"rss": rss_mib(env.proc.pid), "malloc_peak": malloc_peak_mib(env), **heap_mib(env)}
                for m, (env, _) in sidecars.items()}
        for env, port in sidecars.values():  # warm-up
            wrk(port, 1, connections, threads, load_cpu)
        samples = {m: [] for m in modes}
        rng = random.Random(1)
        for _ in range(rounds):
            order = modes[:]
            rng.shuffle(order)
            for mode in order:
                env, port = sidecars[mode]
                cpu0 = cpu_seconds(env.proc.pid)
                r = wrk(port, seconds, connections, threads, load_cpu)
                r["cpu_us_per_request"] = (cpu_seconds(env.proc.pid) - cpu0) / max(r["requests"], 1) * 1e6
                samples[mode].append(r)
        # Memory after a soak: every sidecar under the same load for the same
        # time, then its resident set.
        for mode in modes:
            wrk(sidecars[mode][1], soak_seconds, connections, threads, load_cpu)
        time.sleep(2)
        rss = {m: rss_mib(env.proc.pid) for m, (env, _) in sidecars.items()}
        heap = {m: heap_mib(env) for m, (env, _) in sidecars.items()}
        soak = {}
        if "meshtrace-100" in sidecars:
            env = sidecars["meshtrace-100"][0]
            soak = {"meshtrace_exported": env.stat("spans_exported"), "meshtrace_dropped": env.stat("spans_dropped")}
    finally:
        for env, _ in sidecars.values():
            env.stop()
        be.stop()

    def med(mode, key):
        return statistics.median(s[key] for s in samples[mode])

    base = {k: med("no-tracing", k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")}
    floor = med("floor-headers", "rps") if "floor-headers" in samples else None
    rows = []
    for mode in modes:
        rows.append({
            "mode": mode,
            "rps": med(mode, "rps"),
            "throughput_ratio": med(mode, "rps") / base["rps"],
            "floor_ratio": med(mode, "rps") / floor if floor else None,
            "p50_ms": med(mode, "p50_ms"),
            "p50_ratio": med(mode, "p50_ms") / base["p50_ms"],
            "p99_ms": med(mode, "p99_ms"),
            "p99_ratio": med(mode, "p99_ms") / base["p99_ms"],
            "cpu_us_per_request": med(mode, "cpu_us_per_request"),
            "cpu_us_over_no_tracing": med(mode, "cpu_us_per_request") - base["cpu_us_per_request"],
            "rss_mib": rss[mode],
            "allocated_mib": heap[mode]["allocated"],
            "held_free_mib": heap[mode]["held_free"],
            "idle_rss_mib": idle[mode]["rss"],
            "idle_held_free_mib": idle[mode]["held_free"],
            "idle_malloc_peak_mib": idle[mode]["malloc_peak"],
            "rounds": [round(s["rps"]) for s in samples[mode]],
        })
    return {"rounds": rounds, "seconds": seconds, "connections": connections, "threads": threads,
            "concurrency": concurrency, "rows": rows, "pinned": pinned,
            "load_before": load_before, "load_after": loadavg(),
            "soak": {"seconds": soak_seconds, **soak}}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--soak", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--modes", help="comma-separated subset (no-tracing is always included)")
    a = ap.parse_args()
    modes = None
    if a.modes:
        modes = ["no-tracing", *[m for m in a.modes.split(",") if m != "no-tracing"]]
    print(json.dumps(run(a.rounds, a.seconds, soak_seconds=a.soak, concurrency=a.concurrency, modes=modes),
                     indent=1))
