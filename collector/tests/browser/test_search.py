"""The search page: pickers from the API, the URL as the state, results as a scatter plot and a list."""
import json
import time
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


def result_titles(page):
    return [el.text for el in page.css(".result .result-name")]


def test_search_lists_the_services_and_the_traces_of_one(page, filled):
    page.open(filled.base, "/search?service=api-gateway&limit=50")
    page.wait_text("traces")
    services = [o.text for o in Select(page.one("select[name=service]")).options]
    assert services == sorted(services)
    for s in ("api-gateway", "cart", "checkout", "payment", "orders", "notifications"):
        assert s in services, services
    operations = [o.text for o in Select(page.one("select[name=operation]")).options]
    assert "GET /checkout" in operations and "GET /orders" in operations
    # 14 checkout traces + broken + hostile start at the gateway.
    assert page.one(".result-count").text == "16 traces"
    titles = result_titles(page)
    assert titles.count("api-gateway: GET /checkout") == 14
    text = page.main_text()
    assert "4 errors" in text, "the failed checkout shows its error count"
    assert "payment (4)" in text, "services touched, with their span counts (the retried payment)"
    assert len(page.css(".scatter .dot")) == 16
    assert len(page.css(".scatter .dot.error")) >= 1, "errors are marked on the plot"


def test_the_form_writes_the_url_and_back_forward_and_reload_land_on_the_same_view(page, filled):
    page.open(filled.base, "/search?service=api-gateway")
    page.wait_text("16 traces")
    Select(page.one("select[name=operation]")).select_by_visible_text("GET /orders")
    page.one("input[name=minDuration]").send_keys("10ms")
    page.click_text("Find traces", "button")
    page.wait_text("1 trace")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.path()).query)
    assert query["service"] == ["api-gateway"] and query["operation"] == ["GET /orders"]
    assert query["minDuration"] == ["10ms"]
    assert result_titles(page) == ["api-gateway: GET /orders"]
    page.driver.back()
    page.wait_text("16 traces")
    assert page.one("select[name=operation]").get_attribute("value") == ""
    page.driver.forward()
    page.wait_text("1 trace")
    page.driver.refresh()
    page.wait_text("1 trace")
    assert page.one("input[name=minDuration]").get_attribute("value") == "10ms"


def test_tags_in_logfmt_and_in_jaeger_uis_json_find_the_same_traces(page, filled):
    page.open(filled.base, "/search?service=checkout")
    page.wait_text("traces")
    tags = page.one("input[name=tags]")
    tags.send_keys("user.id=u-1042 cart.items=3")
    page.click_text("Find traces", "button")
    page.wait(lambda: "tags=" in page.path(), "tags in the URL")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.path()).query)
    assert json.loads(query["tags"][0]) == {"user.id": "u-1042", "cart.items": "3"}
    page.wait_text("14 traces")
    # A link in Jaeger UI's form (JSON) lands on the same search, shown as logfmt in the form.
    page.open(filled.base, "/search?service=checkout&tags=" + urllib.parse.quote('{"user.id":"nobody"}'))
    page.wait_text("0 traces")
    assert "No traces match" in page.main_text()
    assert page.one("input[name=tags]").get_attribute("value") == "user.id=nobody"


def test_sorting_and_a_click_on_the_plot_opens_the_trace(page, filled):
    page.open(filled.base, "/search?service=api-gateway&operation=GET%20/checkout&sort=longest")
    page.wait_text("14 traces")
    durations = [el.text for el in page.css(".result-duration")]
    assert durations[0] != durations[-1]
    Select(page.one("select[aria-label=Sort]")).select_by_visible_text("Most spans")
    page.wait(lambda: "sort=spans" in page.path(), "sort in the URL")
    page.wait(lambda: page.css(".result .badge"), "the sorted list")
    first = page.css(".result .badge")[0].text
    assert first == "13 spans", "the retried checkout has the most spans"
    page.css(".scatter .dot.error")[0].click()
    page.wait(lambda: page.path().startswith("/trace/"), "the trace page")
    page.wait(lambda: page.css(".wf-row"), "the waterfall")


def test_search_filters_on_propagation_problems(page, filled):
    page.open(filled.base, "/search?service=api-gateway&diagnostics=orphans")
    page.wait_text("1 trace")
    assert result_titles(page) == ["api-gateway: GET /orders"]
    text = page.main_text()
    assert "1 orphan" in text and "3 roots" not in text
    assert "2 roots" in text and "1 untraced callee" in text and "clock skew" in text
    assert page.one("input[value=orphans]").is_selected()


def test_two_results_open_a_comparison(page, filled):
    page.open(filled.base, "/search?service=api-gateway&operation=GET%20/checkout&sort=spans")
    page.wait_text("14 traces")
    boxes = page.css(".result input[type=checkbox]")
    compare = page.driver.find_element(By.XPATH, "//button[text()='Compare 2 traces']")
    assert not compare.is_enabled()
    boxes[0].click()
    boxes[1].click()
    assert compare.is_enabled()
    compare.click()
    page.wait(lambda: "..." in page.path(), "the compare page")
    page.wait_text("Compare traces")


def test_a_custom_range_from_the_url(page, filled):
    now_us = int(time.time() * 1_000_000)
    page.open(filled.base, f"/search?service=api-gateway&lookback=custom&start={now_us - 3_600_000_000}&end={now_us}")
    page.wait_text("16 traces")
    assert page.one("select[name=lookback]").get_attribute("value") == "custom"
    assert page.one("input[name=start]").is_displayed(), "the range is shown for editing"
    page.open(filled.base, f"/search?service=api-gateway&lookback=custom&start={now_us - 7_200_000_000}"
                           f"&end={now_us - 3_600_000_000}")
    page.wait_text("0 traces")
