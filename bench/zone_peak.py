"""V8's compiler memory while Envoy loads a module: the peak of its zones.

    python bench/zone_peak.py NAME=PATH.wasm [NAME=PATH.wasm ...]

V8 compiles every function of a module with TurboFan when Envoy loads it, a
few functions at a time, each in zones (arenas) that grow with the function.
With V8's `--trace-zone-stats` (set in a copy of the Envoy binary, as
bench/v8perf.py does for perf maps) every zone's creation and release prints
the live zones as JSON; `envoy --mode validate` with the module's filter
loads it once. Printed per module: the most zone memory live at once and the
largest zones then (`graph-zone`: one function's TurboFan graph).
"""
from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import module
import v8perf
from meshtrace_testkit import ROOT, WASM


def peak(envoy: Path, wasm: Path, tmp: Path) -> tuple[int, list[dict]]:
    cfg = json.dumps(module.bootstrap(True)).replace(str(WASM.resolve()), str(wasm.resolve()))
    path = tmp / f"{wasm.stem}.json"
    path.write_text(cfg)
    out = subprocess.run([str(envoy), "--mode", "validate", "-c", str(path), "-l", "error",
                          "--use-dynamic-base-id"], capture_output=True, text=True, check=True).stdout
    best = (0, [])
    for line in out.splitlines():
        if line.startswith('{"type": "v8-zone-trace"'):
            stats = json.loads(line)["stats"]
            if stats["allocated"] > best[0]:
                best = (stats["allocated"], stats["zones"])
    return best


def main(args: list[str]) -> None:
    if not args:
        sys.exit(__doc__)
    stock = v8perf.envoy_binary(Path(sys.executable))
    envoy = v8perf.patched_envoy(stock, ROOT / "target" / "bench" / "envoy-zone-stats", ("trace_zone_stats",))
    for arg in args:
        name, path = arg.split("=", 1)
        with tempfile.TemporaryDirectory(prefix="meshtrace-zones-") as tmp:
            allocated, zones = peak(envoy, Path(path), Path(tmp))
        by_name = collections.Counter()
        for z in zones:
            by_name[z["name"]] += z["allocated"]
        largest = sorted(zones, key=lambda z: -z["allocated"])[:3]
        print(f"{name}: {allocated / 2**20:.1f} MiB of zones at the peak; by kind: "
              + ", ".join(f"{k} {v / 2**20:.1f}" for k, v in by_name.most_common(3))
              + "; largest: " + ", ".join(f"{z['name']} {z['allocated'] / 2**20:.1f}" for z in largest))


if __name__ == "__main__":
    main(sys.argv[1:])
