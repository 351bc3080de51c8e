#!/usr/bin/env python3
"""Writes the Wasm module as an OCI image layout, in both variants of the
Wasm image specification that Istio's `oci://` URLs pull
(github.com/solo-io/wasm, spec/spec-compat.md and spec/spec.md; Istio's
pkg/wasm/imagefetcher.go reads them):

- `compat`: an OCI image with a single `application/vnd.oci.image.layer.v1.tar+gzip`
  layer holding `plugin.wasm`, and the manifest annotation
  `module.wasm.image/variant: compat`. Any registry stores it.
- `artifact`: an OCI artifact whose config is `application/vnd.module.wasm.config.v1+json`
  and whose layers are that runtime config and the module itself, uncompressed,
  as `application/vnd.module.wasm.content.layer.v1+wasm` (Istio takes exactly
  two layers and picks the Wasm one). Needs a registry that stores custom
  media types (most do now).

The output is reproducible: the same module gives the same digests (fixed
tar header and gzip timestamps), so the manifest digest printed for a
WasmPlugin's `sha256` is known before pushing, and `skopeo copy
--preserve-digests` keeps it.

  python3 scripts/wasm_oci.py dist/meshtrace.wasm dist/oci/meshtrace --version 0.1.0
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
VARIANT_ANNOTATION = "module.wasm.image/variant"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
WASM_MAGIC = b"\0asm"


class Layout:
    """An OCI image layout directory being written: blobs by digest, then index.json."""

    def __init__(self, root: Path):
        self.root = root
        if root.exists():
            shutil.rmtree(root)
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.manifests: list[dict] = []

    def blob(self, data: bytes, media_type: str, annotations: dict | None = None) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        descriptor = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}
        if annotations:
            descriptor["annotations"] = annotations
        return descriptor

    def manifest(self, ref: str, config: dict, layers: list[dict], annotations: dict) -> dict:
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
               "annotations": annotations}
        descriptor = self.blob(canonical(doc), OCI_MANIFEST, {REF_NAME: ref})
        self.manifests.append(descriptor)
        return descriptor

    def close(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.manifests}
        (self.root / "index.json").write_bytes(canonical(index))


def canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def plugin_layer(module: bytes) -> tuple[bytes, bytes]:
    """(the tar with plugin.wasm alone, the same gzip-compressed), both reproducible."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size, info.mode, info.mtime = len(module), 0o444, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(module))
    raw = tar_bytes.getvalue()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0)


def write(module_path: Path, out: Path, version: str, source: str | None) -> dict[str, str]:
    """Writes the layout; returns {variant: manifest digest}."""
    module = module_path.read_bytes()
    if not module.startswith(WASM_MAGIC):
        raise SystemExit(f"{module_path}: not a Wasm module (no \\0asm header)")
    labels = {"org.opencontainers.image.title": "meshtrace",
              "org.opencontainers.image.description": "meshtrace: distributed tracing as a proxy-wasm filter",
              "org.opencontainers.image.version": version,
              "org.opencontainers.image.licenses": "Apache-2.0"}
    if source:
        labels["org.opencontainers.image.source"] = source
    layout = Layout(out)

    raw, compressed = plugin_layer(module)
    config = {
        # A Wasm module runs on no CPU: GOARCH/GOOS spell it wasm/wasip1.
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
    }
    compat = layout.manifest(
        "compat",
        layout.blob(canonical(config), OCI_CONFIG),
        [layout.blob(compressed, OCI_LAYER_TAR_GZIP)],
        {VARIANT_ANNOTATION: "compat", **labels},
    )

    runtime = {"type": "envoy_proxy", "abiVersions": ["proxy_abi_version_0_2_1"],
               "config": {"root_ids": ["meshtrace"]}}
    runtime_blob = canonical(runtime)
    artifact = layout.manifest(
        "artifact",
        layout.blob(runtime_blob, WASM_CONFIG),
        [layout.blob(runtime_blob, WASM_CONFIG, {TITLE: "runtime-config.json"}),
         layout.blob(module, WASM_LAYER, {TITLE: "plugin.wasm"})],
        labels,
    )
    layout.close()
    return {"compat": compat["digest"], "artifact": artifact["digest"]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("out", type=Path, help="the OCI layout directory (replaced)")
    parser.add_argument("--version", required=True)
    parser.add_argument("--source", help="org.opencontainers.image.source")
    args = parser.parse_args(argv)
    for variant, digest in write(args.module, args.out, args.version, args.source).items():
        print(f"{variant} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
