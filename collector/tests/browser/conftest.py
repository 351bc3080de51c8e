"""The viewer in a real headless Chromium (Debian's chromium + chromium-driver, through selenium).

One browser for the whole run and one collector filled once over OTLP with known mesh traces (mesh.py);
an empty collector and a token-protected one for the cases that need them. Tests read what a person sees:
texts, counts, where a click leads. After every test the browser's console must hold no error (a CSP
violation or an exception in the page shows up there), except those a test declares it expects.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mesh  # noqa: E402
from meshtrace_testkit import Collector  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 15


def new_driver(profile: Path, downloads: Path, width=1400, height=900) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@dataclass
class Mesh:
    """The filled collector and the ids of its known traces."""
    collector: Collector
    ids: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{self.collector.addrs['http']}"


def fill(collector: Collector, traces: list[tuple[str, list]]):
    for _, resource_spans in traces:
        assert collector.post_otlp_json({"resourceSpans": resource_spans}) == 200
    # Acknowledged means stored; still, wait until each trace reads back whole.
    for tid, resource_spans in traces:
        want = sum(len(rs["scopeSpans"][0]["spans"]) for rs in resource_spans)
        collector.wait_for_trace(tid, lambda t, want=want: len(t["spans"]) == want)


def mesh_traces(t0: int, salt: int = 0x5eed, spread_ns: int = 10 * 60 * 1_000_000_000) -> tuple[dict, list]:
    """The known traces, started within `spread_ns` before `t0`: ids by role, and (id, resourceSpans)."""
    ids, traces = {}, []

    def add(role, built):
        ids[role] = built[0]
        traces.append(built)
        return built

    step = spread_ns // 10
    ok = add("ok", mesh.checkout(mesh.trace_id(1, salt), t0 - 9 * step, pay_ms=40))
    add("error", mesh.checkout(mesh.trace_id(2, salt), t0 - 8 * step, pay_ms=55, error=True, retry=True))
    add("broken", mesh.broken(mesh.trace_id(3, salt), t0 - 7 * step))
    add("hostile", mesh.hostile(mesh.trace_id(4, salt), t0 - 6 * step))
    add("linked", mesh.linked(mesh.trace_id(5, salt), t0 - 5 * step, ok[0], mesh.root_span_id(ok[1])))
    add("large", mesh.wide(mesh.trace_id(6, salt), t0 - 4 * step, 2000))
    # Background traffic for the scatter plot and sorting: a range of durations.
    for i in range(12):
        add(f"bg{i}", mesh.checkout(mesh.trace_id(100 + i, salt), t0 - (20 + 3 * i) * step // 10,
                                    pay_ms=10 + 9 * i))
    return ids, traces


@pytest.fixture(scope="session")
def filled(tmp_path_factory) -> Mesh:
    started = mesh.now_ns()
    c = Collector(tmp_path_factory.mktemp("viewer-data"))
    # The traces happened after the collector started, as live traffic does (the service graph counts
    # live edges from its start and reads older windows from the store).
    time.sleep(max(0.0, 1.2 - (mesh.now_ns() - started) / 1e9))
    ids, traces = mesh_traces(mesh.now_ns(), spread_ns=mesh.now_ns() - started - 100_000_000)
    fill(c, traces)
    yield Mesh(c, ids)
    c.stop()


@pytest.fixture(scope="session")
def empty(tmp_path_factory) -> Mesh:
    c = Collector(tmp_path_factory.mktemp("viewer-empty"))
    yield Mesh(c)
    c.stop()


@pytest.fixture(scope="session")
def protected(tmp_path_factory) -> Mesh:
    d = tmp_path_factory.mktemp("viewer-token")
    (d / "token").write_text("s3cret-viewer-token\n")
    c = Collector(d / "data", ["--query-token-file", str(d / "token")])
    yield Mesh(c)
    c.stop()


class Page:
    """The browser, with the few verbs the tests need."""

    def __init__(self, driver: webdriver.Chrome, downloads: Path):
        self.driver = driver
        self.downloads = downloads
        self.expected_console: list[str] = []

    def open(self, base: str, path: str):
        self.driver.get(base + path)

    def main_text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "main").text

    def wait(self, predicate, what: str, timeout=WAIT_S):
        try:
            # A virtualised list replaces its rows while it scrolls: an element gone stale in the middle of
            # a check means "not yet", so the check runs again.
            return WebDriverWait(self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)) \
                .until(lambda d: predicate())
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}; page shows:\n{self.main_text()[:2000]}") from None

    def wait_text(self, text: str, timeout=WAIT_S):
        self.wait(lambda: text in self.main_text(), repr(text), timeout)

    def css(self, selector: str):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector: str):
        self.wait(lambda: self.css(selector), selector)
        return self.css(selector)[0]

    def click_text(self, text: str, selector="a, button"):
        def find():
            for el in self.css(selector):
                if el.is_displayed() and el.text.strip() == text:
                    return el
            return None
        el = self.wait(find, f"a clickable {text!r}")
        el.click()

    def path(self) -> str:
        return self.driver.execute_script("return location.pathname + location.search")

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="session")
def browser_session(tmp_path_factory):
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.fail(f"chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER}) missing: "
                    "`make collector-browser-test` installs Debian's chromium and chromium-driver")
    downloads = tmp_path_factory.mktemp("downloads")
    driver = new_driver(tmp_path_factory.mktemp("chromium-profile"), downloads)
    yield driver, downloads
    driver.quit()


@pytest.fixture
def page(browser_session):
    driver, downloads = browser_session
    p = Page(driver, downloads)
    driver.get_log("browser")  # drop what earlier tests left
    yield p
    unexpected = [m for m in p.console_errors() if not any(x in m for x in p.expected_console)]
    assert not unexpected, f"errors in the browser console: {unexpected}"


def http_get(url: str, headers=None):
    """(status, headers (case-insensitive), body) of a plain GET, for what the browser does not show."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def json_body(body: bytes):
    return json.loads(body)
