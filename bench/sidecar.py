"""Sidecar overhead: what tracing costs every request.

One sidecar Envoy (one worker) per mode, all in front of the same backend (an
Envoy answering at once with a direct response), driven over loopback by wrk.
Modes alternate within one run, in a new random order each round, so a noisy
neighbour hurts them alike; figures are ratios to "no tracing" in the same run.
With two or more CPUs the sidecars are pinned to the first and the backend and
wrk to the second, so a sidecar's throughput is its own cost, not the
scheduler's.
"""
from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import time

from meshtrace_testkit import LOOPBACK, Envoy, cluster, free_port, http_listener, wasm_filter
from meshtrace_testkit.procs import cpu_seconds, rss_mib

PINNED = (os.cpu_count() or 1) >= 2
SIDECAR_CPU, LOAD_CPU = ("0", "1") if PINNED else (None, None)


def hcm_listener(name, port, route, filters=(), tracing=None):
    """An inbound listener whose every path takes `route` (a route's action: `route` or `direct_response`)."""
    return http_listener(name, port, [{"match": {"prefix": "/"}, **route}], filters=filters, direction="INBOUND",
                         hcm={"tracing": tracing} if tracing else None)


def backend():
    """An Envoy that answers every request at once: the app and the OTLP sink."""
    app, sink = free_port(), free_port()
    direct = {"direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
    env = Envoy({"static_resources": {"listeners": [
        hcm_listener("app", app, direct), hcm_listener("sink", sink, {"direct_response": {"status": 200}})]}},
        concurrency=1, cpus=LOAD_CPU)
    return env, app, sink


def envoy_otel_tracing(sink_cluster):
    return {"random_sampling": {"value": 100}, "provider": {
        "name": "envoy.tracers.opentelemetry",
        "typed_config": {"@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                         "service_name": "bench",
                         "http_service": {"http_uri": {"uri": "http://sink/v1/traces", "cluster": sink_cluster,
                                                       "timeout": "1s"}}}}}


def sidecar(mode, app_port, sink_port):
    port = free_port()
    route = {"route": {"cluster": "app"}}
    filters, tracing = [], None
    if mode == "envoy-otel-100":
        tracing = envoy_otel_tracing("sink")
    elif mode.startswith("meshtrace-"):
        pct = float(mode.split("-")[1])
        filters = [wasm_filter({"direction": "inbound", "serviceName": "bench",
                                "propagators": ["tracecontext", "baggage", "b3"],
                                "sampling": {"randomSamplingPercentage": pct},
                                "exporter": {"cluster": "sink"}})]
    env = Envoy({"static_resources": {
        "listeners": [hcm_listener("ingress", port, route, filters, tracing)],
        "clusters": [cluster("app", app_port), cluster("sink", sink_port)]}}, concurrency=1, cpus=SIDECAR_CPU)
    return env, port


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(port, seconds, connections):
    pin = ["taskset", "-c", LOAD_CPU] if LOAD_CPU else []
    out = subprocess.run([*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          f"http://{LOOPBACK}:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M):
        lat[pct] = float(value) * UNITS[unit]
    return {"rps": rps, "requests": total, "p50_ms": lat.get("50"), "p99_ms": lat.get("99")}


MODES = ["no-tracing", "envoy-otel-100", "meshtrace-100", "meshtrace-1", "meshtrace-0"]


def run(rounds=5, seconds=5, connections=16, soak_seconds=20):
    be, app_port, sink_port = backend()
    be.start()
    sidecars = {}
    try:
        for mode in MODES:
            env, port = sidecar(mode, app_port, sink_port)
            env.start()
            sidecars[mode] = (env, port)
        for env, port in sidecars.values():  # warm-up
            wrk(port, 1, connections)
        samples = {m: [] for m in MODES}
        rng = random.Random(1)
        for _ in range(rounds):
            order = MODES[:]
            rng.shuffle(order)
            for mode in order:
                env, port = sidecars[mode]
                cpu0 = cpu_seconds(env.proc.pid)
                r = wrk(port, seconds, connections)
                r["cpu_us_per_request"] = (cpu_seconds(env.proc.pid) - cpu0) / max(r["requests"], 1) * 1e6
                samples[mode].append(r)
        # Memory after a soak at 100% sampling: the sidecar's resident set,
        # against the no-tracing sidecar's after the same soak.
        for mode in ("no-tracing", "meshtrace-100"):
            wrk(sidecars[mode][1], soak_seconds, connections)
        time.sleep(2)
        rss = {m: rss_mib(env.proc.pid) for m, (env, _) in sidecars.items()}
        exported = sidecars["meshtrace-100"][0].stat("spans_exported")
        dropped = sidecars["meshtrace-100"][0].stat("spans_dropped")
    finally:
        for env, _ in sidecars.values():
            env.stop()
        be.stop()

    def med(mode, key):
        return statistics.median(s[key] for s in samples[mode])

    base = {k: med("no-tracing", k) for k in ("rps", "p50_ms", "p99_ms")}
    rows = []
    for mode in MODES:
        rows.append({
            "mode": mode,
            "rps": med(mode, "rps"),
            "throughput_ratio": med(mode, "rps") / base["rps"],
            "p50_ms": med(mode, "p50_ms"),
            "p50_ratio": med(mode, "p50_ms") / base["p50_ms"],
            "p99_ms": med(mode, "p99_ms"),
            "p99_ratio": med(mode, "p99_ms") / base["p99_ms"],
            "cpu_us_per_request": med(mode, "cpu_us_per_request"),
            "rss_mib": rss[mode],
            "rounds": [round(s["rps"]) for s in samples[mode]],
        })
    return {"rounds": rounds, "seconds": seconds, "connections": connections, "rows": rows, "pinned": PINNED,
            "soak": {"seconds": soak_seconds, "meshtrace_exported": exported, "meshtrace_dropped": dropped}}


if __name__ == "__main__":
    print(json.dumps(run(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 3,
                         seconds=int(sys.argv[2]) if len(sys.argv) > 2 else 3), indent=1))
