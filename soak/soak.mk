# `make soak [SOAK_MINUTES=30]` (not part of `make test`): two sidecars and the collector under load, the
# collector killed and restarted every few minutes; writes bench/soak-results.json and bench/soak.svg.
SOAK_MINUTES ?= 30

.PHONY: soak

soak: build $(VENV)/.ready
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	SOAK_MINUTES=$(SOAK_MINUTES) nice -n 19 ionice -c3 $(PYTHON) soak/soak.py
