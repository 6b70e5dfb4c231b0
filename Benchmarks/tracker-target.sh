#!/bin/bash
# Issue 11's target for one tracker: 500 clients, 31,000 req/s offered, p99
# of announce, list and details each within 20 ms. Runs shoal-bench tracker
# RUNS times (default 9), GROUP at a time (default 3) every PAUSE seconds
# (default 300): the host's speed changes over minutes, and runs spread out
# show it. Before each run it prints the host's single-core SHA-256 speed
# (openssl, 16 KiB blocks), then the run's p99s, the tracker's CPU for the
# phase, req/s served and the tracker's peak memory; a tally at the end.
#
#   swift build -c release && Benchmarks/tracker-target.sh
#   RUNS=3 PAUSE=0 Benchmarks/tracker-target.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-9} GROUP=${GROUP:-3} PAUSE=${PAUSE:-300} RATE=${RATE:-31000} LIMIT=${LIMIT:-20}
bench=.build/release/shoal-bench
[ -x "$bench" ] && [ -x .build/release/shoal ] || { echo "build first: swift build -c release" >&2; exit 1; }
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
met=0
for i in $(seq 1 "$RUNS"); do
    speed=$(openssl speed -seconds 1 sha256 2>/dev/null | awk '/^sha256/ {sub(/k$/, "", $NF); printf "%.2f GB/s", $NF / 1e6}')
    "$bench" tracker --clients 500 --rounds 60 --login-samples 0 --storm-clients 0 --password-rounds 1000 \
        --insecure --rate "$RATE" --plain-sockets --shoal .build/release/shoal > "$log/run$i" 2>&1 \
        || { echo "run $i failed:"; tail -5 "$log/run$i"; exit 1; }
    line=$(awk -v limit="$LIMIT" -v speed="$speed" '
        /^(announce|list|details) / { p[$1] = $5; if ($5 + 0 > limit + 0) miss = 1 }
        /^phase 2 \(/ { for (k = 1; k <= NF; k++) if ($k == "req/s,") served = $(k - 1) }
        /^phase 2 CPU/ { cpu = $5 }
        /^phase 2 machine/ { for (k = 1; k <= NF; k++) if ($k == "stolen") stolen = $(k - 2) }
        /VmHWM/ { for (k = 1; k <= NF; k++) if ($k == "MiB;") peak = $(k - 1) }
        END { printf "p99 %s / %s / %s ms | tracker CPU %s s | %s req/s | %s %% stolen | peak %s MiB | SHA-256 %s | %s",
              p["announce"], p["list"], p["details"], cpu, served, stolen, peak, speed, miss ? "missed" : "MET" }' "$log/run$i")
    echo "$(date +%H:%M:%S) run $i: $line"
    case "$line" in *MET) met=$((met + 1)) ;; esac
    if [ $((i % GROUP)) -eq 0 ] && [ "$i" -lt "$RUNS" ] && [ "$PAUSE" -gt 0 ]; then sleep "$PAUSE"; fi
done
echo "target (p99 <= $LIMIT ms for announce, list and details at $RATE req/s offered) met in $met of $RUNS runs"
