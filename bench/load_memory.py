"""What loading a module costs a sidecar's memory, before any request.

Starts the null floor and one one-worker sidecar per module given (each with
meshtrace's `meshtrace-0` configuration, in front of the same backend as
bench/sidecar.py), waits for them to settle and prints each one's resident set
and tcmalloc's view of it (admin `/memory/tcmalloc`): bytes in use, freed
bytes held in the page heap, and the high-water mark, which for a sidecar
that has served nothing is what loading the module took. With
`--release`, every sidecar's bootstrap also asks Envoy to hand freed memory
back to the system each second (`memory_allocator_manager`).

    python bench/load_memory.py shipped=dist/meshtrace.wasm other=path/to/other.wasm
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import sidecar as sc
from meshtrace_testkit import request, wasm_filter
from meshtrace_testkit.procs import rss_mib

FIELDS = {
    "in use": "Bytes in use by application",
    "page heap free": "Bytes in page heap freelist",
    "peak": "Actual memory used at peak",
}


def tcmalloc_mib(env) -> dict:
    _, _, body = request(env.admin_port, "/memory/tcmalloc")
    text = body.decode()
    out = {}
    for key, label in FIELDS.items():
        m = re.search(r"\(\s*([\d.]+) MiB\) " + re.escape(label), text)
        out[key] = float(m.group(1)) if m else float("nan")
    return out


def bootstrap_for(modules: dict[str, Path], release: bool):
    plain = sc.bootstrap

    def bootstrap(mode, port, app_port, sink_port):
        b = plain(mode if mode not in modules else "no-tracing", port, app_port, sink_port)
        if mode in modules:
            f = wasm_filter(sc.meshtrace_config("meshtrace-0"), wasm=modules[mode], vm_id=f"load-{mode}")
            b["static_resources"]["listeners"] = [
                sc.hcm_listener("ingress", port, {"route": {"cluster": "app"}}, [f])]
        if release:
            b["memory_allocator_manager"] = {"bytes_to_release": 100 * 2**20, "memory_release_interval": "1s"}
        return b

    return bootstrap


def run(modules: dict[str, Path], release=False, settle=3.0) -> list[dict]:
    sc.bootstrap = bootstrap_for(modules, release)
    be, app_port, sink_port = sc.backend("1" if sc.CPUS >= 2 else None)
    be.start()
    envs = {}
    try:
        for mode in ["floor-null", *modules]:
            env, _ = sc.sidecar(mode, app_port, sink_port, 1, "0" if sc.CPUS >= 2 else None)
            env.start()
            envs[mode] = env
        time.sleep(settle)
        rows = [{"mode": m, "bytes": modules[m].stat().st_size if m in modules else None,
                 "rss": rss_mib(env.proc.pid), **tcmalloc_mib(env)} for m, env in envs.items()]
    finally:
        for env in envs.values():
            env.stop()
        be.stop()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("modules", nargs="+", help="NAME=PATH of a .wasm")
    ap.add_argument("--release", action="store_true", help="memory_allocator_manager in every bootstrap")
    a = ap.parse_args()
    modules = {k: Path(v).resolve() for k, v in (m.split("=", 1) for m in a.modules)}
    rows = run(modules, a.release)
    null = rows[0]
    print("| sidecar | module bytes | RSS MiB (over the null floor) | in use | page heap free | allocator peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        size = f"{r['bytes']:,}" if r["bytes"] else "(null floor)"
        print(f"| {r['mode']} | {size} | {r['rss']:.1f} ({r['rss'] - null['rss']:+.1f}) | {r['in use']:.1f} | "
              f"{r['page heap free']:.1f} | {r['peak']:.1f} |")


if __name__ == "__main__":
    main()
