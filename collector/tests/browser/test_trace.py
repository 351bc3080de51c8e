"""The trace page: header, waterfall, critical path, span details, find, statistics, downloads,
diagnostics, and its deep links."""
import json
import urllib.parse

from selenium.webdriver.common.keys import Keys


def rows(page):
    """The waterfall's rows as "service: operation"."""
    return [f"{r.find_element('css selector', '.svc').text}: {r.find_element('css selector', '.op').text}"
            for r in page.css(".wf-row")]


def span_id(filled, role, operation, service=None):
    """The id of the span named `operation` in a known trace, read from the collector's API."""
    _, body = filled.collector.get(f"/api/traces/{filled.ids[role]}")
    trace = body["data"][0]
    for s in trace["spans"]:
        if s["operationName"] == operation and (
                service is None or trace["processes"][s["processID"]]["serviceName"] == service):
            return s["spanID"]
    raise AssertionError(f"no span {operation}")


def fact(page, name):
    for el in page.css(".trace-facts .fact"):
        dt, dd = el.text.split("\n", 1)
        if dt.strip().lower() == name.lower():
            return dd.strip()
    raise AssertionError(f"no fact {name}")


def open_trace(page, filled, role, query=""):
    page.open(filled.base, f"/trace/{filled.ids[role]}{query}")
    page.wait(lambda: page.css(".wf-row"), "the waterfall")


def test_header_and_waterfall_show_the_whole_trace(page, filled):
    open_trace(page, filled, "ok")
    assert page.one(".trace-title h1").text == "api-gateway: GET /checkout"
    assert filled.ids["ok"] in page.one(".trace-title").text
    assert (fact(page, "Spans"), fact(page, "Services"), fact(page, "Depth"), fact(page, "Errors")) == ("10", "4", "6", "0")
    assert fact(page, "Duration") == "85ms"
    shown = rows(page)
    assert len(shown) == 10
    assert shown[0] == "api-gateway: GET /checkout"
    assert "payment: POST /charge" in shown
    assert page.css(".wf-row")[0].text.endswith("85ms"), "the duration next to the bar"
    assert "Critical path (10 spans, 85ms)" in page.main_text()


def test_subtrees_collapse_and_expand(page, filled):
    open_trace(page, filled, "ok")
    checkout_row = page.css(".wf-row")[rows(page).index("checkout: POST /checkout")]
    checkout_row.find_element("css selector", ".toggle").click()
    page.wait(lambda: len(rows(page)) == 3, "the checkout subtree to collapse")
    assert "+7" in page.main_text(), "a collapsed span says how many spans it hides"
    page.click_text("Expand all", "button")
    page.wait(lambda: len(rows(page)) == 10, "all rows again")
    page.click_text("Collapse all", "button")
    page.wait(lambda: len(rows(page)) == 1, "only the root")


def test_a_click_on_a_span_opens_its_details_and_the_url_keeps_it(page, filled):
    open_trace(page, filled, "ok")
    page.css(".wf-row")[rows(page).index("payment: POST /charge")].click()
    detail = page.one(".span-detail")
    page.wait(lambda: "Attributes (6)" in detail.text, "the attributes")
    text = detail.text
    assert "POST /charge" in text and "SERVER" in text
    assert "Context arrived as\nb3multi" in text
    assert "card authorized" in text, "events"
    assert "k8s.pod.name" in text, "resource"
    assert "on the critical path" in text
    filter_box = detail.find_element("css selector", "input.attr-filter")
    filter_box.send_keys("status")
    page.wait(lambda: "url.path" not in page.one(".span-detail .kv").text, "the attribute filter")
    assert "http.response.status_code" in page.one(".span-detail .kv").text
    pay_id = span_id(filled, "ok", "POST /charge")
    assert f"span={pay_id}" in page.path()
    page.driver.refresh()
    page.wait(lambda: page.css(".span-detail"), "the selected span after a reload")
    assert "POST /charge" in page.one(".span-detail").text


def test_find_in_trace_counts_and_steps_through_matches(page, filled):
    open_trace(page, filled, "ok")
    find = page.one("input[aria-label='Find in trace']")
    find.send_keys("payment")
    page.wait(lambda: page.one(".find-count").text == "3 matches", "3 matches")
    assert len(page.css(".wf-row.match")) == 3
    find.send_keys(Keys.ENTER)
    page.wait(lambda: page.one(".find-count").text == "1 of 3", "stepping")
    assert "uiFind=payment" in page.path()
    page.open(filled.base, f"/trace/{filled.ids['ok']}?uiFind=redis")
    page.wait(lambda: page.css(".find-count") and page.one(".find-count").text == "1 match", "find from the URL")


def test_statistics_say_where_the_time_went(page, filled):
    open_trace(page, filled, "ok", "?view=stats")
    page.wait_text("By service")
    text = page.main_text()
    assert "Most of the time is spent in" in text
    table = page.css("table.stats")[0]
    body_rows = table.find_elements("css selector", "tbody tr")
    assert len(body_rows) == 4, "one row per service"
    # Sorted by self time: the first service's self time is the largest.
    assert page.one("table.stats th[aria-sort=descending]").text.startswith("Self time")
    page.click_text("Timeline", "button")
    page.wait(lambda: "view=stats" not in page.path(), "the timeline in the URL")
    assert rows(page)


def test_diagnostics_show_which_hop_broke_propagation(page, filled):
    open_trace(page, filled, "broken")
    page.wait(lambda: "Checking propagation" not in page.one(".diag-box").text, "the diagnostics")
    # Problems are open; the informational groups open with a click.
    for summary in page.css(".diagnostics-panel details:not([open]) summary"):
        summary.click()
    panel = page.one(".diagnostics-panel").text
    assert "Propagation broke: 1 orphan span, 2 roots, clock skew on 1 span. 1 call leaves the traced mesh." in panel
    assert "1 orphan span" in panel and "notifications: POST /notify" in panel
    assert "2 roots" in panel and "audit: POST /audit" in panel
    assert "1 untraced callee" in panel and "orders: GET" in panel
    assert "clock skew" in panel and "starts 3ms before its parent" in panel
    assert "x-request-id" in panel and "jaeger" in panel, "the format each hop's context arrived in"
    # The waterfall marks them too, and a click on a problem selects its span.
    text = page.main_text()
    assert "orphan" in text and "skew" in text
    assert "spans, 90ms)" in text, "the critical path spans the trace; the skewed child is clipped to its parent"
    page.click_text("notifications: POST /notify", "button")
    page.wait(lambda: page.css(".span-detail"), "the orphan's details")
    assert "never arrived" in page.one(".span-detail").text


def test_a_healthy_trace_says_so(page, filled):
    open_trace(page, filled, "ok")
    page.wait(lambda: "Propagation intact" in page.one(".diag-box").text, "the all-clear")
    assert not page.css(".diagnostics-panel details[open]"), "nothing to look at unless asked"
    for summary in page.css(".diagnostics-panel summary"):
        summary.click()
    panel = page.one(".diag-box").text
    assert "2 calls leave the traced mesh" in panel, "the redis and postgres calls"
    assert "cart: redis GET" in panel and "payment: SELECT payments" in panel
    assert "tracecontext ×1" in panel and "b3 ×1" in panel and "b3multi ×1" in panel


def test_links_open_the_linked_trace(page, filled):
    open_trace(page, filled, "linked")
    page.css(".wf-row")[0].click()
    page.wait(lambda: "Links (1)" in page.one(".span-detail").text, "the link")
    page.click_text(f"trace {filled.ids['ok']}", "a")
    page.wait(lambda: page.path() == f"/trace/{filled.ids['ok']}", "the linked trace")
    page.wait(lambda: len(rows(page)) == 10, "its waterfall")


def test_downloads_as_otlp_and_jaeger_json(page, filled):
    open_trace(page, filled, "ok")
    for label, suffix in (("Download Jaeger JSON", "jaeger.json"), ("Download OTLP JSON", "otlp.json")):
        page.click_text(label, "button")
        path = page.downloads / f"trace-{filled.ids['ok']}.{suffix}"
        page.wait(path.exists, f"the download {path.name}", timeout=10)
        doc = json.loads(path.read_text())
        if suffix == "jaeger.json":
            assert len(doc["data"][0]["spans"]) == 10
        else:
            assert sum(len(s["spans"]) for rs in doc["resourceSpans"] for s in rs["scopeSpans"]) == 10


def test_an_unknown_trace_says_so(page, filled):
    page.expected_console.append("404")
    page.open(filled.base, "/trace/0123456789abcdef")
    page.wait_text("Trace not found")
    page.open(filled.base, "/trace/not-a-trace-id")
    page.wait_text("is not a trace id")


def test_a_large_trace_renders_only_what_is_on_screen(page, filled):
    open_trace(page, filled, "large")
    assert fact(page, "Spans") == "2,000"
    on_screen = len(page.css(".wf-row"))
    assert 10 < on_screen < 120, f"{on_screen} rows in the DOM for 2,000 spans"
    scroller = page.one(".wf-scroll")
    page.driver.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", scroller)
    page.wait(lambda: any(": op-" in r for r in rows(page)), "rows at the bottom")
    assert len(page.css(".wf-row")) < 120
    # The minimap draws the whole trace.
    assert page.one(".minimap canvas").size["width"] > 100


def test_compare_shows_what_differs_on_one_tree(page, filled):
    a, b = filled.ids["ok"], filled.ids["error"]
    page.open(filled.base, f"/trace/{a}...{b}")
    page.wait_text("Compare traces")
    text = page.main_text()
    assert "count differs" in text, "payment was called twice in B"
    table = page.one("table.compare").text
    assert "payment POST /charge" in table
    changed = [r.text for r in page.css("table.compare tr.chg-count")]
    assert any("POST /charge" in r for r in changed), changed
    assert urllib.parse.unquote(page.path()) == f"/trace/{a}...{b}"


def test_a_drag_across_the_minimap_zooms_the_time_axis(page, filled):
    from selenium.webdriver.common.action_chains import ActionChains
    open_trace(page, filled, "ok")
    ticks = lambda: [t.text for t in page.css(".wf-axis .tick")]  # noqa: E731
    assert ticks()[0] == "0ms" and ticks()[-1] == "85ms"
    minimap = page.one(".minimap")
    width = minimap.size["width"]
    ActionChains(page.driver).move_to_element_with_offset(minimap, -width // 2 + width // 4, 0) \
        .click_and_hold().move_by_offset(width // 4, 0).release().perform()
    page.wait(lambda: ticks()[0] != "0ms", "the zoomed axis")
    assert ticks()[-1] != "85ms"
    reset = page.driver.find_element("xpath", "//button[text()='Reset zoom']")
    assert reset.is_displayed()
    reset.click()
    page.wait(lambda: ticks()[0] == "0ms" and ticks()[-1] == "85ms", "the whole trace again")
