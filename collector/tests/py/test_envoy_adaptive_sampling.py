"""Adaptive sampling end to end with the real meshtrace filter in Envoy: the filter exports its spans to
the collector and polls the collector's /api/sampling for remote strategies. A noisy operation's served
probability falls below 1 and the filter starts leaving some of its requests unsampled, while a quiet
operation stays fully sampled. Uses the test kit's sidecar (meshtrace_testkit.sidecar) and dist/meshtrace.wasm.
"""

import pytest

from meshtrace_testkit import WASM, Collector
from meshtrace_testkit.sidecar import Sidecar


def sampled_at_app(sc) -> bool:
    return int(sc.app.header("traceparent")[-2:], 16) & 1 == 1


def probability(collector: Collector, operation: str):
    status, body = collector.get("/api/sampling?service=shop")
    assert status == 200, body
    for s in (body.get("operationSampling") or {}).get("perOperationStrategies", []):
        if s["operation"] == operation:
            return s["probabilisticSampling"]["samplingRate"]
    return None


def test_filter_applies_adaptive_probabilities_from_the_collector(tmp_path):
    if not WASM.exists():
        pytest.skip(f"{WASM} not built (make build)")
    collector = Collector(tmp_path / "data", [
        "--adaptive-sampling-target-tps", "10", "--adaptive-sampling-interval", "1s"])
    sc = None
    try:
        sc = Sidecar({
            "serviceName": "shop",
            "sampling": {
                # Locally everything is sampled: only the collector's strategies can lower /noisy.
                "randomSamplingPercentage": 100,
                "rules": [
                    {"match": {"pathPrefix": "/noisy"}, "randomSamplingPercentage": 100, "route": "/noisy"},
                    {"match": {"pathPrefix": "/quiet"}, "randomSamplingPercentage": 100, "route": "/quiet"},
                ],
                "remote": {"cluster": "sampling", "path": "/api/sampling", "refreshIntervalMs": 1000},
            },
        }, collector_port=collector.port("otlp_http"), clusters={"sampling": collector.port("http")})

        sc.get("/quiet/1")
        assert sampled_at_app(sc)
        # Drive the noisy operation until the collector lowers it (bounded only against a broken setup).
        for _ in range(300):
            for i in range(100):
                sc.get(f"/noisy/{i}")
            p = probability(collector, "GET /noisy")
            if p is not None and p < 0.5:
                break
        else:
            pytest.fail("the collector never lowered GET /noisy")
        assert probability(collector, "GET /quiet") == 1.0, "the quiet operation stays fully sampled"

        # The filter polls the endpoint and applies the lower probability: some /noisy requests go
        # unsampled although the local rule says 100%.
        for _ in range(3000):
            sc.get("/noisy/x")
            if not sampled_at_app(sc):
                break
        else:
            pytest.fail("the filter never applied the collector's probability")
        assert sc.envoy.settled("remote_sampling_updates") >= 1
        for i in range(5):
            sc.get(f"/quiet/{i}")
            assert sampled_at_app(sc), "quiet operation sampled"
    finally:
        panics = sc.close() if sc else []
        collector.stop()
    assert not panics, f"the module panicked: {panics}"
