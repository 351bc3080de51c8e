"""The real meshtrace-collector on loopback ephemeral ports for each test (meshtrace_testkit.Collector)."""

import pytest

from meshtrace_testkit import Collector


@pytest.fixture
def collector(tmp_path):
    c = Collector(tmp_path / "data")
    yield c
    c.stop()
    assert c.proc.returncode == 0, f"collector exited with {c.proc.returncode}"
