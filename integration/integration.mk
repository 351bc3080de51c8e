# Deployment and the demo; included by the root Makefile (run from the repo root).
# Uses $(VENV), $(PYTHON), $(ENVOY), $(WASM), `build` and $(VENV)/.ready from the root Makefile.

DEPLOY_PY_READY := $(VENV)/.deploy-py-ready
DEMO_TEST_SECONDS ?= 20
# The workspace version (Cargo.toml's [workspace.package]), the images' tag.
VERSION := $(shell awk -F'"' '/^version = / {print $$2; exit}' Cargo.toml)

.PHONY: demo demo-test deploy-test deploy-tools quickstart-test wasm-sha256 oci images

$(DEPLOY_PY_READY): $(VENV)/.ready integration/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r integration/requirements.txt
	touch $@

# The shop as local processes on 127.0.0.1; Ctrl-C stops it. DEMO_SECONDS=N stops after N
# seconds of traffic and fails unless every trace reached the collector complete.
demo: build $(VENV)/.ready
	ENVOY=$(abspath $(ENVOY)) $(PYTHON) integration/demo.py

demo-test: build $(VENV)/.ready
	DEMO_SECONDS=$(DEMO_TEST_SECONDS) ENVOY=$(abspath $(ENVOY)) $(PYTHON) integration/demo.py

# Debian's tools the deployment tests run (no daemon among them): docker-compose (v1) for
# `docker-compose config`, skopeo and docker-registry for `make oci`'s push and pull,
# buildah to build the compose images from local artefacts.
deploy-tools:
	@scripts/ensure-deb.sh docker-compose skopeo docker-registry buildah

# Istio and Kubernetes manifests against their schemas (the Istio kinds only where Istio's
# CRDs lie beside the clone, as in CI), the compose file and its images, the module's OCI
# image through a registry, the WasmPlugins' pluginConfig in a real Envoy, the demo's checker.
deploy-test: deploy-tools $(DEPLOY_PY_READY) images
	$(PYTHON) integration/validate.py istio/*.yaml istio/*/kustomization.yaml
	ENVOY=$(abspath $(ENVOY)) $(PYTHON) -m pytest -q integration/tests --ignore=integration/tests/test_quickstart.py

# README.md's quick start and envoy/README.md's blocks, run as written in a fresh clone of
# the committed HEAD (integration/tests/test_quickstart.py). The clone's build shares this
# checkout's cargo output (and its unchanged files' times), so it compiles only what differs.
quickstart-test: $(DEPLOY_PY_READY)
	CARGO_TARGET_DIR=$(abspath $(TARGET_DIR)) $(PYTHON) -m pytest -q integration/tests/test_quickstart.py

# The module as an OCI image without Docker: scripts/wasm_oci.py writes an OCI image layout
# with both variants of the Wasm image specification (compat: plugin.wasm in one tar+gzip
# layer; artifact: the Wasm media types); skopeo pushes one, digests unchanged.
#   make oci                                          the layout in $(OCI_LAYOUT)
#   make oci OCI_IMAGE=registry.example.com/meshtrace/meshtrace:$(VERSION)   and push it
#   OCI_VARIANT=artifact   OCI_TLS_VERIFY=false (a registry over plain HTTP)
OCI_LAYOUT := dist/oci/meshtrace
OCI_IMAGE ?=
OCI_VARIANT ?= compat
OCI_TLS_VERIFY ?= true
oci: wasm
	@mkdir -p $(dir $(OCI_LAYOUT))
	@python3 scripts/wasm_oci.py $(WASM) $(OCI_LAYOUT) --version $(VERSION) > $(OCI_LAYOUT).digests
	@digest=$$(awk '$$1 == "$(OCI_VARIANT)" {print $$2}' $(OCI_LAYOUT).digests); \
	if [ -z "$$digest" ]; then echo "oci: OCI_VARIANT is compat or artifact, not $(OCI_VARIANT)"; exit 1; fi; \
	echo "wrote $(OCI_LAYOUT): an OCI image layout with the variants compat and artifact"; \
	if [ -n "$(OCI_IMAGE)" ]; then \
	  scripts/ensure-deb.sh skopeo && \
	  skopeo copy -q --preserve-digests --dest-tls-verify=$(OCI_TLS_VERIFY) \
	    oci:$(OCI_LAYOUT):$(OCI_VARIANT) docker://$(OCI_IMAGE) || exit 1; \
	  echo "pushed the $(OCI_VARIANT) variant to $(OCI_IMAGE)"; \
	fi; \
	echo "WasmPlugin spec ($(OCI_VARIANT) variant):"; \
	echo "  url: oci://$(or $(OCI_IMAGE),<registry>/meshtrace:$(VERSION))"; \
	echo "  sha256: $${digest#sha256:}"

# For clusters without a registry: serve dist/meshtrace.wasm over HTTP and give Istio its digest.
wasm-sha256: wasm
	@sum=$$(sha256sum $(WASM) | cut -d' ' -f1); \
	echo "$$sum  $(WASM)"; \
	echo "WasmPlugin spec:"; \
	echo "  url: http://<host>:<port>/meshtrace.wasm"; \
	echo "  sha256: $$sum"

# The root file systems of the compose file's collector and sidecar images, from local
# artefacts (integration/docker/rootfs.py): both images build FROM scratch, nothing pulled.
images: build
	$(PYTHON) integration/docker/rootfs.py
