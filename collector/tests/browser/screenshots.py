"""Takes the README's screenshots of the viewer: a collector filled with the browser tests' mesh traces,
each page in headless Chromium at 1280x900, saved to collector/docs/screenshots/ (and shrunk with
pngquant when it is installed: `apt-get install pngquant`).

    .venv/bin/python collector/tests/browser/screenshots.py
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mesh  # noqa: E402
from conftest import fill, mesh_traces, new_driver  # noqa: E402
from meshtrace_testkit import Collector, wait_until  # noqa: E402

OUT = HERE.parent.parent / "docs" / "screenshots"


def settle(driver, selector: str, timeout=20.0):
    wait_until(lambda: driver.find_elements("css selector", selector), timeout,
               f"{selector} on {driver.current_url}", interval=0.1)
    time.sleep(0.6)  # fonts, the scatter's resize, the diagnostics request


def main():
    work = Path(tempfile.mkdtemp(prefix="meshtrace-shots-"))
    started = mesh.now_ns()
    collector = Collector(work / "data")
    time.sleep(1.2)
    ids, traces = mesh_traces(mesh.now_ns(), spread_ns=mesh.now_ns() - started - 100_000_000)
    keep = [t for t in traces if t[0] not in (ids["large"], ids["hostile"])]
    fill(collector, keep)
    base = f"http://{collector.addrs['http']}"
    OUT.mkdir(parents=True, exist_ok=True)
    driver = new_driver(work / "profile", work / "downloads", 1280, 900)
    try:
        shots = [
            ("search.png", "/search?service=api-gateway&limit=20", ".result"),
            ("trace.png", f"/trace/{ids['error']}", ".diagnostics-panel"),
            ("diagnostics.png", f"/trace/{ids['broken']}", ".diagnostics-panel"),
            ("statistics.png", f"/trace/{ids['error']}?view=stats", "table.stats"),
            ("compare.png", f"/trace/{ids['ok']}...{ids['error']}", "table.compare"),
            ("service-map.png", "/dependencies", ".service-map"),
            ("service.png", "/service/checkout", "table.ops"),
        ]
        for name, path, selector in shots:
            driver.get(base + path)
            settle(driver, selector)
            if name == "trace.png":
                # Show a span's details: the failed payment.
                for row in driver.find_elements("css selector", ".wf-row"):
                    if "POST /charge" in row.text and "!" in row.text:
                        row.click()
                        break
                settle(driver, ".span-detail")
                driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(OUT / name))
            if shutil.which("pngquant"):
                subprocess.run(["pngquant", "--force", "--quality", "70-90", "--speed", "1", "--strip",
                                "--output", str(OUT / name), str(OUT / name)], check=True)
            print(f"{OUT / name}: {os.path.getsize(OUT / name)} bytes")
    finally:
        driver.quit()
        collector.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
