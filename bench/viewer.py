"""The viewer's figures in headless Chromium: how long a 10,000-span trace takes to draw, how smoothly its
waterfall scrolls, and how long a search with 1,500 results takes to render, each against a small baseline
measured in the same run (a 100-span trace, a 20-result search).

The collector (dist/meshtrace-collector, else the debug build) is filled over OTLP with the known mesh
traces of the browser tests (collector/tests/browser/mesh.py). Times come from the page's own performance
marks (`meshtrace:trace-rendered`, `meshtrace:search-rendered`) and from navigation start.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from meshtrace_testkit import RELEASE_COLLECTOR, ROOT, Collector, wait_until

sys.path.insert(0, str(ROOT / "collector" / "tests" / "browser"))
import mesh  # noqa: E402
from conftest import fill, new_driver  # noqa: E402

ROUNDS = 5
SEARCH_SERVICE = "api-gateway"


def binary() -> str:
    for path in (RELEASE_COLLECTOR, ROOT / "target" / "debug" / "meshtrace-collector"):
        if path.exists():
            return str(path)
    raise SystemExit("build the collector first (make collector-build)")


def wait_mark(driver, name: str, timeout=120.0) -> dict:
    """The page's performance mark `name`: {at_ms (from navigation start), ms (the app's own timing)}."""
    return wait_until(lambda: driver.execute_script(
        "const m = performance.getEntriesByName(arguments[0]).pop();"
        "return m ? {at_ms: m.startTime, ms: m.detail && m.detail.ms} : null;", name), timeout, f"the {name} mark",
        interval=0.02)


def open_trace(driver, base: str, trace_id: str) -> dict:
    driver.get("about:blank")
    driver.get(f"{base}/trace/{trace_id}")
    return wait_mark(driver, "meshtrace:trace-rendered")


def scroll_frames(driver) -> list[float]:
    """Scrolls the waterfall from top to bottom, a screen per frame, and returns the frame intervals (ms)."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const el = document.querySelector('.wf-scroll');
        const times = [];
        let last = performance.now();
        function step() {
          const now = performance.now();
          times.push(now - last);
          last = now;
          if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1 || times.length > 2000) return done(times.slice(1));
          el.scrollTop += el.clientHeight;
          requestAnimationFrame(step);
        }
        requestAnimationFrame(step);
    """)


def open_search(driver, base: str, limit: int) -> dict:
    driver.get("about:blank")
    driver.get(f"{base}/search?service={SEARCH_SERVICE}&lookback=1h&limit={limit}")
    return wait_mark(driver, "meshtrace:search-rendered")


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="meshtrace-viewer-bench-"))
    collector_bin = os.environ.setdefault("MESHTRACE_COLLECTOR_BIN", binary())
    started = mesh.now_ns()
    collector = Collector(work / "data")
    try:
        t0 = mesh.now_ns()
        big = mesh.wide(mesh.trace_id(1, 0xbe4c), t0 - 60 * 10**9, 10_000)
        small = mesh.wide(mesh.trace_id(2, 0xbe4c), t0 - 50 * 10**9, 100)
        many = [mesh.checkout(mesh.trace_id(1000 + i, 0xbe4c), started + (t0 - started) * i // 1500,
                              pay_ms=5 + (i % 97), error=i % 50 == 0) for i in range(1500)]
        fill(collector, [big, small])
        for i in range(0, len(many), 100):
            chunk = many[i:i + 100]
            assert collector.post_otlp_json({"resourceSpans": [rs for _, spans in chunk for rs in spans]}) == 200
        base = f"http://{collector.addrs['http']}"
        driver = new_driver(work / "profile", work / "downloads", 1400, 900)
        try:
            open_trace(driver, base, small[0])  # warm the asset cache, as a returning user has it
            rounds = {"big": [], "small": []}
            for _ in range(ROUNDS):
                rounds["small"].append(open_trace(driver, base, small[0]))
                rounds["big"].append(open_trace(driver, base, big[0]))
            rows_in_dom = driver.execute_script("return document.querySelectorAll('.wf-row').length")
            frames = []
            for _ in range(3):
                driver.execute_script("document.querySelector('.wf-scroll').scrollTop = 0")
                frames += scroll_frames(driver)
            search = {"small": [], "big": []}
            for _ in range(ROUNDS):
                search["small"].append(open_search(driver, base, 20))
                search["big"].append(open_search(driver, base, 1500))
            results_shown = driver.execute_script("return document.querySelectorAll('.result').length")
            chromium = driver.capabilities.get("browserVersion", "?")
        finally:
            driver.quit()
    finally:
        collector.stop()
        shutil.rmtree(work, ignore_errors=True)
    nav = lambda marks: median([m["at_ms"] for m in marks])  # noqa: E731
    app = lambda marks: median([m["ms"] for m in marks])  # noqa: E731
    return {
        "chromium": chromium,
        "collector": collector_bin,
        "rounds": ROUNDS,
        "trace_10k_nav_ms": nav(rounds["big"]), "trace_10k_app_ms": app(rounds["big"]),
        "trace_100_nav_ms": nav(rounds["small"]), "trace_100_app_ms": app(rounds["small"]),
        "trace_ratio": nav(rounds["big"]) / nav(rounds["small"]),
        "rows_in_dom": rows_in_dom,
        "scroll_frames": len(frames), "scroll_p50_ms": median(frames), "scroll_p95_ms": percentile(frames, 0.95),
        "scroll_max_ms": max(frames) if frames else None,
        "search_1500_nav_ms": nav(search["big"]), "search_1500_app_ms": app(search["big"]),
        "search_20_nav_ms": nav(search["small"]), "search_20_app_ms": app(search["small"]),
        "search_ratio": nav(search["big"]) / nav(search["small"]),
        "results_shown": results_shown,
    }


def section(r: dict) -> str:
    f = lambda x: "n/a" if x is None else f"{x:.0f}"  # noqa: E731
    return f"""## Viewer

`python bench/viewer.py` (part of `make bench`): the collector's own viewer in headless Chromium
{r['chromium']} (Debian's, 1400x900), {r['rounds']} page loads each, medians; times from navigation start to
the page's own "rendered" mark (assets cached, as for a returning user), and in brackets the part after the
data request started (fetch, parse, layout, first paint of the rows). Baselines in the same run: a 100-span
trace, a 20-result search.

| | this | baseline | ratio |
| --- | --- | --- | --- |
| open a 10,000-span trace | **{f(r['trace_10k_nav_ms'])} ms** ({f(r['trace_10k_app_ms'])} ms) | 100 spans: {f(r['trace_100_nav_ms'])} ms ({f(r['trace_100_app_ms'])} ms) | {r['trace_ratio']:.1f}x |
| search with 1,500 results, all listed | **{f(r['search_1500_nav_ms'])} ms** ({f(r['search_1500_app_ms'])} ms) | 20 results: {f(r['search_20_nav_ms'])} ms ({f(r['search_20_app_ms'])} ms) | {r['search_ratio']:.1f}x |

- Scrolling the 10,000-span waterfall a screen per animation frame, top to bottom three times: frame
  interval p50 {r['scroll_p50_ms']:.1f} ms, p95 {r['scroll_p95_ms']:.1f} ms, max {r['scroll_max_ms']:.1f} ms over
  {r['scroll_frames']} frames (60 frames/s is 16.7 ms); {r['rows_in_dom']} rows exist in the DOM at a time.
- The search listed {r['results_shown']} results; the list is appended a chunk per frame, so the page answers
  input while it fills.
"""


if __name__ == "__main__":
    result = run()
    print(result)
    print(section(result))
