"""One line per reason for what was skipped (instead of pytest's -rs, which
repeats a reason for every test location): e.g. the Istio kinds when Istio's
CRDs are not beside the clone."""
from __future__ import annotations

from collections import Counter


def pytest_terminal_summary(terminalreporter):
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    for reason, count in reasons.items():
        terminalreporter.write_line(f"skipped {count} test{'s' if count != 1 else ''}: {reason}")
