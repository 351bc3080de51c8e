"""Child processes: stopping them for sure, their logs, and what they use (for the benchmarks)."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


class Process:
    """A child process (`argv`, `popen` passed to subprocess.Popen; output to `log`, else discarded),
    started and, when `ready` is given, waited for until `ready()` is true (`what` names it in the error;
    the process exiting fails the wait at once)."""

    def __init__(self, argv: list, *, log: Path | None = None, ready=None, what: str | None = None,
                 timeout: float = 60.0, **popen):
        from .net import wait_until  # net uses `tail` from here

        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **popen)
        finally:
            if log:
                out.close()
        if ready is not None:
            try:
                wait_until(ready, timeout, what or f"{Path(argv[0]).name} ready", interval=0.1, proc=self.proc,
                           log=log)
            except BaseException:
                stop(self.proc, 10)
                raise

    def stop(self, timeout: float = 30.0) -> int | None:
        return stop(self.proc, timeout)


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
