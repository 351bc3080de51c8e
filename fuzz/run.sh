#!/usr/bin/env bash
# make fuzz: runs every target (or FUZZ_TARGETS) for FUZZ_SECONDS each under libFuzzer, niced so it takes
# only idle CPU, then minimises what it learnt into the committed corpus (cargo fuzz cmin). A crash stops
# the run with the input's path: minimise it (cargo fuzz tmin), fix the code, and commit the input under
# fuzz/regressions/<target>/ so `make test` replays it for good.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^meshtrace-fuzz$')}
JOBS=${FUZZ_JOBS:-1}
FUZZ=(nice -n 19 ionice -c3 cargo +nightly fuzz)
# Its own target directory: a long fuzz build never holds the lock of the ordinary builds.
FLAGS=(-s none --debug-assertions --features libfuzzer --target-dir target/fuzz)
STATS=fuzz/artifacts/last-run.tsv
"${FUZZ[@]}" build "${FLAGS[@]}"
mkdir -p fuzz/artifacts
printf 'target\tseconds\texecutions\tcorpus_files\tload_before\n' > "$STATS"
for t in $TARGETS; do
  run=fuzz/run-corpus/$t
  mkdir -p "$run" "fuzz/corpus/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  load=$(cut -d' ' -f1 /proc/loadavg)
  log=fuzz/artifacts/$t.log
  echo "== $t: ${SECONDS_EACH}s (load average $load)"
  if ! "${FUZZ[@]}" run "${FLAGS[@]}" "$t" "$run" "fuzz/corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
      -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t failed; the input is under fuzz/artifacts/$t/ (see $log)" >&2
    exit 1
  fi
  execs=$(grep -h 'stat::number_of_executed_units' "$log" fuzz/fuzz-*.log 2>/dev/null | awk '{s+=$2} END {print s+0}')
  rm -f fuzz/fuzz-*.log
  cp -n "$run"/* "fuzz/corpus/$t/" 2>/dev/null || true
  "${FUZZ[@]}" cmin "${FLAGS[@]}" "$t" "fuzz/corpus/$t" -- -max_len=8192 >/dev/null 2>&1
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$SECONDS_EACH" "$execs" "$(ls "fuzz/corpus/$t" | wc -l)" "$load" >> "$STATS"
done
column -t "$STATS"
