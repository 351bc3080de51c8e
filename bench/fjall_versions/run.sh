#!/bin/bash
# Alternating runs: v2 v3 v2 v3 ... ; usage: ./run.sh [rounds=2] [batches=60000]
cd "$(dirname "$0")"
ROUNDS=${1:-2}; BATCHES=${2:-60000}
nice -n 10 cargo build --release -q
for r in $(seq 1 "$ROUNDS"); do
  for v in v2 v3; do
    echo "== round $r $v $(date -u +%T) loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"
    nice -n 10 ./target/release/fjall-versions $v ./data-$v "$BATCHES" 50
    rm -rf ./data-$v
  done
done
