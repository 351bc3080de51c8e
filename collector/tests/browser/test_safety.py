"""Hostile span data is shown as text and runs nothing; the page is served with a strict CSP; the query
token is asked for once and sent as a bearer header."""
from selenium.common.exceptions import NoAlertPresentException

from conftest import http_get

NAME = "<img src=x onerror=alert(1)>"


def no_script_ran(page):
    try:
        alert = page.driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        raise AssertionError(f"an alert ran: {text}")
    except NoAlertPresentException:
        pass
    assert page.driver.execute_script("return window.__pwned === undefined")
    assert not page.css("img[src='x'], img[src='y'], iframe, svg[onload], main script")


def test_a_hostile_span_name_shows_as_text_everywhere_and_runs_nothing(page, filled):
    tid = filled.ids["hostile"]
    page.open(filled.base, f"/search?service=api-gateway&operation={NAME}")
    page.wait_text("1 trace")
    assert page.one(".result-name").text == f"api-gateway: {NAME}"
    no_script_ran(page)

    page.open(filled.base, f"/trace/{tid}")
    page.wait(lambda: page.css(".wf-row"), "the waterfall")
    assert page.one(".trace-title h1").text == f"api-gateway: {NAME}"
    rows = [r.text for r in page.css(".wf-row")]
    assert rows[0].startswith(f"api-gateway\n{NAME}")
    assert rows[1].startswith("<svg/onload=alert(2)>\n<a href=javascript:alert(6)>click</a>")
    page.css(".wf-row")[0].click()
    detail = page.one(".span-detail").text
    for text in ("<script>window.__pwned=1</script>", "<b>key</b>", "\"><svg onload=alert(3)>",
                 "<iframe src=javascript:alert(4)>", "<img src=y onerror=alert(5)>"):
        assert text in detail, text
    page.click_text("Statistics", "button")
    page.wait_text("By service")
    assert "<svg/onload=alert(2)>" in page.main_text()
    no_script_ran(page)
    # No <a href="javascript:..."> made from span data.
    hrefs = [a.get_attribute("href") or "" for a in page.css("a")]
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]


def test_hostile_text_in_the_url_is_text_too(page, filled):
    page.expected_console.append("404")
    page.open(filled.base, "/trace/%3Cimg%20src=x%20onerror=alert(1)%3E")
    page.wait_text("is not a trace id")
    assert NAME in page.main_text()
    no_script_ran(page)


def test_the_page_and_its_assets_carry_a_strict_csp_and_cache_headers(filled):
    status, headers, body = http_get(filled.base + "/search?service=x")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["Cache-Control"] == "no-cache" and headers["X-Content-Type-Options"] == "nosniff"
    html = body.decode()
    assert "<script>" not in html and "onload=" not in html, "no inline script"
    asset = html.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/ui/") and asset.endswith("/app.js")
    status, headers, body = http_get(filled.base + asset, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Type"].startswith("text/javascript")
    assert "Content-Security-Policy" in headers
    etag = http_get(filled.base + "/")[1]["ETag"]
    assert http_get(filled.base + "/", {"If-None-Match": etag})[0] == 304
    assert http_get(filled.base + "/ui/0000deadbeef/app.js")[0] == 404, "another build's assets"


def test_the_query_token_is_asked_once_and_sent_as_a_bearer_header(page, protected):
    page.expected_console.append("401")
    status, _, _ = http_get(protected.base + "/api/services")
    assert status == 401
    assert http_get(protected.base + "/search")[0] == 200, "the page itself needs no token"
    page.open(protected.base, "/search")
    dialog = page.one("dialog.token-dialog")
    assert "needs a query token" in dialog.text
    dialog.find_element("css selector", "input").send_keys("wrong\n")
    page.wait(lambda: "not accepted" in page.one("dialog.token-dialog").text, "the wrong token refused")
    page.one("dialog.token-dialog input").send_keys("s3cret-viewer-token\n")
    page.wait_text("No traces yet")
    page.driver.refresh()
    page.wait_text("No traces yet")
    assert not page.css("dialog.token-dialog"), "asked once: the token is kept"
    page.click_text("Forget query token", "button")
    page.driver.refresh()
    page.one("dialog.token-dialog")
