"""The module: its size, and the time Envoy takes to load it.

Load time is what the module adds to `envoy --mode validate` (which creates
the VM and runs the plugin's configuration) over the same configuration
without the filter, timed by hyperfine over repeated runs.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from meshtrace_testkit import WASM, bootstrap as envoy_bootstrap, cluster, envoy_bin, free_port, http_listener, route, wasm_filter


def bootstrap(with_filter: bool) -> dict:
    filters = [wasm_filter({"direction": "inbound"})] if with_filter else []
    return envoy_bootstrap(
        [http_listener("inbound", free_port(), [route("app", name="inbound-route", timeout="10s")], filters=filters,
                       direction="INBOUND")],
        [cluster("app", free_port()), cluster("meshtrace-collector", free_port())])


def run(runs=10):
    with tempfile.TemporaryDirectory(prefix="meshtrace-module-") as tmp:
        return run_in(Path(tmp), runs)


def run_in(tmp: Path, runs: int) -> dict:
    cmds = {}
    for name, with_filter in (("without", False), ("with", True)):
        cfg = tmp / f"{name}.json"
        cfg.write_text(json.dumps(bootstrap(with_filter)))
        cmds[name] = f"{envoy_bin()} --mode validate -c {cfg} -l error --use-dynamic-base-id"
    out = tmp / "hyperfine.json"
    subprocess.run(["hyperfine", "--warmup", "2", "--runs", str(runs), "--export-json", str(out),
                    "-n", "without", cmds["without"], "-n", "with", cmds["with"]],
                   check=True, capture_output=True)
    res = {r["command"]: r for r in json.loads(out.read_text())["results"]}
    return {
        "wasm_bytes": WASM.stat().st_size,
        "validate_without_ms": res["without"]["median"] * 1000,
        "validate_with_ms": res["with"]["median"] * 1000,
        "load_ms": (res["with"]["median"] - res["without"]["median"]) * 1000,
        "runs": runs,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
