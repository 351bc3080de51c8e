"""The docker-compose shop: Debian's `docker-compose config` accepts it (and
rejects a broken copy), it has the topology the demo has, and the sidecar
bootstrap its containers generate passes `envoy --mode validate`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshtrace_testkit import ROOT, WASM, envoy_bin

COMPOSE_FILE = ROOT / "integration" / "docker-compose.yaml"
sys.path.insert(0, str(ROOT / "integration" / "shop"))

from topology import SERVICES  # noqa: E402

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (`make deploy-test` installs Debian's with apt-get)")


def compose(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "-f", str(path), *args], capture_output=True, text=True,
                          cwd=path.parent, timeout=120)


@needs_compose
def test_docker_compose_config_accepts_the_shop():
    proc = compose(COMPOSE_FILE, "config", "-q")
    assert proc.returncode == 0, proc.stderr + proc.stdout


@needs_compose
def test_docker_compose_config_rejects_a_broken_copy(tmp_path):
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    doc["services"]["cart"]["imagee"] = doc["services"]["cart"].pop("image")
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(yaml.safe_dump(doc))
    proc = compose(broken, "config", "-q")
    assert proc.returncode != 0
    assert "imagee" in proc.stderr + proc.stdout


@needs_compose
def test_every_service_has_a_sidecar_and_an_app_in_its_network():
    proc = compose(COMPOSE_FILE, "config")
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert len(SERVICES) >= 4
    formats = set()
    for name, (fmt, _) in SERVICES.items():
        assert services[name]["command"] == ["-c", f"/etc/meshtrace/{name}.json"], "the service's own bootstrap"
        assert "sidecar.Dockerfile" in services[name]["build"]["dockerfile"]
        app = services[f"{name}-app"]
        assert app["network_mode"] == f"service:{name}"
        assert app["environment"]["SERVICE_NAME"] == name
        formats.add(fmt)
    assert formats >= {"w3c", "b3", "jaeger"}
    assert "collector" in services and "loadgen" in services
    for name, svc in services.items():
        if name != "loadgen":
            assert svc["healthcheck"]["test"][0] == "CMD", f"{name}: a health check run without a shell"
        for dependency, condition in (svc.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} waits for {dependency} to be healthy"
    assert services["loadgen"]["environment"]["DURATION"] != "0", "the load is bounded in time"
    for svc in services.values():
        for port in svc.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{port} is published beyond loopback"
        dockerfile = svc.get("build", {}).get("dockerfile")
        if dockerfile:
            assert (ROOT / dockerfile).exists(), dockerfile


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_compose_sidecar_bootstrap_validates(service, tmp_path):
    if not envoy_bin().exists() or not WASM.exists():
        pytest.skip("needs .venv's Envoy and dist/meshtrace.wasm (make wasm .venv/.ready)")
    env = {**os.environ, "SERVICE_NAME": service, "MESHTRACE_WASM": str(WASM)}
    out = subprocess.run([sys.executable, str(ROOT / "integration" / "shop" / "sidecar.py")],
                         env=env, capture_output=True, text=True, check=True)
    config = tmp_path / "envoy.json"
    config.write_text(out.stdout)
    json.loads(out.stdout)
    proc = subprocess.run([str(envoy_bin()), "--mode", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
