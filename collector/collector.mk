# The collector's build and test targets; included by the root Makefile (run from the repo root).
# Uses $(VENV), $(PYTHON), $(TARGET_DIR) and $(VENV)/.ready from the root Makefile.

COLLECTOR_PY_READY := $(VENV)/.collector-py-ready

.PHONY: collector-build collector-test collector-clippy collector-unit-test collector-py-test

collector-build:
	cargo build -p meshtrace-collector --release
	@mkdir -p dist
	cp $(TARGET_DIR)/release/meshtrace-collector dist/meshtrace-collector

$(COLLECTOR_PY_READY): $(VENV)/.ready collector/tests/py/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r collector/tests/py/requirements.txt
	touch $@

collector-test: collector-clippy collector-unit-test collector-py-test

collector-clippy:
	cargo clippy -p meshtrace-collector --all-targets -- -D warnings

collector-unit-test:
	cargo test -p meshtrace-collector

# Real clients (OpenTelemetry Python SDK exporters, Envoy's OpenTelemetry and Zipkin tracers) against the
# debug binary that `cargo test` already built.
collector-py-test: $(COLLECTOR_PY_READY)
	cargo build -p meshtrace-collector
	MESHTRACE_COLLECTOR_BIN=$(abspath $(TARGET_DIR)/debug/meshtrace-collector) ENVOY=$(abspath $(VENV)/bin/envoy) \
	  $(PYTHON) -m pytest -q collector/tests/py
