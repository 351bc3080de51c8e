"""The whole sidecar's instructions per request, counted by callgrind.

Throughput on a shared machine moves with the neighbours; instruction counts
do not. Each mode of bench/sidecar.py runs as a one-worker sidecar Envoy under
`valgrind --tool=callgrind` (instrumentation off while Envoy starts and V8
compiles the module), in front of the same backend as there. After a warm-up,
instrumentation is turned on, one keep-alive client sends REQUESTS requests
in turn, and the count is taken: everything the sidecar process executed in
user space for them (Envoy, V8's code for the module, libc), the kernel's
share excluded. The difference between two modes is what the second costs
per request, and it is the same on a loaded machine as on an idle one.

Valgrind sees V8's compiled Wasm as anonymous code; the profile is grouped by
object: `jit` (the module's code as V8 compiled it, and V8's stubs), `envoy`
(Envoy and V8's runtime: hostcalls, header maps, properties), `libc`.
"""
from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sidecar as sc  # noqa: E402
import v8perf  # noqa: E402
from meshtrace_testkit import LOOPBACK, ROOT, Envoy, envoy_bin, http_ok, wait_until  # noqa: E402

PATCHED = ROOT / "target" / "bench" / "envoy-v8-perf-basic-prof"

REQUESTS = 1000
WARMUP = 200
MODES = ["no-tracing", "floor-null", "floor-headers", "meshtrace-0", "meshtrace-0-nolink", "meshtrace-1",
         "meshtrace-100"]


class Client:
    """A keep-alive HTTP/1.1 client: one connection for every request."""

    def __init__(self, port, timeout=10.0):
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)

    def get(self, path="/"):
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self):
        self.conn.close()


class CallgrindEnvoy(Envoy):
    """An Envoy under callgrind, instrumentation off until `control("-i", "on")`.
    The binary is the venv's Envoy with V8's `--perf-basic-prof` on (bench/v8perf.py),
    so the Wasm code valgrind sees as anonymous can be named."""

    def __init__(self, bootstrap, out: Path):
        super().__init__(bootstrap, concurrency=1)
        self.out = out

    def start(self, expect_ready=True):
        binary = v8perf.patched_envoy(v8perf.envoy_binary(envoy_bin().parent / "python"), PATCHED)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--smc-check=all-non-file",
             "--dump-instr=yes", "--dump-line=no", "--compress-strings=no", "--compress-pos=no",
             f"--callgrind-out-file={self.out}", str(binary), "-c", str(self.config_path),
             "--concurrency", "1", "--use-dynamic-base-id", "--disable-hot-restart", "-l", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)  # V8 writes isolate-*.log there
        wait_until(lambda: http_ok(self.admin_port, "/ready"), timeout=900,
                   what=f"envoy under valgrind ready (log: {self.log_path})")
        return self

    def stop(self):
        super().stop()
        self.log.close()

    def control(self, *args):
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], check=True, capture_output=True)


WASM_NAME = re.compile(r"^(?:JS:)?(.*?)-\d+-(?:turbofan|liftoff)$")


def parse(dump: Path, perf_map: v8perf.PerfMap | None) -> tuple[int, dict, dict]:
    """Total Ir of a callgrind dump (uncompressed, by instruction), Ir by
    group, and Ir by function for the module's code and libc."""
    total, groups, functions = 0, defaultdict(int), defaultdict(int)
    obj, fn, skip = "", "", False
    for line in dump.read_text(errors="replace").splitlines():
        if not line:
            continue
        if line.startswith("totals:"):
            total = int(line.split()[1])
        elif line.startswith("ob="):
            obj = line[3:]
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost
        elif line.startswith("0x"):
            if skip:
                skip = False
                continue
            addr, ir = line.split()[:2]
            ir = int(ir)
            g = group(obj)
            if g == "unmapped":
                name = perf_map.name(int(addr, 16)) if perf_map else None
                if name is None:
                    # Envoy's google_malloc section, which valgrind does
                    # not attribute to the binary.
                    g = "tcmalloc"
                else:
                    m = WASM_NAME.match(name)
                    g = "module" if m or name.startswith("wasm ") else "v8"
                    functions[m.group(1) if m else name] += ir
            elif g == "libc":
                functions[f"libc {fn}"] += ir
            groups[g] += ir
    return total, dict(groups), dict(functions)


def demangle(names: list[str]) -> list[str]:
    """Rust symbol names, readable (binutils' c++filt knows both manglings);
    unchanged when c++filt is missing."""
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                             check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names
    clean = [re.sub(r"::h[0-9a-f]{16}$", "", re.sub(r"\[[0-9a-f]{16}\]", "", n)) for n in out]
    return clean if len(clean) == len(names) else names


def group(obj: str) -> str:
    if obj.endswith("/envoy") or "envoy-v8" in obj:
        return "envoy"
    if "libc" in obj or "ld-linux" in obj:
        return "libc"
    if obj in ("???", ""):
        return "unmapped"
    return "other"


def with_module(bootstrap: dict, wasm: Path) -> dict:
    """The bootstrap with its Wasm filter running `wasm`."""
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(wasm)
    return bootstrap


def full_batches_only(bootstrap: dict) -> dict:
    """The meshtrace filter exporting full batches only. Under valgrind a
    sidecar serves a few requests a second, so the default flush interval
    (a partial batch waits at most 1 s) would send a batch of a few spans
    each time, and the export's fixed cost (an HTTP call through Envoy and
    its answer) would weigh on each span as it never does under load, where
    batches fill up (512 spans)."""
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            conf = f["typed_config"]["config"]["configuration"]
            config = json.loads(conf["value"])
            config.setdefault("exporter", {})["flushIntervalMs"] = 60000
            conf["value"] = json.dumps(config)
    return bootstrap


def count(label: str, bootstrap: dict, port: int, requests=REQUESTS, names: Path | None = None) -> dict:
    """Instructions per request of a sidecar with `bootstrap` (listening on
    `port`); `names`: a module whose name section names the Wasm functions."""
    with tempfile.TemporaryDirectory(prefix="meshtrace-cg-") as tmp:
        return count_in(Path(tmp), label, bootstrap, port, requests, names)


def count_in(tmp: Path, label: str, bootstrap: dict, port: int, requests: int, names: Path | None) -> dict:
    env = CallgrindEnvoy(bootstrap, tmp / "callgrind.out")
    env.start()
    pid = env.proc.pid
    try:
        client = Client(port, timeout=120)
        for _ in range(WARMUP):
            client.get("/")
        env.control("-i", "on")
        for _ in range(requests):
            client.get("/")
        env.control("-i", "off")
        env.control("-d")

        def dumped():
            done = [d for d in tmp.glob("callgrind.out.*") if "\ntotals:" in d.read_text(errors="replace")]
            return done[-1] if done else None

        dump = wait_until(dumped, timeout=300, what="callgrind dump")
        client.close()
    finally:
        env.stop()
    perf_map = Path(f"/tmp/perf-{pid}.map")
    fn_names = v8perf.function_names(names) if names and names.exists() else None
    total, groups, functions = parse(dump, v8perf.PerfMap(perf_map, fn_names) if perf_map.exists() else None)
    perf_map.unlink(missing_ok=True)
    top = sorted(functions.items(), key=lambda kv: -kv[1])[:60]
    top = list(zip(demangle([k for k, _ in top]), [v for _, v in top]))
    return {"mode": label, "requests": requests, "instructions": total, "per_request": total / requests,
            "by_group": {k: v / requests for k, v in sorted(groups.items())},
            "top_functions": [(k, v / requests) for k, v in top]}


def measure(mode: str, app_port: int, sink_port: int, requests=REQUESTS, wasm: Path | None = None) -> dict:
    """One mode of bench/sidecar.py; `wasm`: the module to run in the meshtrace
    modes instead of dist/meshtrace.wasm (e.g. `make profile-wasm`'s, whose
    name section names the profile's functions)."""
    port = sc.free_port()
    bootstrap = sc.bootstrap(mode, port, app_port, sink_port)
    if mode.startswith("meshtrace-"):
        full_batches_only(bootstrap)
    names = wasm
    if wasm and mode.startswith("meshtrace-"):
        with_module(bootstrap, wasm)
    elif mode.startswith("floor-"):
        names = sc.FLOORS / f"{mode.split('-', 1)[1]}.wasm"
    return count(mode, bootstrap, port, requests, names)


def run(modes=MODES, requests=REQUESTS, wasm: Path | None = None) -> dict:
    be, app_port, sink_port = sc.backend()
    be.start()
    try:
        rows = [measure(m, app_port, sink_port, requests, wasm) for m in modes]
    finally:
        be.stop()
    base = {r["mode"]: r["per_request"] for r in rows}
    for r in rows:
        if "no-tracing" in base:
            r["over_no_tracing"] = r["per_request"] - base["no-tracing"]
        if "floor-headers" in base:
            r["over_floor_headers"] = r["per_request"] - base["floor-headers"]
    return {"requests": requests, "warmup": WARMUP, "rows": rows}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--requests", type=int, default=REQUESTS)
    ap.add_argument("--wasm", type=Path, help="the module for the meshtrace modes (default: dist/meshtrace.wasm)")
    a = ap.parse_args()
    print(json.dumps(run(a.modes.split(","), a.requests, a.wasm and a.wasm.resolve()), indent=1))
