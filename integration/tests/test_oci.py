"""`make oci`: the module as an OCI image without Docker. A real registry
(Debian's docker-registry, a child process on 127.0.0.1) takes what
`make oci` pushes with skopeo; skopeo pulls it back, and the module comes
out of it the way Istio's image fetcher takes it out (pkg/wasm/imagefetcher.go:
the compat variant's last layer, a tar+gzip with plugin.wasm; the artifact
variant's layer of the Wasm media type among exactly two), byte for byte
dist/meshtrace.wasm. The `sha256:` line `make oci` prints is the manifest
digest the registry serves, which is what Istio checks a WasmPlugin's
`sha256` against for an `oci://` URL."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from meshtrace_testkit import free_port

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "dist" / "meshtrace.wasm"
SCRIPT = ROOT / "scripts" / "wasm_oci.py"
SKOPEO = shutil.which("skopeo")
REGISTRY = shutil.which("docker-registry")
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"

needs_tools = pytest.mark.skipif(
    not (SKOPEO and REGISTRY), reason="needs Debian's skopeo and docker-registry (`make deploy-test` installs them)")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """host:port of a registry v2 on loopback, storage in a temp dir."""
    home = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = home / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(home / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = open(home / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((home / "registry.log").read_text()) from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def make_oci(*args: str) -> dict[str, str]:
    """Runs `make oci` (the module is built by deploy-test already); returns
    the `url:` and `sha256:` lines it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run(["make", "-s", "-o", "wasm", "oci", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(re.findall(r"^\s+(url|sha256): (\S+)$", proc.stdout, re.M))
    assert lines.keys() == {"url", "sha256"}, proc.stdout
    return lines


def pull(image: str, dest: Path) -> tuple[dict, Path]:
    """skopeo copies the image into an OCI layout; returns its manifest and blob dir."""
    subprocess.run([SKOPEO, "copy", "-q", "--src-tls-verify=false", f"docker://{image}", f"oci:{dest}:pulled"],
                   check=True, timeout=120)
    index = json.loads((dest / "index.json").read_text())
    blobs = dest / "blobs" / "sha256"
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    return json.loads((blobs / digest).read_bytes()), blobs


def served_digest(registry: str, repository: str, tag: str) -> str:
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": MANIFEST}, method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.headers["Docker-Content-Digest"]


def module_as_istio_takes_it(manifest: dict, blobs: Path) -> bytes:
    """The compat variant, else the OCI artifact variant, as Istio's fetcher reads them."""
    layers = manifest["layers"]
    if layers[-1]["mediaType"] == OCI_LAYER:
        assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
        assert len(layers) == 1, "one layer: plugin.wasm"
        raw = gzip.decompress((blobs / layers[-1]["digest"].removeprefix("sha256:")).read_bytes())
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            names = tar.getnames()
            assert names == ["plugin.wasm"], names
            member = tar.extractfile("plugin.wasm")
            assert member is not None
            return member.read()
    assert len(layers) == 2, "Istio takes an artifact of exactly two layers"
    assert manifest["config"]["mediaType"] == WASM_CONFIG
    (wasm,) = [layer for layer in layers if layer["mediaType"] == WASM_LAYER]
    (config,) = [layer for layer in layers if layer["mediaType"] == WASM_CONFIG]
    runtime = json.loads((blobs / config["digest"].removeprefix("sha256:")).read_bytes())
    assert runtime["type"] == "envoy_proxy"
    assert wasm["digest"] == f"sha256:{sha256(WASM.read_bytes())}", "the layer IS the module"
    return (blobs / wasm["digest"].removeprefix("sha256:")).read_bytes()


@needs_tools
@pytest.mark.parametrize("variant", ["compat", "artifact"])
def test_make_oci_pushes_an_image_istio_reads_the_module_from(registry, variant, tmp_path):
    if not WASM.exists():
        pytest.skip("needs dist/meshtrace.wasm (make wasm)")
    image = f"{registry}/meshtrace/meshtrace:{variant}"
    printed = make_oci(f"OCI_IMAGE={image}", f"OCI_VARIANT={variant}", "OCI_TLS_VERIFY=false")
    assert printed["url"] == f"oci://{image}"
    assert re.fullmatch(r"[0-9a-f]{64}", printed["sha256"]), "the WasmPlugin's sha256 pattern"
    assert served_digest(registry, "meshtrace/meshtrace", variant) == f"sha256:{printed['sha256']}"

    manifest, blobs = pull(image, tmp_path / "pulled")
    module = module_as_istio_takes_it(manifest, blobs)
    assert sha256(module) == sha256(WASM.read_bytes())
    assert module[:4] == b"\0asm"


def test_the_layout_is_reproducible_and_follows_the_module(tmp_path):
    if not WASM.exists():
        pytest.skip("needs dist/meshtrace.wasm (make wasm)")

    def digests(module: Path, out: str) -> str:
        return subprocess.run([sys.executable, str(SCRIPT), str(module), str(tmp_path / out), "--version", "1"],
                              check=True, capture_output=True, text=True).stdout

    first, second = digests(WASM, "a"), digests(WASM, "b")
    assert first == second and first.count("sha256:") == 2
    other = tmp_path / "other.wasm"
    other.write_bytes(WASM.read_bytes() + b"\0")
    changed = digests(other, "c")
    assert set(first.split()) & set(changed.split()) == {"compat", "artifact"}, "every digest changes"


def test_a_file_that_is_not_wasm_is_refused(tmp_path):
    bogus = tmp_path / "plugin.wasm"
    bogus.write_bytes(b"#!/bin/sh\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(bogus), str(tmp_path / "out"), "--version", "1"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "not a Wasm module" in proc.stderr
