"""Validates Kubernetes manifests offline.

- Istio kinds against the openAPIV3Schema of the matching group, version and
  kind in Istio's CRDs (../shared/data/istio/crd-all.gen.yaml beside the
  repository). Unknown fields are errors (the API server would silently prune
  them, so a misspelt `failStrategy` would vanish), and the CEL rules the
  schemas carry for the fields we use are checked by hand (see `_cel_rules`).
- Kubernetes kinds against Kubernetes' own schemas (kubernetes-validate,
  strict: unknown fields are errors).
- A kustomization: every resource it lists exists, and every manifest beside
  it is listed (or named in `UNLISTED`).

  python integration/validate.py istio/*.yaml      # exits 1 on the first bad file
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT.parent / "shared" / "data" / "istio" / "crd-all.gen.yaml"
KUBERNETES_VERSION = "1.33.0"


class Invalid(Exception):
    pass


def load_documents(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _strict(schema: dict) -> dict:
    """The schema with unknown properties rejected wherever it lists properties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for key, value in node.items():
                if key != "x-kubernetes-validations":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return schema


def istio_schemas(crd_path: Path = CRDS) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict JSON schema of the whole object."""
    if not crd_path.exists():
        raise Invalid(f"Istio CRDs not found at {crd_path} (CI clones shared/ beside the repository)")
    out = {}
    for crd in load_documents(crd_path):
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schema.setdefault("properties", {}).update({
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "required": ["name"],
                             "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                            "labels": {"type": "object"}, "annotations": {"type": "object"}},
                             "additionalProperties": False},
            })
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
            out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return out


def _cel_rules(doc: dict) -> list[str]:
    """The x-kubernetes-validations (CEL) rules of the fields we use, by hand."""
    spec = doc.get("spec") or {}
    errors = []
    if sum(k in spec for k in ("selector", "targetRef", "targetRefs")) > 1:
        errors.append("spec: only one of targetRefs or selector can be set")
    for env in (spec.get("vmConfig") or {}).get("env") or []:
        if env.get("valueFrom") == "HOST" and "value" in env:
            errors.append(f"spec.vmConfig.env[{env.get('name')}]: value may only be set when valueFrom is INLINE")
    names = [e.get("name") for e in (spec.get("vmConfig") or {}).get("env") or []]
    if len(names) != len(set(names)):
        errors.append("spec.vmConfig.env: names must be unique (list-type map)")
    url = spec.get("url", "")
    if doc.get("kind") == "WasmPlugin" and "://" in url and url.split("://")[0] not in ("http", "https", "oci", "file"):
        errors.append("spec.url: url must have schema one of [http, https, file, oci]")
    for key, value in ((spec.get("selector") or {}).get("matchLabels") or {}).items():
        if "*" in key or "*" in str(value) or not key:
            errors.append(f"spec.selector.matchLabels: no wildcards or empty keys ({key!r})")
    return errors


def validate_document(doc: dict, schemas: dict) -> None:
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    where = f"{kind} {(doc.get('metadata') or {}).get('name', '?')}"
    if not api or not kind:
        raise Invalid(f"{where}: apiVersion and kind are required")
    if api.split("/")[0].endswith("istio.io"):
        schema = schemas.get((api, kind))
        if schema is None:
            raise Invalid(f"{where}: no Istio CRD serves {api} {kind}")
        validator = jsonschema.Draft7Validator(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise Invalid(f"{where}: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
        cel = _cel_rules(doc)
        if cel:
            raise Invalid(f"{where}: {cel[0]}")
    else:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise Invalid(f"{where}: {path or '(root)'}: {e.message}") from None
        except kubernetes_validate.SchemaNotFoundError:
            raise Invalid(f"{where}: Kubernetes {KUBERNETES_VERSION} has no {api} {kind}") from None


# Manifests beside a kustomization that it does not list on purpose.
UNLISTED = {"wasm-http.yaml"}


def validate_kustomization(path: Path) -> None:
    doc = load_documents(path)[0]
    listed = doc.get("resources", [])
    for res in listed:
        if not (path.parent / res).exists():
            raise Invalid(f"{path.name}: resource {res} does not exist")
    beside = {p.name for p in path.parent.glob("*.yaml")} - {path.name} - UNLISTED
    missing = sorted(beside - set(listed))
    if missing:
        raise Invalid(f"{path.name}: does not list {', '.join(missing)}")


def validate_file(path: Path, schemas: dict) -> int:
    """Validates every document of one file; returns how many."""
    if path.name == "kustomization.yaml":
        validate_kustomization(path)
        return 1
    docs = load_documents(path)
    if not docs:
        raise Invalid(f"{path}: no documents")
    for doc in docs:
        try:
            validate_document(doc, schemas)
        except Invalid as e:
            raise Invalid(f"{path.name}: {e}") from None
    return len(docs)


def main(argv: list[str]) -> int:
    schemas = istio_schemas()
    status = 0
    for name in argv:
        try:
            n = validate_file(Path(name), schemas)
            print(f"ok   {name} ({n} document{'s' if n != 1 else ''})")
        except (Invalid, yaml.YAMLError) as e:
            print(f"FAIL {name}: {e}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
