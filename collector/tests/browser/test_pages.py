"""The service map, the service page, navigation between pages, and an empty collector."""


def test_service_map_shows_calls_with_rates_and_errors_and_opens_a_service(page, filled):
    page.open(filled.base, "/dependencies")
    page.wait_text("Calls between services")
    text = page.main_text()
    assert "services," in text and "edges" in text
    edges = {}
    for row in page.css("table.edges-table tbody tr"):
        cells = [c.text for c in row.find_elements("css selector", "td")]
        edges[(cells[0], cells[1])] = cells
    # Every checkout trace makes the gateway call checkout once; the failed one's payment failed twice.
    assert ("api-gateway", "checkout") in edges, edges
    calls = int(edges[("checkout", "payment")][2])
    assert calls == 15, "14 checkouts, one of them retried"
    assert edges[("checkout", "payment")][4] == "2", "both calls of the failed checkout failed"
    assert edges[("api-gateway", "checkout")][4] in ("1", "2")
    nodes = page.css(".service-map a.node")
    assert len(nodes) >= 8
    labels = [n.text for n in nodes]
    assert "payment" in labels
    next(n for n in nodes if n.text == "payment").click()
    page.wait(lambda: page.path() == "/service/payment", "the service page")
    page.wait_text("Called by")


def test_the_map_window_is_in_the_url(page, filled):
    page.open(filled.base, "/dependencies?lookback=24h")
    page.wait_text("Calls between services")
    assert page.one("select[aria-label='Time window']").get_attribute("value") == "24h"


def test_service_page_shows_red_metrics_per_operation_and_example_traces(page, filled):
    page.open(filled.base, "/service/payment")
    page.wait_text("Called by")
    text = page.main_text()
    for caption in ("Requests", "Errors", "Latency", "p50", "p95", "p99"):
        assert caption in text, caption
    ops = [r.text for r in page.css("table.ops tbody tr")]
    assert any(r.startswith("POST /charge") for r in ops), ops
    boxes = {b.find_element("css selector", "h3").text.split(" ")[0]: b.text for b in page.css(".neighbours")}
    assert "checkout" in boxes["Called"], "called by checkout"
    assert "api-gateway: GET /checkout" in boxes["Slowest"], "example slow traces"
    assert "errors" in boxes["Failed"], "example failed traces"
    page.click_text("failed", "a")
    page.wait(lambda: page.path().startswith("/search"), "a search")
    page.wait_text("trace")
    assert "error" in page.one("input[name=tags]").get_attribute("value")
    assert page.one("select[name=service]").get_attribute("value") == "payment"


def test_navigation_between_pages_keeps_history(page, filled):
    page.open(filled.base, "/")
    page.wait_text("traces")
    page.click_text("Service map", "a")
    page.wait(lambda: page.path().startswith("/dependencies"), "the map")
    page.wait_text("Calls between services")
    jump = page.one("#jump input")
    jump.send_keys(filled.ids["ok"] + "\n")
    page.wait(lambda: page.path() == f"/trace/{filled.ids['ok']}", "the trace")
    page.wait(lambda: page.css(".wf-row"), "its waterfall")
    page.driver.back()
    page.wait(lambda: page.path().startswith("/dependencies"), "back to the map")
    page.wait_text("Calls between services")


def test_an_empty_collector_explains_itself(page, empty):
    page.open(empty.base, "/search")
    page.wait_text("No traces yet")
    page.open(empty.base, "/dependencies")
    page.wait_text("No calls between services in this window")
    page.expected_console.append("404")
    page.open(empty.base, "/trace/abc123")
    page.wait_text("Trace not found")
    page.open(empty.base, "/no/such/page")
    page.wait_text("No such page")
    page.click_text("the search", "a")
    page.wait_text("No traces yet")


def test_the_map_layout_stays_readable_at_50_services(page, empty):
    """The layout module, run in the page on a 50-service mesh with a cycle: no two boxes overlap,
    callers sit left of what they call (but for the edge that closes the cycle)."""
    page.open(empty.base, "/dependencies")
    page.wait_text("No calls")
    result = page.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const base = document.querySelector('script[type=module]').src.replace(/app\\.js$/, '');
        import(base + 'model/layout.js').then(({ layeredLayout, LAYOUT }) => {
          const edges = [];
          for (let i = 1; i < 50; i++) edges.push({ parent: `svc-${Math.floor((i - 1) / 3)}`, child: `svc-${i}` });
          for (let i = 5; i < 50; i += 7) edges.push({ parent: `svc-${i}`, child: `svc-${(i * 3) % 50}` });
          edges.push({ parent: 'svc-40', child: 'svc-0' });  // a cycle back to the root
          const { nodes, back, width, height } = layeredLayout(edges);
          done({ nodes: [...nodes.values()], back: back.size, width, height, edges,
                 w: LAYOUT.nodeWidth, h: LAYOUT.nodeHeight });
        });
    """)
    nodes = {n["name"]: n for n in result["nodes"]}
    assert len(nodes) == 50
    boxes = [(n["x"], n["y"]) for n in nodes.values()]
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1:]:
            assert abs(x1 - x2) >= result["w"] or abs(y1 - y2) >= result["h"], "boxes overlap"
    forward = [e for e in result["edges"] if nodes[e["parent"]]["layer"] < nodes[e["child"]]["layer"]]
    assert len(forward) >= len(result["edges"]) - result["back"], "callers left of callees"
    assert result["back"] >= 1, "the cycle was broken"
    assert result["height"] < 1400, "columns stay a screen or two tall"
