"""The sampling engine in a real Envoy: rules, the ratio algorithm, the
Envoy-wide cap, forcing, keepErrors and remote strategies."""
import json
import random
import re
import threading
import time

from harness import Client
from meshtrace_testkit import request, wait_until
from meshtrace_testkit.sidecar import JsonServer, attrs, hexid, spans_of


def sampled_at_app(sc) -> bool:
    return int(sc.app.header("traceparent")[-2:], 16) & 1 == 1


def trace_of(sc):
    return sc.app.header("traceparent").split("-")[1]


RULES = [
    {"match": {"pathExact": "/exact"}, "randomSamplingPercentage": 100, "route": "/exact"},
    {"match": {"pathRegex": "/users/[0-9]+"}, "randomSamplingPercentage": 100, "route": "/users/{id}"},
    {"match": {"method": "POST", "pathPrefix": "/api"}, "randomSamplingPercentage": 100, "route": "/api/post"},
    {"match": {"host": "admin.local"}, "randomSamplingPercentage": 100, "route": "/admin"},
    {"match": {"headers": {"x-tenant": "acme"}}, "randomSamplingPercentage": 100, "route": "/tenant"},
    {"match": {"headers": {"x-canary": {"regex": "v2-.*"}}}, "randomSamplingPercentage": 100, "route": "/canary"},
    {"match": {"pathPrefix": "/never"}, "randomSamplingPercentage": 0},
    {"match": {"routeName": "inbound-route"}, "randomSamplingPercentage": 100, "route": "/by-route-name"},
]


def test_rule_precedence_for_every_match_kind(sidecar):
    sc = sidecar({"sampling": {"randomSamplingPercentage": 0, "rules": RULES}})
    cases = [
        ("GET", "/exact", {}, "/exact"),
        ("GET", "/exact", {"x-tenant": "acme"}, "/exact"),  # first match wins
        ("GET", "/users/42", {}, "/users/{id}"),
        ("GET", "/users/me", {}, "/by-route-name"),  # regex must match the whole path
        ("POST", "/api/orders", {}, "/api/post"),
        ("GET", "/api/orders", {}, "/by-route-name"),  # method differs
        ("GET", "/x", {"host": "admin.local"}, "/admin"),
        ("GET", "/x", {"x-tenant": "acme"}, "/tenant"),
        ("GET", "/x", {"x-canary": "v2-beta"}, "/canary"),
        ("GET", "/x", {"x-canary": "v1"}, "/by-route-name"),
        ("GET", "/never/x", {"x-canary": "v1"}, None),  # 0% rule: not sampled
    ]
    for method, path, headers, route in cases:
        status, _, _ = request(sc.inbound_port, path, headers=headers, method=method)
        assert status == 200
        if route is None:
            assert not sampled_at_app(sc), path
            continue
        (span,) = spans_of(sc.sink, trace_of(sc), 1)
        assert attrs(span)["http.route"] == route, (method, path, headers)
        assert span.name == f"{method} {route}"


def expected(trace_hex: str, pct: float) -> bool:
    """The README's algorithm: R = low 56 bits, T = round((1 - p) * 2^56)."""
    r = int(trace_hex[-14:], 16)
    t = round((1 - pct / 100) * 2**56)
    return r >= t


def test_ratio_is_the_documented_function_of_the_trace_id_on_every_sidecar(sidecar):
    pct, n = 30, 2000
    config = {"propagators": ["b3", "tracecontext"], "sampling": {"randomSamplingPercentage": pct}}
    a, b = sidecar(config), sidecar(config)
    rng = random.Random(7)
    traces = [f"{rng.getrandbits(128):032x}" for _ in range(n)]
    decisions = []
    for sc in (a, b):
        client = Client(sc.inbound_port)
        for t in traces:
            # No decision from the caller (B3 "defer"): the ratio decides.
            assert client.get("/", {"b3": f"{t}-00f067aa0ba902b7"}) == 200
        client.close()
        decisions.append([int(r["headers"]["traceparent"][0][-2:], 16) & 1 == 1 for r in sc.app.requests[-n:]])
    assert decisions[0] == decisions[1], "both sidecars decide the same for the same trace"
    assert decisions[0] == [expected(t, pct) for t in traces], "exactly the documented algorithm"
    rate = sum(decisions[0]) / n
    sd = (pct / 100 * (1 - pct / 100) / n) ** 0.5
    assert abs(rate - pct / 100) < 5 * sd, rate


def test_rate_cap_holds_across_two_workers(sidecar):
    cap = 10
    sc = sidecar({"sampling": {"randomSamplingPercentage": 100, "maxTracesPerSecond": cap}},
                 concurrency=2, exact_balance=True)
    stop = time.monotonic() + 2.0
    start = time.monotonic()

    def load():
        while time.monotonic() < stop:
            request(sc.inbound_port, "/")

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    per_worker = re.compile(rf"listener\.127\.0\.0\.1_{sc.inbound_port}\.worker_\d+\.downstream_cx_total")
    workers = [v for k, v in sc.envoy.stats_all().items() if per_worker.fullmatch(k)]
    sampled = sc.envoy.settled("spans_sampled")
    started = sc.envoy.settled("spans_started")
    assert len([w for w in workers if w > 0]) == 2, f"both workers served requests: {workers}"
    assert started > 3 * cap * elapsed, "the load was well above the cap"
    # One second of burst plus the rate over the run, for the whole Envoy.
    assert cap <= sampled <= cap * (1 + elapsed) + 1, (sampled, elapsed)
    assert sc.envoy.settled("traces_rate_limited") == started - sampled


def test_forcing_samples_whatever_the_rules_say(sidecar):
    sc = sidecar({"propagators": ["tracecontext", "b3"],
                  "sampling": {"randomSamplingPercentage": 0, "forceHeaders": ["x-debug-me"]}}, internal=True)
    forcing = [
        {"x-envoy-force-trace": "true"},
        {"jaeger-debug-id": "debug-1"},
        {"x-debug-me": "1"},
        {"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"},
        {"traceparent": "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-00", "x-debug-me": "1"},
        {"x-client-trace-id": "client-1"},
    ]
    for headers in forcing:
        sc.get("/", headers=headers)
        assert sampled_at_app(sc), headers
        spans_of(sc.sink, trace_of(sc), 1)
    sc.get("/")
    assert not sampled_at_app(sc), "nothing forces a plain request"


def test_client_trace_id_forcing_follows_client_sampling_percentage(sidecar):
    sc = sidecar({"sampling": {"randomSamplingPercentage": 0, "clientSamplingPercentage": 50}})
    forced = 0
    for _ in range(40):
        sc.get("/", headers={"x-client-trace-id": "client-1"})
        tp = sc.app.header("traceparent")
        # The documented ratio rule on the trace id, at 50%: the 56 low bits
        # at or above 2^55.
        want = int(tp.split("-")[1][-14:], 16) >= 1 << 55
        assert sampled_at_app(sc) == want, tp
        forced += want
    assert 0 < forced < 40


def test_keep_errors_exports_failed_and_slow_unsampled_spans(sidecar):
    sc = sidecar({"sampling": {"randomSamplingPercentage": 0,
                               "keepErrors": {"statusCodes": "5xx", "slowerThanMs": 200}}})
    sc.get("/status/503")
    assert not sampled_at_app(sc), "the trace stays unsampled"
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    assert attrs(span)["meshtrace.sampling.kept"] == "error" and span.flags & 1 == 0
    sc.get("/slow/300")
    (span,) = spans_of(sc.sink, trace_of(sc), 1)
    assert attrs(span)["meshtrace.sampling.kept"] == "slow"
    plain = []
    for _ in range(5):
        sc.get("/")
        plain.append(trace_of(sc))
    sc.get("/status/500")
    spans_of(sc.sink, trace_of(sc), 1)  # exported after the plain ones
    assert not [s for _, s in sc.sink.spans() if hexid(s.trace_id) in plain]
    assert sc.envoy.settled("spans_kept") == 3


def strategies(default, per_op):
    return json.dumps({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": default},
        "operationSampling": {
            "defaultSamplingProbability": default,
            "perOperationStrategies": [
                {"operation": op, "probabilisticSampling": {"samplingRate": p}} for op, p in per_op.items()],
        },
    }).encode()


def test_remote_strategies_applied_refreshed_and_kept_on_failure(sidecar):
    remote = JsonServer(strategies(0.0, {"GET /hot": 1.0}))
    try:
        sc = sidecar({
            "serviceName": "shop",
            "sampling": {
                # Locally /hot is never sampled and /cold always: remote strategies replace that.
                "randomSamplingPercentage": 100,
                "rules": [
                    {"match": {"pathPrefix": "/hot"}, "randomSamplingPercentage": 0, "route": "/hot"},
                    {"match": {"pathPrefix": "/cold"}, "randomSamplingPercentage": 100, "route": "/cold"},
                ],
                "remote": {"cluster": "sampling", "path": "/api/sampling", "refreshIntervalMs": 1000},
            },
        }, clusters={"sampling": remote.port})

        def decisions():
            sc.get("/hot/1")
            hot = sampled_at_app(sc)
            sc.get("/cold/1")
            return hot, sampled_at_app(sc)

        wait_until(lambda: sc.envoy.stat("remote_sampling_updates") >= 1, what="strategies fetched")
        assert remote.last_path == "/api/sampling?service=shop"
        # Each plugin (inbound, outbound) polls on its own: wait for the inbound one.
        wait_until(lambda: decisions() == (True, False), what="remote per-operation and default rates")

        remote.body = strategies(0.0, {"GET /cold": 1.0})
        wait_until(lambda: decisions() == (False, True), what="refreshed strategies applied")

        failures = sc.envoy.stat("remote_sampling_failures")
        remote.status = 500
        wait_until(lambda: sc.envoy.stat("remote_sampling_failures") > failures, what="a failed refresh counted")
        remote.status, remote.body = 200, b"{not json"
        wait_until(lambda: sc.envoy.stat("remote_sampling_failures") > failures + 1, what="a malformed answer counted")
        assert decisions() == (False, True), "the last good strategies are kept"
    finally:
        remote.close()


def test_remote_sampling_named_by_istio_service_polls_with_an_unencoded_name(sidecar):
    remote = JsonServer(strategies(1.0, {}))
    host = "meshtrace-collector.tracing.svc.cluster.local"
    try:
        sc = sidecar({"serviceName": "my-svc.v2_x~y",
                      "sampling": {"remote": {"service": f"{host}:16686", "refreshIntervalMs": 1000}}},
                     clusters={f"outbound|16686||{host}": remote.port})
        wait_until(lambda: sc.envoy.stat("remote_sampling_updates") >= 1, what="strategies fetched")
        assert remote.last_path == "/api/sampling?service=my-svc.v2_x~y", "RFC 3986 unreserved: not encoded"
        assert remote.last_headers["host"] == f"{host}:16686"
    finally:
        remote.close()
