"""The pluginConfig and vmConfig.env of each WasmPlugin start the real filter
in a real Envoy (meshtrace_testkit.sidecar): a field the filter does not know would
stop the plugin, and Istio would then run the proxy without it. The
`valueFrom: HOST` variables get the values an istio-proxy container would
have, and the ingest token named by exporter.bearerTokenEnv reaches the
collector as a bearer token."""
from __future__ import annotations

import pytest
import yaml

from meshtrace_testkit import ROOT, WASM, envoy_bin

kit = pytest.importorskip("meshtrace_testkit.sidecar", reason="needs the project venv (tests/requirements.txt)")

PLUGINS = sorted((ROOT / "istio").glob("wasmplugin-*.yaml"))
# What the istio-proxy container's environment holds in a pod set up as istio/README.md says.
PROXY_ENV = {"OTEL_SERVICE_NAME": "cart", "ISTIO_META_CLUSTER_ID": "Kubernetes",
             "MESHTRACE_INGEST_TOKEN": "0f3c9d2e7a41b5c8"}
SAMPLED_B3 = {"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"}


def vm_env(spec: dict, proxy_env: dict) -> dict:
    env = {}
    for e in spec["vmConfig"]["env"]:
        if e.get("valueFrom") == "HOST":
            if e["name"] in proxy_env:
                env[e["name"]] = proxy_env[e["name"]]
        else:
            env[e["name"]] = e["value"]
    return env


def plugin_config(spec: dict) -> dict:
    config = dict(spec["pluginConfig"])
    # The test kit's sidecar has the collector as `meshtrace-collector`, not Istio's service.
    exporter = {k: v for k, v in config["exporter"].items() if k not in ("service", "authority")}
    config["exporter"] = {**exporter, "cluster": "meshtrace-collector", "flushIntervalMs": 100}
    return config


def needs_envoy():
    if not WASM.exists() or not envoy_bin().exists():
        pytest.skip("needs dist/meshtrace.wasm and .venv's Envoy")


@pytest.mark.parametrize("path", PLUGINS, ids=[p.stem for p in PLUGINS])
def test_plugin_config_starts_the_filter_and_exports_with_the_ingest_token(path):
    needs_envoy()
    spec = yaml.safe_load(path.read_text())["spec"]
    sidecar = kit.Sidecar(plugin_config(spec), env=vm_env(spec, PROXY_ENV))
    try:
        status, _, _ = sidecar.get("/", headers=SAMPLED_B3)
        assert status == 200
        log = sidecar.envoy.log_text()
        assert "meshtrace: service" in log, log[-2000:]
        assert "invalid configuration" not in log
        sidecar.sink.wait_spans(1)
        assert sidecar.sink.last_headers["authorization"] == f"Bearer {PROXY_ENV['MESHTRACE_INGEST_TOKEN']}"
        assert PROXY_ENV["MESHTRACE_INGEST_TOKEN"] not in log, "the token is never logged"
    finally:
        assert sidecar.close() == []


def test_a_proxy_without_the_token_variable_refuses_the_plugin_naming_the_field():
    """A workload whose istio-proxy lacks MESHTRACE_INGEST_TOKEN: the plugin
    refuses its configuration, naming the field (a static Envoy then does not
    start; Istio, with FAIL_OPEN, runs the workload untraced)."""
    needs_envoy()
    spec = yaml.safe_load(PLUGINS[0].read_text())["spec"]
    env = {k: v for k, v in PROXY_ENV.items() if k != "MESHTRACE_INGEST_TOKEN"}
    with pytest.raises(AssertionError) as failed:
        kit.Sidecar(plugin_config(spec), env=vm_env(spec, env))
    assert ("meshtrace: invalid configuration: exporter.bearerTokenEnv: "
            "the VM environment has no value for MESHTRACE_INGEST_TOKEN") in str(failed.value)
