# The collector's build and test targets; included by the root Makefile (run from the repo root).
# Uses $(VENV), $(PYTHON), $(TARGET_DIR) and $(VENV)/.ready from the root Makefile.

COLLECTOR_PY_READY := $(VENV)/.collector-py-ready
BROWSER_PY_READY := $(VENV)/.browser-py-ready
# The Node.js jaeger-client for the Jaeger receiver tests (Node and npm from Debian when missing).
COLLECTOR_NODE_READY := collector/tests/node/node_modules/.ready

.PHONY: collector-build collector-test collector-clippy collector-unit-test collector-py-test \
	collector-browser-test chromium

collector-build:
	cargo build -p meshtrace-collector --release
	@mkdir -p dist
	cp $(TARGET_DIR)/release/meshtrace-collector dist/meshtrace-collector

$(COLLECTOR_PY_READY): $(VENV)/.ready collector/tests/py/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r collector/tests/py/requirements.txt
	touch $@

$(COLLECTOR_NODE_READY): collector/tests/node/package.json collector/tests/node/package-lock.json
	@scripts/ensure-deb.sh nodejs=node npm=npm
	npm ci --prefix collector/tests/node --no-audit --no-fund --loglevel=error
	touch $@

collector-test: collector-clippy collector-unit-test collector-py-test collector-browser-test

collector-clippy:
	cargo clippy -p meshtrace-collector --all-targets -- -D warnings

collector-unit-test:
	cargo test -p meshtrace-collector

# Real clients (OpenTelemetry Python SDK exporters in plain text and TLS, Envoy's OpenTelemetry and Zipkin
# tracers, the Python and Node.js Jaeger clients) against the debug binary that `cargo test` already built.
collector-py-test: $(COLLECTOR_PY_READY) $(COLLECTOR_NODE_READY)
	cargo build -p meshtrace-collector
	MESHTRACE_COLLECTOR_BIN=$(abspath $(TARGET_DIR)/debug/meshtrace-collector) ENVOY=$(abspath $(VENV)/bin/envoy) \
	  $(PYTHON) -m pytest -q collector/tests/py

$(BROWSER_PY_READY): $(VENV)/.ready collector/tests/browser/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r collector/tests/browser/requirements.txt
	touch $@

# Debian's chromium and chromium-driver for the viewer's tests, installed when missing (sudo when not root).
chromium:
	@scripts/ensure-deb.sh chromium=chromium chromium-driver=chromedriver

# The viewer in headless Chromium against the debug binary (one browser and one filled collector per run).
collector-browser-test: $(BROWSER_PY_READY) chromium
	cargo build -p meshtrace-collector
	MESHTRACE_COLLECTOR_BIN=$(abspath $(TARGET_DIR)/debug/meshtrace-collector) \
	  $(PYTHON) -m pytest -q collector/tests/browser
