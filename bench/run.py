"""`make bench`: runs every benchmark and writes BENCHMARKS.md.

Figures are ratios to a baseline measured in the same run (these machines are
shared and noisy), each named with the command that reproduces it.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import collector as collector_bench  # noqa: E402
import module as module_bench  # noqa: E402
import filter_profile as profile_bench  # noqa: E402
import sidecar as sidecar_bench  # noqa: E402
import viewer as viewer_bench  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    envoy = subprocess.run([str(ROOT / ".venv" / "bin" / "envoy"), "--version"], capture_output=True,
                           text=True).stdout.strip().split("version:")[-1].strip()
    return (f"{os.cpu_count()} cores ({cpu}), {int(mem) // 1024 // 1024} GiB, Linux {platform.release()}, "
            f"Envoy {envoy}, taken {datetime.date.today().isoformat()}")


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def sidecar_section(r) -> str:
    rows = "\n".join(
        f"| {row['mode']} | {row['rps']:.0f} | **{row['throughput_ratio']:.2f}x** | {fmt(row['p50_ms'])} "
        f"({row['p50_ratio']:.2f}x) | {fmt(row['p99_ms'])} ({row['p99_ratio']:.2f}x) | "
        f"{row['cpu_us_per_request']:.1f} | {row['rss_mib']:.0f} |"
        for row in r["rows"])
    return f"""## Sidecar overhead

`python bench/sidecar.py` (part of `make bench`): one sidecar Envoy per mode, one worker each, in front
of an Envoy answering at once with a direct response; wrk over loopback, 1 thread, {r['connections']}
connections, {r['seconds']} s per measurement, {r['rounds']} rounds with the modes in a new random order
each round; medians. Ratios are to no tracing in the same run. {"Sidecars pinned to CPU 0, the backend and wrk to CPU 1 (taskset)." if r.get("pinned") else "Not pinned (one CPU)."}

| mode | req/s | throughput vs no tracing | p50 ms | p99 ms | sidecar CPU µs/request | RSS MiB after soak |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

- `envoy-otel-100`: Envoy's own OpenTelemetry tracer, 100% sampling, exporting over `http_service`.
- `meshtrace-N`: the filter at N% sampling (0: propagation only), exporting OTLP/HTTP via `dispatch_http_call`.
- RSS is the sidecar's resident set after a {r['soak']['seconds']} s soak (meshtrace-100 and no-tracing
  are soaked; the V8 runtime and one VM per worker account for most of the difference).
  During the soak meshtrace exported {r['soak']['meshtrace_exported']} spans and dropped
  {r['soak']['meshtrace_dropped']}.
- Per-round throughput, to judge the noise: {"; ".join(f"{x['mode']} {x['rounds']}" for x in r['rows'])}.
"""


def module_section(m) -> str:
    return f"""## The module

`python bench/module.py`: `dist/meshtrace.wasm` is **{m['wasm_bytes'] / 1024:.0f} KiB** ({m['wasm_bytes']} bytes,
release profile with LTO, then `wasm-opt -Os`). Loading it (V8 compiles and instantiates the module and the
plugin parses its configuration) adds **{m['load_ms']:.0f} ms** to `envoy --mode validate`
({m['validate_with_ms']:.0f} ms with the filter against {m['validate_without_ms']:.0f} ms without, medians of
{m['runs']} hyperfine runs).
"""


def collector_section(c) -> str:
    i = c["ingest"]
    queries = "\n".join(
        f"| {q['stored_spans']:,} | {q['store_bytes'] / q['stored_spans']:.0f} "
        f"({q.get('journal_bytes', 0) / 2**20:.0f} MiB of it journal) | {fmt(q['by_id_p50_ms'])} | "
        f"{fmt(q['by_id_p99_ms'])} | {fmt(q['search_p50_ms'])} | {fmt(q['search_p99_ms'])} |"
        for q in c["query"])
    return f"""## Collector ingest

`python bench/collector.py`: wrk POSTs OTLP/HTTP protobuf batches of {collector_bench.SPANS_PER_BATCH} realistic
sidecar spans (15 attributes each, {c['batch_bytes'] / 1024:.0f} KiB a batch) over loopback, every request with
new trace ids; the same load into rotel (PyPI `rotel`, blackhole exporter: receive and decode only).

| | spans/s | resident memory under load |
| --- | --- | --- |
| meshtrace-collector, into the durable store (fsync before the 200) | {i['meshtrace_spans_per_s']:,.0f} | {i['meshtrace_rss_mib_max']:.0f} MiB |
| rotel, receive only | {i['rotel_spans_per_s']:,.0f} | {i['rotel_rss_mib_max']:.0f} MiB |
| **ratio** | **{i['ratio']:.2f}x** | |

- Ingest while queries run (`/api/traces?service=...` in a loop): {i['with_queries_spans_per_s']:,.0f} spans/s
  ({i['with_queries_ratio']:.2f}x of ingest alone); {i['queries_during_ingest']} queries answered, p50
  {fmt(i['query_p50_ms'])} ms, p99 {fmt(i['query_p99_ms'])} ms.
- Requests refused with 429 (backpressure) during the ingest rounds: {i['meshtrace_refused_requests']}.
- Per-round spans/s: {i['rounds']}.

## Query

Same command; after filling the store to each size, {len(c['query'])} size(s) measured: trace by id over 300
lookups, and a service + attribute + duration search (`service=cart`, `tags={{"http.response.status_code":"500"}}`,
`minDuration=150ms`, `limit=20`).

| stored spans | store bytes/span (journal: recent batches not yet flushed) | trace by id p50 ms | p99 ms | search p50 ms | p99 ms |
| --- | --- | --- | --- | --- | --- |
{queries}
"""


def main():
    sizes = tuple(int(s) for s in os.environ.get("BENCH_SIZES", "1000000,10000000").split(","))
    results = {"machine": machine()}
    print("sidecar overhead ...", flush=True)
    results["sidecar"] = sidecar_bench.run(rounds=int(os.environ.get("BENCH_ROUNDS", "5")),
                                           seconds=int(os.environ.get("BENCH_SECONDS", "5")))
    print("module ...", flush=True)
    results["module"] = module_bench.run()
    print("filter profile ...", flush=True)
    results["profile"] = profile_bench.run()
    print("collector ...", flush=True)
    results["collector"] = collector_bench.run(seconds=int(os.environ.get("BENCH_SECONDS", "5")),
                                               rounds=3, sizes=sizes)
    print("viewer ...", flush=True)
    results["viewer"] = viewer_bench.run()
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1))
    doc = f"""# Benchmarks

Written by `make bench` ({Path(__file__).relative_to(ROOT)}); every figure below names the command that
reproduces it. Machine: {results['machine']}. These machines are shared and noisy: figures are ratios to a
baseline taken in the same run, and the raw numbers are in `bench/results.json`.

Goals (to work toward, never asserted in tests): meshtrace at 100% sampling at least 0.90x of no-tracing
throughput and at 1% at least 0.97x; a module under 500 KB; collector ingest into the durable store at
least rotel's receive-only rate; trace by id under 10 ms p99 at 10M spans.

{sidecar_section(results['sidecar'])}
{module_section(results['module'])}
{collector_section(results['collector'])}
{viewer_bench.section(results['viewer'])}
{(HERE / 'PROFILE.md').read_text() if (HERE / 'PROFILE.md').exists() else ''}
This run (`python bench/filter_profile.py`, the callgrind command above): **{results['profile']['per_request']:,.0f}
instructions per request** over {results['profile']['requests']} requests; {results['profile']['per_request_without_link']:,.0f}
with `linkByRequestId` off, so the x-request-id link costs {results['profile']['link_per_request']:,.0f} per inbound
request (`per_request 5000 inbound-nolink`); an outbound request linked by its x-request-id:
{results['profile']['outbound_linked']:,.0f} (`per_request 5000 outbound-linked`).
"""
    (ROOT / "BENCHMARKS.md").write_text(doc)
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
