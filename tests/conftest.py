"""Fixtures for the real-Envoy tests of dist/meshtrace.wasm (the sidecar: testkit/meshtrace_testkit)."""
import pytest

from harness import ALL_PROPAGATORS
from meshtrace_testkit import WASM, Collector
from meshtrace_testkit.sidecar import Sidecar


def pytest_sessionstart(session):
    if not WASM.exists():
        raise pytest.UsageError(f"{WASM} is missing: run `make wasm` first")


@pytest.fixture(scope="module")
def mesh():
    """A sidecar speaking every format, shared by a module's tests; tests
    tell their spans apart by trace id."""
    sc = Sidecar(
        {"propagators": ALL_PROPAGATORS},
        env={"OTEL_SERVICE_NAME": "shop"},
        node={"id": "shop-1", "metadata": {"NAMESPACE": "prod", "NAME": "shop-7f9c",
                                           "LABELS": {"app": "shop-label", "version": "v3"}}},
    )
    yield sc
    assert not sc.close(), "the module panicked"


@pytest.fixture
def sidecar():
    """A factory for sidecars with their own configuration, closed after the test."""
    made = []

    def make(config, **kw):
        sc = Sidecar(config, **kw)
        made.append(sc)
        return sc

    yield make
    panics = [p for sc in made for p in sc.close()]
    assert not panics, f"the module panicked: {panics}"


@pytest.fixture
def collector(tmp_path):
    """The real collector (the debug build, or $MESHTRACE_COLLECTOR_BIN) on loopback ports."""
    c = Collector(tmp_path / "data")
    yield c
    c.stop()
