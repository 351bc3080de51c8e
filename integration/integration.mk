# Deployment and the demo; included by the root Makefile (run from the repo root).
# Uses $(VENV), $(PYTHON), $(ENVOY), $(WASM), `build` and $(VENV)/.ready from the root Makefile.

DEPLOY_PY_READY := $(VENV)/.deploy-py-ready
DEMO_TEST_SECONDS ?= 20

.PHONY: demo demo-test deploy-test docker-compose wasm-sha256

$(DEPLOY_PY_READY): $(VENV)/.ready integration/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r integration/requirements.txt
	touch $@

# The shop as local processes on 127.0.0.1; Ctrl-C stops it. DEMO_SECONDS=N stops after N
# seconds of traffic and fails unless every trace reached the collector complete.
demo: build $(VENV)/.ready
	ENVOY=$(abspath $(ENVOY)) $(PYTHON) integration/demo.py

demo-test: build $(VENV)/.ready
	DEMO_SECONDS=$(DEMO_TEST_SECONDS) ENVOY=$(abspath $(ENVOY)) $(PYTHON) integration/demo.py

# Debian's docker-compose (v1) for `docker-compose config`; installed when absent.
docker-compose:
	@if command -v docker-compose >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "deploy-test: no docker-compose and no apt-get: the compose file will NOT be validated"; exit 0; fi; \
	SUDO=; if [ "$$(id -u)" != 0 ]; then SUDO=sudo; \
	  if ! command -v sudo >/dev/null; then \
	    echo "deploy-test: docker-compose missing, not root and no sudo: the compose file will NOT be validated"; exit 0; fi; fi; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq docker-compose >/dev/null

# Istio and Kubernetes manifests against their schemas, the compose file, the compose
# sidecars' Envoy bootstrap, the WasmPlugins' pluginConfig in a real Envoy, the demo's checker.
deploy-test: docker-compose $(DEPLOY_PY_READY) wasm
	$(PYTHON) integration/validate.py istio/*.yaml
	ENVOY=$(abspath $(ENVOY)) $(PYTHON) -m pytest -q integration/tests

# For clusters without a registry: serve dist/meshtrace.wasm over HTTP and give Istio its digest.
wasm-sha256: wasm
	@sum=$$(sha256sum $(WASM) | cut -d' ' -f1); \
	echo "$$sum  $(WASM)"; \
	echo "WasmPlugin spec:"; \
	echo "  url: http://<host>:<port>/meshtrace.wasm"; \
	echo "  sha256: $$sum"
