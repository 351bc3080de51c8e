"""Every manifest in istio/ validates (Istio kinds against Istio's CRD
schemas, Kubernetes kinds against Kubernetes' schemas), and the validator
rejects broken ones: each case breaks one thing in a copy in a temp dir."""
from __future__ import annotations

import copy
import json
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
OVERLAYS = sorted(ISTIO.glob("*/kustomization.yaml"))


@pytest.fixture(scope="module")
def crds():
    path = validate.find_crds()
    if path is None:
        pytest.skip(validate.SKIP_ISTIO)
    return path


@pytest.fixture(scope="module")
def schemas(crds):
    return validate.istio_schemas(crds)


def istio_kinds(path: Path) -> bool:
    return any(validate.is_istio(d) for d in validate.load_documents(path))


def test_the_crd_file_is_found_beside_the_repository_or_the_main_checkout(crds, schemas):
    assert crds.parts[-4:] == ("shared", "data", "istio", "crd-all.gen.yaml")
    assert ("extensions.istio.io/v1alpha1", "WasmPlugin") in schemas
    assert ("telemetry.istio.io/v1", "Telemetry") in schemas
    assert ("security.istio.io/v1", "AuthorizationPolicy") in schemas


def test_without_crds_the_command_line_says_what_it_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(validate, "find_crds", lambda: None)
    assert validate.main([str(ISTIO / "telemetry.yaml"), str(ISTIO / "collector.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("skip")] == [f"skip {validate.SKIP_ISTIO}"]
    assert "ok   " + str(ISTIO / "collector.yaml") + " (3 documents)" in out
    assert any("telemetry.yaml (0 documents, 1 Istio kind skipped)" in line for line in out), out


@pytest.mark.parametrize("path", MANIFESTS + OVERLAYS, ids=[str(p.relative_to(ISTIO)) for p in MANIFESTS + OVERLAYS])
def test_manifest_validates(path, request):
    needs_istio = path.name == "kustomization.yaml" or istio_kinds(path)
    schemas = request.getfixturevalue("schemas") if needs_istio else None
    checked, skipped = validate.validate_file(path, schemas)
    assert checked >= 1 and skipped == 0


def test_every_manifest_states_the_istio_version_it_needs():
    for path in MANIFESTS + OVERLAYS:
        text = path.read_text()
        assert re.search(r"Needs Istio 1\.\d+|Istio 1\.\d+ to 1\.\d+|Kubernetes only", text), path


def test_every_kind_the_issue_asks_for_is_there():
    kinds = {(d["kind"], d["metadata"]["name"]) for p in MANIFESTS if p.name != "kustomization.yaml"
             for d in validate.load_documents(p)}
    for want in [("WasmPlugin", "meshtrace-server"), ("WasmPlugin", "meshtrace-client"),
                 ("Telemetry", "meshtrace"), ("StatefulSet", "meshtrace-collector"),
                 ("Service", "meshtrace-collector"), ("AuthorizationPolicy", "meshtrace-collector"),
                 ("PeerAuthentication", "meshtrace-collector")]:
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


def test_the_ingest_token_reaches_the_plugins_from_the_proxy_environment_only():
    """The WasmPlugins name the variable, never the token: exporter.bearerTokenEnv
    is a vmConfig.env entry read from the istio-proxy container (HOST)."""
    for side in ("server", "client"):
        spec = plugin(side)["spec"]
        variable = spec["pluginConfig"]["exporter"]["bearerTokenEnv"]
        env = {e["name"]: e for e in spec["vmConfig"]["env"]}
        assert env[variable] == {"name": variable, "valueFrom": "HOST"}
        assert "authorization" not in spec["pluginConfig"]["exporter"].get("headers", {})


def test_the_collector_reads_both_tokens_from_the_secret():
    sts = [d for d in validate.load_documents(ISTIO / "collector.yaml") if d["kind"] == "StatefulSet"][0]
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "tokens")
    volume = next(v for v in pod["volumes"] if v["name"] == "tokens")
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "meshtrace-tokens"
    assert volume["secret"]["defaultMode"] == 0o440, "readable by the collector's group (fsGroup) only"
    for key, variable in (("ingest", "MESHTRACE_INGEST_TOKEN_FILE"), ("query", "MESHTRACE_QUERY_TOKEN_FILE")):
        assert env[variable] == f"{mount['mountPath']}/{key}"
    assert sts["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "true", \
        "the AuthorizationPolicy needs the collector's own sidecar"


def test_access_admits_the_mesh_to_ingest_and_one_namespace_to_queries():
    docs = {d["kind"]: d for d in validate.load_documents(ISTIO / "access.yaml")}
    collector_labels = [d for d in validate.load_documents(ISTIO / "collector.yaml")
                        if d["kind"] == "StatefulSet"][0]["spec"]["template"]["metadata"]["labels"]
    for kind in ("PeerAuthentication", "AuthorizationPolicy", "Telemetry"):
        assert docs[kind]["spec"]["selector"]["matchLabels"].items() <= collector_labels.items(), kind
    assert docs["PeerAuthentication"]["spec"]["mtls"]["mode"] == "STRICT"
    policy = docs["AuthorizationPolicy"]["spec"]
    assert policy["action"] == "ALLOW"
    by_port: dict[str, list] = {}
    for rule in policy["rules"]:
        for op in (t["operation"] for t in rule["to"]):
            for port in op["ports"]:
                by_port.setdefault(port, []).append((rule["from"][0]["source"], op))
    for port in ("4317", "4318"):
        assert by_port[port] == [({"principals": ["*"]}, {"ports": ["4318", "4317"]})]
    zipkin = dict((json.dumps(op, sort_keys=True), source) for source, op in by_port["9411"])
    assert zipkin == {json.dumps({"ports": ["9411"], "methods": ["POST"]}, sort_keys=True): {"principals": ["*"]},
                      json.dumps({"ports": ["16686", "9411"]}, sort_keys=True): {"namespaces": ["observability"]}}, \
        "Zipkin's port: spans in from the mesh, its query API for one namespace"
    query = by_port["16686"]
    whole_port = [source for source, op in query if "paths" not in op]
    assert whole_port == [{"namespaces": ["observability"]}], "the query API: one namespace only"
    limited = [op for source, op in query if "paths" in op]
    assert limited == [{"ports": ["16686"], "methods": ["GET"], "paths": ["/api/sampling", "/sampling"]}]
    assert by_port["5778"] == [({"principals": ["*"]}, {"ports": ["5778"], "methods": ["GET"]})]
    service_ports = {str(p["port"]) for p in validate.load_documents(ISTIO / "collector.yaml")[0]["spec"]["ports"]}
    assert service_ports <= by_port.keys(), "every port of the collector's Service has a rule"
    assert docs["Telemetry"]["spec"]["tracing"] == [{"disableSpanReporting": True}]


def test_readme_creates_the_secrets_the_manifests_read():
    readme = (ISTIO / "README.md").read_text()
    assert "create secret generic meshtrace-tokens --from-literal=ingest=" in readme
    assert "--from-literal=query=" in readme
    assert "create secret generic meshtrace-ingest-token --from-literal=token=" in readme


def test_the_readme_sidecar_patch_is_a_valid_deployment_that_sets_the_token_variable():
    readme = (ISTIO / "README.md").read_text()
    block = readme.split("<!-- istio-proxy-token-patch -->", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    patch = yaml.safe_load(block)
    container = patch["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "istio-proxy"
    env = container["env"][0]
    assert env["name"] == plugin("server")["spec"]["pluginConfig"]["exporter"]["bearerTokenEnv"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "meshtrace-ingest-token", "key": "token"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cart", "namespace": "shop"},
                  "spec": {"selector": {"matchLabels": {"app": "cart"}},
                           "template": {"metadata": {"labels": {"app": "cart"}},
                                        "spec": {"containers": [{"name": "cart", "image": "shop/cart:1"},
                                                                container]}}}}
    assert validate.validate_document(deployment, None) is True


def test_telemetry_turns_envoy_tracing_off_where_the_plugins_run():
    tel = validate.load_documents(ISTIO / "telemetry.yaml")[0]
    assert tel["metadata"]["namespace"] == plugin("server")["metadata"]["namespace"]
    assert tel["spec"].get("selector") == plugin("server")["spec"].get("selector")
    tracing = tel["spec"]["tracing"][0]
    assert tracing["disableSpanReporting"] is True
    assert tracing["disableContextPropagation"] is True


def test_before_1_30_overlay_drops_only_disable_context_propagation():
    base = validate.render(ISTIO / "kustomization.yaml")
    overlay = validate.render(ISTIO / "before-1.30" / "kustomization.yaml")
    assert len(base) == len(overlay)
    for b, o in zip(base, overlay):
        if b["kind"] == "Telemetry" and b["metadata"]["name"] == "meshtrace":
            assert o["spec"]["tracing"] == [{k: v for k, v in b["spec"]["tracing"][0].items()
                                             if k != "disableContextPropagation"}]
            assert o["spec"]["tracing"][0]["disableSpanReporting"] is True
        else:
            assert o == b


def test_a_pre_1_30_telemetry_schema_refuses_the_base_and_accepts_the_overlay(crds, tmp_path):
    """Istio before 1.30 has no disableContextPropagation: the same CRDs with
    that field taken out stand in for them."""
    docs = validate.load_documents(crds)

    def strip(node):
        if isinstance(node, dict):
            node.get("properties", {}).pop("disableContextPropagation", None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    for d in docs:
        if d.get("kind") == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == "Telemetry":
            strip(d)
    old = tmp_path / "crd-before-1.30.yaml"
    old.write_text(yaml.dump_all(docs, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
    schemas = validate.istio_schemas(old)
    with pytest.raises(validate.Invalid, match="disableContextPropagation"):
        validate.validate_file(ISTIO / "telemetry.yaml", schemas)
    checked, skipped = validate.validate_file(ISTIO / "before-1.30" / "kustomization.yaml", schemas)
    assert checked >= 9 and skipped == 0


def test_an_overlay_patch_that_matches_nothing_or_fails_is_rejected(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources: [telemetry.yaml]\n")
    (base / "telemetry.yaml").write_text((ISTIO / "telemetry.yaml").read_text())
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    for target, op, needle in (
            ("{kind: Telemetry, name: other}", "remove", "matches no resource"),
            ("{kind: Telemetry}", "remove", "disableTracing")):
        (overlay / "kustomization.yaml").write_text(
            f"resources: [../base]\npatches:\n- target: {target}\n"
            f"  patch: '[{{\"op\": \"{op}\", \"path\": \"/spec/tracing/0/disableTracing\"}}]'\n")
        with pytest.raises(validate.Invalid, match=needle):
            validate.validate_file(overlay / "kustomization.yaml", None)
    (overlay / "kustomization.yaml").write_text("resources: [../base]\nimages: [{name: x}]\n")
    with pytest.raises(validate.Invalid, match="does not render images"):
        validate.validate_file(overlay / "kustomization.yaml", None)


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
    ("access.yaml", 0, ("spec", "mtls", "mode"), "STRICTER", "STRICTER"),
    ("access.yaml", 0, ("spec", "portLevelMtls"), {"99999": {"mode": "STRICT"}}, "between 1-65535"),
    ("access.yaml", 1, ("spec", "action"), "ALLOWED", "ALLOWED"),
    ("access.yaml", 1, ("spec", "rules", 2, "from", 0, "source", "serviceAccounts"), ["observability/grafana"],
     "Cannot set serviceAccounts with namespaces"),
    ("access.yaml", 1, ("spec", "rules", 0, "to", 0, "operation", "port"), ["4318"], "port"),
    ("access.yaml", 2, ("spec", "tracing", 0, "disableSpanReportin"), True, "disableSpanReportin"),
]


@pytest.mark.parametrize("name,index,path,value,needle", BROKEN,
                         ids=[f"{b[0]}:{'.'.join(map(str, b[2]))}" for b in BROKEN])
def test_a_broken_manifest_is_rejected(tmp_path, request, name, index, path, value, needle):
    schemas = request.getfixturevalue("schemas") if istio_kinds(ISTIO / name) else None
    docs = copy.deepcopy(validate.load_documents(ISTIO / name))
    _set(docs[index], path, value)
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(validate.Invalid) as err:
        validate.validate_file(broken, schemas)
    assert needle in str(err.value), str(err.value)


def test_a_kustomization_that_misses_a_manifest_is_rejected(tmp_path):
    for p in MANIFESTS:
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "extra.yaml").write_text((ISTIO / "telemetry.yaml").read_text())
    with pytest.raises(validate.Invalid, match="does not list extra.yaml"):
        validate.validate_file(tmp_path / "kustomization.yaml", None)


def test_the_command_line_exits_non_zero_on_a_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: http}]}\n")
    assert validate.main([str(bad)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_the_command_line_exits_non_zero_on_a_broken_istio_file(tmp_path, capsys, crds):
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
