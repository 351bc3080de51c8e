# `make soak [SOAK_MINUTES=30]` (not part of `make test`): two sidecars and the collector under load, the
# collector killed and restarted every few minutes; writes bench/soak-results.json and bench/soak.svg.
SOAK_MINUTES ?= 30
# The soak measures latency, so it runs at the builders' priority by default: at nice 19 on a machine
# loaded by others, the sidecars starve and wrk's 2 s timeouts measure the machine, not the filter.
SOAK_NICE ?= 0

.PHONY: soak

soak: build $(VENV)/.ready
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	SOAK_MINUTES=$(SOAK_MINUTES) nice -n $(SOAK_NICE) $(PYTHON) soak/soak.py
