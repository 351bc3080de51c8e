"""The pluginConfig and vmConfig.env of each WasmPlugin start the real filter
in a real Envoy (tests/harness.py): a field the filter does not know would
stop the plugin, and Istio would then run the proxy without it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

harness = pytest.importorskip("harness", reason="needs the project venv (tests/requirements.txt)")

PLUGINS = sorted((ROOT / "istio").glob("wasmplugin-*.yaml"))


@pytest.mark.parametrize("path", PLUGINS, ids=[p.stem for p in PLUGINS])
def test_plugin_config_starts_the_filter(path):
    if not harness.WASM.exists() or not harness.ENVOY.exists():
        pytest.skip("needs dist/meshtrace.wasm and .venv's Envoy")
    spec = yaml.safe_load(path.read_text())["spec"]
    config = dict(spec["pluginConfig"])
    # The harness's sidecar has the collector as `meshtrace-collector`, not Istio's cluster.
    exporter = {k: v for k, v in config["exporter"].items() if k not in ("service", "authority")}
    config["exporter"] = {**exporter, "cluster": "meshtrace-collector"}
    env = {e["name"]: e["value"] for e in spec["vmConfig"]["env"] if e.get("valueFrom") == "INLINE"}
    sidecar = harness.Sidecar(config, env=env)
    try:
        status, _, _ = sidecar.get("/", headers={"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"})
        assert status == 200
        log = sidecar.envoy.log_text()
        assert "meshtrace: service" in log, log[-2000:]
        assert "invalid configuration" not in log
    finally:
        assert sidecar.close() == []
