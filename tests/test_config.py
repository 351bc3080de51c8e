"""Configuration: an invalid document is refused at start with one log line
naming the field; the shipped Envoy configurations validate."""

import pytest

from meshtrace_testkit import ROOT, envoy_bin
from meshtrace_testkit.sidecar import Sidecar

BAD = [
    ({"exporter": {"timeoutMs": "5s"}},
     'exporter.timeoutMs: invalid type: string "5s", expected a non-negative integer'),
    ({"sampling": {"randomSamplingPercentage": 150}}, "sampling.randomSamplingPercentage: 150 is out of range"),
    ({"propagators": ["tracecontext", "xray"]}, "propagators[1]: unsupported propagator `xray`"),
    ({"samplin": {}}, "samplin: unknown field `samplin`"),
    ({"exporter": {"cluster": "c", "service": "c.ns.svc:4318"}},
     "exporter.service: give exporter.cluster or exporter.service, not both"),
]


@pytest.mark.parametrize("config,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_invalid_configuration_is_refused_naming_the_field(config, message):
    with pytest.raises(AssertionError) as failed:
        Sidecar(config)
    text = str(failed.value)
    assert f"meshtrace: invalid configuration: {message}" in text, text[-2000:]


def test_envoy_configurations_in_the_repo_validate():
    import subprocess

    configs = sorted((ROOT / "envoy").glob("*.yaml"))
    assert configs, "envoy/ has configurations"
    for cfg in configs:
        proc = subprocess.run([str(envoy_bin()), "--mode", "validate", "-c", str(cfg)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 0, f"{cfg.name}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"


BAD_ENGINE = [
    ({"sampling": {"rules": [{"match": {"pathRegex": "(["}, "randomSamplingPercentage": 5}]}},
     "sampling.rules[0].match.pathRegex: invalid regex"),
    ({"sampling": {"rules": [{"match": {}, "randomSamplingPercentage": 101}]}},
     "sampling.rules[0].randomSamplingPercentage: 101 is out of range"),
    ({"customTags": {"x": {"cookie": {"name": "a"}}}}, "customTags.x.cookie: unknown field `cookie`"),
    ({"sampling": {"keepErrors": {"statusCodes": "9xx"}}}, "sampling.keepErrors.statusCodes: `9xx` is outside"),
    ({"limits": {"maxAttributes": 0}}, "limits.maxAttributes: 0 is out of range"),
]


@pytest.mark.parametrize("config,message", BAD_ENGINE, ids=[m.split(":")[0] for _, m in BAD_ENGINE])
def test_invalid_engine_configuration_is_refused(config, message):
    with pytest.raises(AssertionError) as failed:
        Sidecar(config)
    assert f"meshtrace: invalid configuration: {message}" in str(failed.value)
