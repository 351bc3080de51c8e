"""Every manifest in istio/ validates (Istio kinds against Istio's CRD
schemas, Kubernetes kinds against Kubernetes' schemas), and the validator
rejects broken ones: each case breaks one thing in a copy in a temp dir."""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "integration"))

import validate  # noqa: E402

ISTIO = ROOT / "istio"
MANIFESTS = sorted(ISTIO.glob("*.yaml"))


@pytest.fixture(scope="module")
def schemas():
    return validate.istio_schemas()


def test_the_crd_file_beside_the_repository_is_used(schemas):
    assert validate.CRDS == ROOT.parent / "shared" / "data" / "istio" / "crd-all.gen.yaml"
    assert ("extensions.istio.io/v1alpha1", "WasmPlugin") in schemas
    assert ("telemetry.istio.io/v1", "Telemetry") in schemas


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_validates(path, schemas):
    assert validate.validate_file(path, schemas) >= 1


def test_every_kind_the_issue_asks_for_is_there():
    kinds = {(d["kind"], d["metadata"]["name"]) for p in MANIFESTS if p.name != "kustomization.yaml"
             for d in validate.load_documents(p)}
    for want in [("WasmPlugin", "meshtrace-server"), ("WasmPlugin", "meshtrace-client"),
                 ("Telemetry", "meshtrace"), ("StatefulSet", "meshtrace-collector"),
                 ("Service", "meshtrace-collector")]:
        assert want in kinds, want


def plugin(name):
    return validate.load_documents(ISTIO / f"wasmplugin-{name}.yaml")[0]


def test_plugins_match_their_side_fail_open_and_export_to_the_istio_cluster():
    collector_ns = validate.load_documents(ISTIO / "collector.yaml")[0]["metadata"]["namespace"]
    for side, mode, direction in (("server", "SERVER", "inbound"), ("client", "CLIENT", "outbound")):
        spec = plugin(side)["spec"]
        assert spec["match"] == [{"mode": mode}]
        assert spec["failStrategy"] == "FAIL_OPEN"
        assert spec["pluginConfig"]["direction"] == direction
        assert spec["pluginConfig"]["exporter"]["service"] == \
            f"meshtrace-collector.{collector_ns}.svc.cluster.local:4318"
        assert {e["name"] for e in spec["vmConfig"]["env"]} >= {"OTEL_SERVICE_NAME"}


def test_telemetry_turns_envoy_tracing_off_where_the_plugins_run():
    tel = validate.load_documents(ISTIO / "telemetry.yaml")[0]
    assert tel["metadata"]["namespace"] == plugin("server")["metadata"]["namespace"]
    assert tel["spec"].get("selector") == plugin("server")["spec"].get("selector")
    tracing = tel["spec"]["tracing"][0]
    assert tracing["disableSpanReporting"] is True
    assert tracing["disableContextPropagation"] is True


def test_collector_has_probes_and_resources():
    sts = [d for d in validate.load_documents(ISTIO / "collector.yaml") if d["kind"] == "StatefulSet"][0]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe in c
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert sts["spec"]["volumeClaimTemplates"]


# ---- the validator must be able to fail ---------------------------------------

def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()

BROKEN = [
    ("wasmplugin-server.yaml", 0, ("spec", "failStrategy"), "FAIL_SOFTLY", "failStrategy"),
    ("wasmplugin-server.yaml", 0, ("spec", "failStratgy"), "FAIL_OPEN", "failStratgy"),
    ("wasmplugin-server.yaml", 0, ("spec", "match"), [{"mode": "INBOUND"}], "INBOUND"),
    ("wasmplugin-server.yaml", 0, ("spec", "url"), _DELETE, "url"),
    ("wasmplugin-server.yaml", 0, ("spec", "sha256"), "not-a-digest", "sha256"),
    ("wasmplugin-client.yaml", 0, ("spec", "vmConfig", "env", 0, "value"), "x", "valueFrom is INLINE"),
    ("wasmplugin-client.yaml", 0, ("apiVersion",), "extensions.istio.io/v1", "no Istio CRD"),
    ("telemetry.yaml", 0, ("spec", "tracing", 0, "randomSamplingPercentage"), 150, "randomSamplingPercentage"),
    ("telemetry.yaml", 0, ("spec", "tracing", 0, "disableTracing"), True, "disableTracing"),
    ("collector.yaml", 2, ("spec", "replicas"), "one", "replicas"),
    ("collector.yaml", 2, ("spec", "template", "spec", "containers", 0, "readinessprobe"), {}, "readinessprobe"),
    ("collector.yaml", 0, ("spec", "ports", 0, "port"), "4318", "port"),
    ("namespace.yaml", 0, ("kind",), "Namespaces", "Namespaces"),
]


@pytest.mark.parametrize("name,index,path,value,needle", BROKEN,
                         ids=[f"{b[0]}:{'.'.join(map(str, b[2]))}" for b in BROKEN])
def test_a_broken_manifest_is_rejected(tmp_path, schemas, name, index, path, value, needle):
    docs = copy.deepcopy(validate.load_documents(ISTIO / name))
    _set(docs[index], path, value)
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(validate.Invalid) as err:
        validate.validate_file(broken, schemas)
    assert needle in str(err.value), str(err.value)


def test_a_kustomization_that_misses_a_manifest_is_rejected(tmp_path, schemas):
    for p in MANIFESTS:
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "extra.yaml").write_text((ISTIO / "telemetry.yaml").read_text())
    with pytest.raises(validate.Invalid, match="does not list extra.yaml"):
        validate.validate_file(tmp_path / "kustomization.yaml", schemas)


def test_the_command_line_exits_non_zero_on_a_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n"
                   "metadata: {name: x}\nspec: {url: oci://r/x, phase: LATE}\n")
    assert validate.main([str(bad)]) == 1
    assert "FAIL" in capsys.readouterr().out


def _flatten(doc, prefix: str = "") -> set[str]:
    """Dotted field names, `[]` for list items: sampling.rules[].match.pathPrefix."""
    out = set()
    for key, value in doc.items():
        out.add(prefix + key)
        if key == "headers" and prefix.startswith("exporter"):
            continue
        if isinstance(value, dict) and key != "customTags":
            out |= _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            out.add(f"{prefix}{key}[]")
            for item in value:
                if isinstance(item, dict):
                    out |= _flatten(item, f"{prefix}{key}[].")
    return out


def test_plugin_config_shows_every_field_of_the_readme_configuration_table():
    """When the filter gains a field (README.md, "Configuration"), the
    WasmPlugins show it too: add it to istio/wasmplugin-*.yaml (as a comment
    when it must stay off, like serviceName for a whole namespace)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    fields = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert fields, "README.md's configuration table was found"
    for side in ("server", "client"):
        text = (ISTIO / f"wasmplugin-{side}.yaml").read_text()
        shown = _flatten(plugin(side)["spec"]["pluginConfig"])
        commented = set(re.findall(r"#\s*([A-Za-z]+):", text))
        missing = sorted(f for f in fields - shown if f.split(".")[-1].rstrip("[]") not in commented)
        assert not missing, f"wasmplugin-{side}.yaml's pluginConfig does not show {missing}"
