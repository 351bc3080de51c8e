"""What each kind of hostcall costs a real Envoy, in instructions.

The probe module (bench/floors/probe) is the null floor plus hostcalls
repeated on every request, chosen by its configuration. Each probe runs as a
one-worker sidecar under callgrind (bench/sidecar_instructions.py); a
hostcall's price is the probe's instructions per request less the null
floor's, over the repetitions. The price is the whole round trip: V8's exit
from Wasm, Envoy's work, the copy of any result back into the module (a
second crossing, into the module's allocator), and the SDK's decoding.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sidecar as sc  # noqa: E402
import sidecar_instructions as si  # noqa: E402

REPEAT = 10


def server_list(guard_all: bool) -> str:
    """The CEL list of a SERVER span's properties (src/filter/cel.rs's form);
    response.flags, request.size, response.size and source.address are always
    there, so unguarded unless `guard_all`."""
    always = {("response", "flags"), ("request", "size"), ("response", "size"), ("source", "address")}
    items = [f"{r}['{f}']" if (r, f) in always and not guard_all else f"('{f}' in {r}) ? {r}['{f}'] : ''"
             for r, f in (("response", "code"), ("response", "flags"), ("upstream", "address"),
                          ("request", "protocol"), ("request", "size"), ("response", "size"),
                          ("xds", "cluster_name"), ("source", "address"))]
    return "[" + ", ".join(items) + "]"


# label -> (phase, op, argument)
PROBES = {
    "request headers, whole map": ("request", "headers", "-"),
    "one request header, present": ("request", "header", "x-request-id"),
    "one request header, absent": ("request", "header", "x-b3-traceid"),
    "replace a request header": ("request", "set", "traceparent"),
    "clock": ("request", "now", "-"),
    "shared data read (200 bytes)": ("request", "shared-get", "probe"),
    "shared data write (200 bytes)": ("request", "shared-set", "probe"),
    "property response.code (int)": ("log", "property", "response.code"),
    "property upstream.address (string)": ("log", "property", "upstream.address"),
    "property xds.cluster_name (string)": ("log", "property", "xds.cluster_name"),
    "eight properties in one CEL list (expr_evaluate)": (
        "log", "expr", "[response.code, response.flags, response.size, request.size, upstream.address, "
                       "source.address, request.protocol, xds.cluster_name]"),
    # A SERVER span's list with every element guarded, so that a missing property reads as ''
    # instead of failing the list (how meshtrace read it until issue 14), and guarded only where
    # Envoy can lack the property at the end of a stream (src/filter/cel.rs, ALWAYS).
    "a SERVER span's eight properties, each guarded": ("log", "expr", server_list(guard_all=True)),
    "a SERVER span's eight properties, guarded where Envoy can lack them (as meshtrace reads them)": (
        "log", "expr", server_list(guard_all=False)),
}


def probe_bootstrap(port, app_port, sink_port, config_text: str) -> dict:
    bootstrap = sc.bootstrap("floor-null", port, app_port, sink_port)
    si.with_module(bootstrap, sc.FLOORS / "probe.wasm")
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["configuration"]["value"] = config_text
    return bootstrap


def run(requests=500, probes=None) -> dict:
    be, app_port, sink_port = sc.backend()
    be.start()
    rows = []
    try:
        port = sc.free_port()
        base = si.count("probe, nothing", probe_bootstrap(port, app_port, sink_port, ""), port, requests)
        for label, (phase, op, arg) in PROBES.items():
            if probes and label not in probes:
                continue
            port = sc.free_port()
            row = si.count(label, probe_bootstrap(port, app_port, sink_port, f"{phase} {op} {arg} {REPEAT}"),
                           port, requests)
            rows.append({"hostcall": label, "instructions": (row["per_request"] - base["per_request"]) / REPEAT,
                         "by_group": {k: (v - base["by_group"].get(k, 0)) / REPEAT
                                      for k, v in row["by_group"].items()}})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        be.stop()
    return {"requests": requests, "repeat": REPEAT, "baseline_per_request": base["per_request"], "rows": rows}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 500), indent=1))
