"""The filter's per-request instructions, counted by callgrind (repeatable on
a shared machine): `examples/per_request.rs` run under valgrind."""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 5000


def run() -> dict:
    subprocess.run(["cargo", "build", "-q", "--release", "--example", "per_request"], cwd=ROOT, check=True)
    out = Path(tempfile.mkdtemp(prefix="meshtrace-callgrind-")) / "callgrind.out"
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           str(ROOT / "target" / "release" / "examples" / "per_request"), str(REQUESTS)],
                          capture_output=True, text=True, check=True)
    total = int(re.search(r"refs:\s+([\d,]+)", proc.stderr).group(1).replace(",", ""))
    return {"requests": REQUESTS, "instructions": total, "per_request": total / REQUESTS}


if __name__ == "__main__":
    print(run())
