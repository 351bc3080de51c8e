"""Child processes: stopping them for sure, their logs, and what they use (for the benchmarks)."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


def stop(proc: subprocess.Popen | None, timeout: float = 30.0) -> int | None:
    """SIGTERM, then SIGKILL if `proc` is still there after `timeout` seconds; returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def rss_mib(pid: int) -> float:
    """The resident set of a running process, in MiB."""
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a running process has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")
