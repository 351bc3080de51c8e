"""The filter's per-request instructions, counted by callgrind (repeatable on
a shared machine): `examples/per_request.rs` run under valgrind, in each of
its modes: an inbound request (the x-request-id link recorded and closed),
the same with `linkByRequestId` off, and an outbound request linked by its
x-request-id."""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 5000
# examples/per_request.rs mode -> key in the results.
MODES = {"inbound": "per_request", "inbound-nolink": "per_request_without_link",
         "outbound-linked": "outbound_linked"}


def instructions(mode: str) -> int:
    # Only the count on stderr is kept; the profile itself goes with its temporary directory.
    with tempfile.TemporaryDirectory(prefix="meshtrace-callgrind-") as tmp:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={Path(tmp) / 'callgrind.out'}",
                               str(ROOT / "target" / "release" / "examples" / "per_request"), str(REQUESTS), mode],
                              capture_output=True, text=True, check=True)
    return int(re.search(r"refs:\s+([\d,]+)", proc.stderr).group(1).replace(",", ""))


def run() -> dict:
    subprocess.run(["cargo", "build", "-q", "--release", "--example", "per_request"], cwd=ROOT, check=True)
    counts = {key: instructions(mode) for mode, key in MODES.items()}
    result = {"requests": REQUESTS, "instructions": counts["per_request"]}
    result.update({key: n / REQUESTS for key, n in counts.items()})
    result["link_per_request"] = result["per_request"] - result["per_request_without_link"]
    return result


if __name__ == "__main__":
    print(run())
