"""Reading traces in the Jaeger query API's JSON (`/api/traces/{id}`: spans with references, tags and a
processID into the trace's processes)."""
from __future__ import annotations


def parent_of(span: dict) -> str | None:
    """The span id of the span's CHILD_OF reference, None for a root."""
    for ref in span.get("references") or []:
        if ref.get("refType") == "CHILD_OF":
            return ref.get("spanID")
    return None


def tags(span: dict) -> dict:
    """The span's tags as {key: value}."""
    return {t["key"]: t["value"] for t in span.get("tags") or []}


def tag(span: dict, key: str):
    return tags(span).get(key)


def service_of(trace: dict, span: dict) -> str:
    return trace["processes"][span["processID"]]["serviceName"]


def span_tree(trace: dict) -> dict:
    """Maps span id -> parent span id (None for roots), checking every parent is in the trace."""
    ids = {s["spanID"] for s in trace["spans"]}
    parents = {}
    for s in trace["spans"]:
        parents[s["spanID"]] = parent = parent_of(s)
        if parent is not None:
            assert parent in ids, f"parent of {s['operationName']} missing from the trace"
    return parents
