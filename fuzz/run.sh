#!/usr/bin/env bash
# make fuzz: runs every target (or FUZZ_TARGETS) for FUZZ_SECONDS each under libFuzzer, niced so it takes
# only idle CPU, then minimises what it learnt into the committed corpus (cargo fuzz cmin). A target may
# carry its own budget in FUZZ_TARGETS as `name:seconds` (`request_path:600 b3`).
#
# A crash does not stop the other targets: it is counted in the table and the run exits 1 at the end with
# the input's path: minimise it (cargo fuzz tmin), fix the code, and commit the input under
# fuzz/regressions/<target>/ so `make test` replays it for good.
#
# Each run appends one row per target to fuzz/runs.tsv, committed (seconds, executions, corpus before and
# after, crashes, load average): the figures RELIABILITY.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^meshtrace-fuzz$')}
JOBS=${FUZZ_JOBS:-1}
FUZZ=(nice -n 19 ionice -c3 cargo +nightly fuzz)
# Its own target directory: a long fuzz build never holds the lock of the ordinary builds.
FLAGS=(-s none --debug-assertions --features libfuzzer --target-dir target/fuzz)
mkdir -p fuzz/artifacts
STATS=fuzz/runs.tsv
[ -f "$STATS" ] || printf 'finished_utc\ttarget\tseconds\texecutions\tcorpus_before\tcorpus_after\tcrashes\tload_before\n' > "$STATS"
# Every target up front when all run; otherwise `cargo fuzz run` builds just the ones named.
[ -n "${FUZZ_TARGETS:-}" ] || "${FUZZ[@]}" build "${FLAGS[@]}"
failed=()
for spec in $TARGETS; do
  t=${spec%%:*}
  secs=$SECONDS_EACH
  [ "$spec" != "$t" ] && secs=${spec#*:}
  run=fuzz/run-corpus/$t
  mkdir -p "$run" "fuzz/corpus/$t" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  load=$(cut -d' ' -f1 /proc/loadavg)
  before=$(ls "fuzz/corpus/$t" | wc -l)
  log=fuzz/artifacts/$t.log
  echo "== $t: ${secs}s (load average $load)"
  crashes=0
  if ! "${FUZZ[@]}" run "${FLAGS[@]}" "$t" "$run" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
      -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    tail -40 "$log"
    crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    echo "fuzz: $t failed; the input is under fuzz/artifacts/$t/ (see $log)" >&2
    failed+=("$t")
  fi
  # With -jobs, libFuzzer writes each job's output (and its final stats) to fuzz-<n>.log where it runs.
  cat fuzz-*.log >> "$log" 2>/dev/null || true
  rm -f fuzz-*.log
  execs=$(awk '/stat::number_of_executed_units/ {s+=$2} END {print s+0}' "$log")
  cp -n "$run"/* "fuzz/corpus/$t/" 2>/dev/null || true
  "${FUZZ[@]}" cmin "${FLAGS[@]}" "$t" "fuzz/corpus/$t" -- -max_len=8192 >/dev/null 2>&1 || true
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "$execs" "$before" \
    "$(ls "fuzz/corpus/$t" | wc -l)" "$crashes" "$load" >> "$STATS"
done
column -t "$STATS"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}" >&2
  exit 1
fi
