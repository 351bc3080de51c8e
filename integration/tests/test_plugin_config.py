"""The pluginConfig and vmConfig.env of each WasmPlugin start the real filter
in a real Envoy (meshtrace_testkit.sidecar): a field the filter does not know would
stop the plugin, and Istio would then run the proxy without it."""
from __future__ import annotations

import pytest
import yaml

from meshtrace_testkit import ROOT, WASM, envoy_bin

kit = pytest.importorskip("meshtrace_testkit.sidecar", reason="needs the project venv (tests/requirements.txt)")

PLUGINS = sorted((ROOT / "istio").glob("wasmplugin-*.yaml"))


@pytest.mark.parametrize("path", PLUGINS, ids=[p.stem for p in PLUGINS])
def test_plugin_config_starts_the_filter(path):
    if not WASM.exists() or not envoy_bin().exists():
        pytest.skip("needs dist/meshtrace.wasm and .venv's Envoy")
    spec = yaml.safe_load(path.read_text())["spec"]
    config = dict(spec["pluginConfig"])
    # The test kit's sidecar has the collector as `meshtrace-collector`, not Istio's cluster.
    exporter = {k: v for k, v in config["exporter"].items() if k not in ("service", "authority")}
    config["exporter"] = {**exporter, "cluster": "meshtrace-collector"}
    env = {e["name"]: e["value"] for e in spec["vmConfig"]["env"] if e.get("valueFrom") == "INLINE"}
    sidecar = kit.Sidecar(config, env=env)
    try:
        status, _, _ = sidecar.get("/", headers={"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"})
        assert status == 200
        log = sidecar.envoy.log_text()
        assert "meshtrace: service" in log, log[-2000:]
        assert "invalid configuration" not in log
    finally:
        assert sidecar.close() == []
