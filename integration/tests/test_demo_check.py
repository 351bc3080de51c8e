"""The demo's trace checker accepts the shop's complete trace and names what
is wrong with a broken one, so `DEMO_SECONDS=N make demo` can fail."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "integration"))
sys.path.insert(0, str(ROOT / "integration" / "shop"))

import demo  # noqa: E402
from topology import SERVICES, callees, expected_span_count  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def shop_trace(caller_span: str = "") -> dict:
    """A complete trace of one entry request, as the query API returns it."""
    spans, procs, n = [], {}, [0]

    def span(service, kind, parent):
        n[0] += 1
        sid = f"{n[0]:016x}"
        procs[f"p-{service}"] = {"serviceName": service, "tags": []}
        spans.append({"traceID": TRACE_ID, "spanID": sid, "operationName": "GET", "processID": f"p-{service}",
                      "references": [{"refType": "CHILD_OF", "traceID": TRACE_ID, "spanID": parent}] if parent else [],
                      "startTime": 1000 + n[0], "duration": 100 - n[0],
                      "tags": [{"key": "span.kind", "type": "string", "value": kind}]})
        return sid

    def visit(service, parent):
        server = span(service, "server", parent)
        for callee in callees(service):
            visit(callee, span(service, "client", server))

    visit("frontend", caller_span)
    return {"traceID": TRACE_ID, "spans": spans, "processes": procs, "warnings": None}


def test_a_complete_trace_passes():
    trace = shop_trace()
    assert len(trace["spans"]) == expected_span_count() == 1 + 2 * (len(SERVICES) - 1)
    assert demo.check_trace(trace, TRACE_ID, "") == []
    assert demo.check_trace(shop_trace("00f067aa0ba902b7"), TRACE_ID, "00f067aa0ba902b7") == []
    assert "catalog SERVER GET" in demo.draw(trace)


def test_a_missing_trace_fails():
    assert demo.check_trace(None, TRACE_ID, "") == ["not in the collector"]


def test_a_hop_whose_format_was_lost_fails():
    trace = shop_trace()
    # The cart (Jaeger only) CLIENT span started a new trace branch: no parent.
    procs = trace["processes"]
    for s in trace["spans"]:
        if procs[s["processID"]]["serviceName"] == "cart" and s["tags"][0]["value"] == "client":
            s["references"] = []
    problems = demo.check_trace(trace, TRACE_ID, "")
    assert any("Jaeger-only hop broke" in p for p in problems), problems


def test_a_missing_span_and_a_foreign_trace_id_fail():
    trace = shop_trace()
    broken = copy.deepcopy(trace)
    broken["spans"] = [s for s in broken["spans"]
                       if broken["processes"][s["processID"]]["serviceName"] != "payment"]
    problems = demo.check_trace(broken, TRACE_ID, "")
    assert any("no SERVER span for payment" in p for p in problems), problems
    other = copy.deepcopy(trace)
    other["spans"][3]["traceID"] = "0" * 31 + "1"
    assert any("has trace id" in p for p in demo.check_trace(other, TRACE_ID, ""))


def test_a_root_with_the_wrong_parent_fails():
    problems = demo.check_trace(shop_trace(), TRACE_ID, "00f067aa0ba902b7")
    assert any("frontend SERVER parent" in p for p in problems), problems
