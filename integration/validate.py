"""Validates Kubernetes manifests and kustomizations offline.

- Istio kinds against the openAPIV3Schema of the matching group, version and
  kind in Istio's CRDs (`crd-all.gen.yaml`, see `find_crds`). Unknown fields
  are errors (the API server would silently prune them, so a misspelt
  `failStrategy` would vanish), and the CEL rules the schemas carry for the
  fields we use are checked by hand (see `_cel_rules`). Without the CRDs the
  Istio kinds are skipped, and the command line says so in one line.
- Kubernetes kinds against Kubernetes' own schemas (kubernetes-validate,
  strict: unknown fields are errors).
- A kustomization: every resource it lists exists, every manifest beside it
  is listed (or named in `UNLISTED`), and what it renders (resources,
  directories with their own kustomization, JSON 6902 `patches`, `labels`)
  validates as above. An overlay is thus checked on its output.

  python integration/validate.py istio/*.yaml istio/*/kustomization.yaml
"""
from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path

import jsonpatch
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS_RELATIVE = Path("shared") / "data" / "istio" / "crd-all.gen.yaml"
KUBERNETES_VERSION = "1.33.0"


def find_crds() -> Path | None:
    """Istio's CRDs: $MESHTRACE_ISTIO_CRDS, else shared/ beside the clone (CI's
    layout), else beside the main checkout when this is a git worktree."""
    if os.environ.get("MESHTRACE_ISTIO_CRDS"):
        return Path(os.environ["MESHTRACE_ISTIO_CRDS"])
    candidates = [ROOT.parent / CRDS_RELATIVE]
    try:
        common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                cwd=ROOT, capture_output=True, text=True, timeout=10)
        if common.returncode == 0 and common.stdout.strip():
            candidates.append(Path(common.stdout.strip()).parent.parent / CRDS_RELATIVE)
    except (OSError, subprocess.SubprocessError):
        pass
    return next((p for p in candidates if p.is_file()), None)


SKIP_ISTIO = ("the Istio kinds (WasmPlugin, Telemetry, AuthorizationPolicy, PeerAuthentication) are not "
              f"validated: Istio's CRD schemas are not beside the repository (../{CRDS_RELATIVE}; "
              "MESHTRACE_ISTIO_CRDS=path/to/crd-all.gen.yaml names a copy)")


class Invalid(Exception):
    pass


# libyaml's loader when PyYAML has it: Istio's CRDs are 20k lines.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_documents(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=LOADER) if d is not None]


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


@functools.lru_cache(maxsize=4)
def istio_schemas(crd_path: Path) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict JSON schema of the whole object (cached:
    do not modify)."""
    if not crd_path.is_file():
        raise Invalid(f"Istio CRDs not found at {crd_path}")
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
    for i, rule in enumerate(spec.get("rules") or [] if doc.get("kind") == "AuthorizationPolicy" else []):
        for source in (f.get("source") or {} for f in rule.get("from") or []):
            if ({"serviceAccounts", "notServiceAccounts"} & source.keys()
                    and {"principals", "notPrincipals", "namespaces", "notNamespaces"} & source.keys()):
                errors.append(f"spec.rules[{i}].from: Cannot set serviceAccounts with namespaces or principals")
    if doc.get("kind") == "PeerAuthentication" and "portLevelMtls" in spec:
        if not (spec.get("selector") or {}).get("matchLabels"):
            errors.append("spec.portLevelMtls: portLevelMtls requires selector")
        for port in spec["portLevelMtls"]:
            if not str(port).isdigit() or not 0 < int(port) <= 65535:
                errors.append(f"spec.portLevelMtls: port must be between 1-65535 ({port!r})")
    return errors


def is_istio(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0].endswith("istio.io")


def validate_document(doc: dict, schemas: dict | None) -> bool:
    """Raises Invalid; returns False when the document was skipped (an Istio
    kind and no CRDs)."""
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    where = f"{kind} {(doc.get('metadata') or {}).get('name', '?')}"
    if not api or not kind:
        raise Invalid(f"{where}: apiVersion and kind are required")
    if is_istio(doc):
        if schemas is None:
            return False
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
    return True


# Manifests beside a kustomization that it does not list on purpose.
UNLISTED = {"wasm-http.yaml"}
# What `render` understands of a kustomization; anything else is refused
# rather than silently not checked.
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "patches", "labels"}


def render(path: Path) -> list[dict]:
    """The documents a kustomization builds: its resources (files, or
    directories with a kustomization.yaml), then its `labels`, then its
    JSON 6902 `patches` (each with a `target` by kind, name or group)."""
    doc = load_documents(path)[0]
    unknown = sorted(set(doc) - KUSTOMIZE_FIELDS)
    if unknown:
        raise Invalid(f"{path.name}: validate.py does not render {', '.join(unknown)}")
    docs: list[dict] = []
    for res in doc.get("resources", []):
        target = path.parent / res
        if target.is_dir():
            docs += render(target / "kustomization.yaml")
        elif target.is_file():
            docs += load_documents(target)
        else:
            raise Invalid(f"{path.name}: resource {res} does not exist")
    for entry in doc.get("labels", []):
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(entry.get("pairs", {}))
    for i, entry in enumerate(doc.get("patches", [])):
        ops = yaml.safe_load(entry["patch"]) if "patch" in entry else None
        if not isinstance(ops, list):
            raise Invalid(f"{path.name}: patches[{i}]: only inline JSON 6902 patches are rendered")
        target = entry.get("target") or {}
        if set(target) - {"kind", "name", "group"}:
            raise Invalid(f"{path.name}: patches[{i}]: validate.py selects targets by kind, name and group only")
        selected = [d for d in docs if _selected(d, target)]
        if not selected:
            raise Invalid(f"{path.name}: patches[{i}]: the target matches no resource")
        for d in selected:
            try:
                patched = jsonpatch.apply_patch(d, ops)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise Invalid(f"{path.name}: patches[{i}] on {d.get('kind')} {_name(d)}: {e}") from None
            d.clear()
            d.update(patched)
    return docs


def _name(doc: dict) -> str:
    return (doc.get("metadata") or {}).get("name", "?")


def _selected(doc: dict, target: dict) -> bool:
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    return all((
        target.get("kind") in (None, doc.get("kind")),
        target.get("name") in (None, _name(doc)),
        target.get("group") in (None, group),
    ))


def validate_kustomization(path: Path, schemas: dict | None) -> tuple[int, int]:
    """Checks what a kustomization lists and validates what it renders:
    (documents validated, documents skipped)."""
    doc = load_documents(path)[0]
    listed = doc.get("resources", [])
    for res in listed:
        if not (path.parent / res).exists():
            raise Invalid(f"{path.name}: resource {res} does not exist")
    beside = {p.name for p in path.parent.glob("*.yaml")} - {path.name} - UNLISTED
    missing = sorted(beside - set(listed))
    if missing:
        raise Invalid(f"{path.name}: does not list {', '.join(missing)}")
    checked = skipped = 0
    for d in render(path):
        if validate_document(d, schemas):
            checked += 1
        else:
            skipped += 1
    return checked, skipped


def validate_file(path: Path, schemas: dict | None) -> tuple[int, int]:
    """Validates every document of one file (a kustomization: what it
    renders): (documents validated, documents skipped for want of CRDs)."""
    if path.name == "kustomization.yaml":
        try:
            return validate_kustomization(path, schemas)
        except Invalid as e:
            raise Invalid(f"{path.parent.name}/{path.name}: {e}") from None
    docs = load_documents(path)
    if not docs:
        raise Invalid(f"{path}: no documents")
    checked = skipped = 0
    for doc in docs:
        try:
            if validate_document(doc, schemas):
                checked += 1
            else:
                skipped += 1
        except Invalid as e:
            raise Invalid(f"{path.name}: {e}") from None
    return checked, skipped


def main(argv: list[str]) -> int:
    crds = find_crds()
    try:
        schemas = istio_schemas(crds) if crds else None
    except Invalid as e:
        print(f"FAIL {e}")
        return 1
    if schemas is None:
        print(f"skip {SKIP_ISTIO}")
    status = 0
    for name in argv:
        try:
            checked, skipped = validate_file(Path(name), schemas)
            note = f", {skipped} Istio kind{'s' if skipped != 1 else ''} skipped" if skipped else ""
            print(f"ok   {name} ({checked} document{'s' if checked != 1 else ''}{note})")
        except (Invalid, yaml.YAMLError) as e:
            print(f"FAIL {name}: {e}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
