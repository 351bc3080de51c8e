"""Custom tags of each kind, redaction of secrets, and attribute limits, on
spans exported from a real Envoy."""
from meshtrace_testkit.sidecar import attrs, spans_of


def trace_of(sc):
    return sc.app.header("traceparent").split("-")[1]


def test_custom_tags_of_each_kind(sidecar):
    sc = sidecar({
        "customTags": {
            "team": {"literal": {"value": "payments"}},
            "cluster": {"environment": {"name": "CLUSTER_NAME"}},
            "region": {"environment": {"name": "REGION", "defaultValue": "unknown"}},
            "tenant": {"header": {"name": "x-tenant"}},
            "plan": {"header": {"name": "x-plan", "defaultValue": "free"}},
            "mesh": {"property": {"path": "node.metadata.MESH_ID"}},
            "envoy.route": {"property": {"path": "xds.route_name"}},
            "missing": {"property": {"path": "node.metadata.NOPE", "defaultValue": "n/a"}},
        },
    }, env={"CLUSTER_NAME": "east-1"}, node={"id": "n", "metadata": {"MESH_ID": "mesh-a"}})
    sc.get("/", headers={"x-tenant": "acme"})
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    a = attrs(span)
    assert a["team"] == "payments"
    assert a["cluster"] == "east-1", "from the VM environment"
    assert a["region"] == "unknown", "environment default"
    assert a["tenant"] == "acme" and a["plan"] == "free", "header and its default"
    assert a["mesh"] == "mesh-a", "node metadata"
    assert a["envoy.route"] == "inbound-route", "any Envoy attribute"
    assert a["missing"] == "n/a"


def test_response_header_tags_redacted_and_limited(sidecar):
    sc = sidecar({"customTags": {
        "cache": {"responseHeader": {"name": "X-Cache"}},
        "served.by": {"responseHeader": {"name": "x-served-by", "defaultValue": "unknown"}},
        "session": {"responseHeader": {"name": "set-cookie"}},
        "big": {"responseHeader": {"name": "x-big"}},
    }, "limits": {"maxAttributeLength": 32}})
    sc.get("/call/respond/x-cache/HIT")
    server, client = spans_of(sc.sink, trace_of(sc), 2)
    assert attrs(client)["cache"] == "HIT", "the upstream's answer, on the CLIENT span"
    assert "cache" not in attrs(server), "the app's own answer has no such header"
    sc.get("/respond/set-cookie/sid%3Ds3cret")
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    a = attrs(span)
    assert a["session"] == "***", "a secret's name: redacted like request headers"
    assert a["served.by"] == "unknown", "the default"
    assert not [k for k, v in a.items() if "s3cret" in str(v) and k != "url.path"], "only the path says it"
    sc.get("/respond/x-big/" + "b" * 100)
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    assert attrs(span)["big"] == "b" * 32 and attrs(span)["meshtrace.truncated_attributes"] >= 1


def test_secrets_never_leave_the_sidecar(sidecar):
    sc = sidecar({"customTags": {"auth": {"header": {"name": "authorization"}},
                                 "session": {"header": {"name": "cookie"}},
                                 "tenant": {"header": {"name": "x-tenant"}}}})
    sc.get("/call/login?user=ann&password=hunter2&api_key=k1",
           headers={"authorization": "Bearer abc", "cookie": "sid=1", "x-tenant": "acme"})
    server, client = spans_of(sc.sink, trace_of(sc), 2)
    s, c = attrs(server), attrs(client)
    assert s["auth"] == "***" and s["session"] == "***" and s["tenant"] == "acme"
    assert s["url.query"] == "user=ann&password=***&api_key=***"
    assert c["url.full"].endswith("/login?user=ann&password=***&api_key=***")
    for span in (server, client):
        assert "hunter2" not in str(span) and "Bearer abc" not in str(span)


def test_redaction_is_configurable(sidecar):
    sc = sidecar({"redaction": {"keys": ["^ssn$"], "replacement": "[redacted]"}})
    sc.get("/?ssn=123-45&password=shown")
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    assert attrs(span)["url.query"] == "ssn=[redacted]&password=shown"


def test_limits_bound_every_span_and_count_what_was_cut(sidecar):
    tags = {f"t{i:02}": {"literal": {"value": "v"}} for i in range(20)}
    tags["long"] = {"header": {"name": "x-long"}}
    sc = sidecar({"customTags": tags,
                  "limits": {"maxAttributes": 24, "maxAttributeLength": 32, "maxPathLength": 12}})
    sc.get("/" + "p" * 100, headers={"x-long": "é" * 100})
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    a = attrs(span)
    assert a["url.path"] == "/" + "p" * 11
    assert span.dropped_attributes_count > 0
    assert len(span.attributes) == 24 + 1, "the limit, plus the truncation count"
    assert a["meshtrace.truncated_attributes"] >= 1
    assert all(len(str(v).encode()) <= 32 for k, v in a.items() if k != "url.path")
