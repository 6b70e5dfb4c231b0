#!/usr/bin/env bash
# Makes docs/operator-view.png, the README's picture of the operator page:
# a demo swarm on loopback (a tracker with --http, three seeders, two slow
# downloaders half-way through a file, an offline account) and headless
# Chromium's screenshot of the page. Everything it starts stops on exit.
#   docs/operator-view.sh            # uses .build/debug/shoal
#   SHOAL=.build/release/shoal docs/operator-view.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shoal=${SHOAL:-.build/debug/shoal}
out=${OUT:-docs/operator-view.png}
dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
export SHOAL_KNOWN_TRACKERS=$dir/known SHOAL_PASSWORD=demo-password SHOAL_EXIT_WITH_PARENT=1

"$shoal" tracker --port 0 --db "$dir/tracker.sqlite" --http 0 >"$dir/tracker.out" 2>"$dir/tracker.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^operator view on' "$dir/tracker.out" && break; sleep 0.1; done
tracker=127.0.0.1:$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$dir/tracker.out")
page=$(sed -n 's/^operator view on \(.*\)$/\1/p' "$dir/tracker.out")
for user in maria nikos olga pavel quentin rosa; do "$shoal" register --user "$user" --tracker "$tracker" >/dev/null; done

mkdir -p "$dir/olga" "$dir/pavel" "$dir/quentin" "$dir/nikos-copy"
head -c 40000000 /dev/urandom >"$dir/olga/holiday-video.mkv"
"$shoal" seed --user maria --dir Fixtures/peer_1 --tracker "$tracker" >/dev/null 2>&1 & pids+=($!)
"$shoal" seed --user olga --dir "$dir/olga" --tracker "$tracker" >/dev/null 2>&1 & pids+=($!)
sleep 2
# nikos fetches maria's notes (a download for her counters), then seeds his folder.
"$shoal" get notes.txt --user nikos --dir "$dir/nikos-copy" --tracker "$tracker" >/dev/null 2>&1
cp -r Fixtures/peer_2/. "$dir/nikos-copy/"
"$shoal" seed --user nikos --dir "$dir/nikos-copy" --tracker "$tracker" >/dev/null 2>&1 & pids+=($!)
# Two slow downloaders: partial holders of the video.
"$shoal" get holiday-video.mkv --user pavel --dir "$dir/pavel" --tracker "$tracker" --max-download 1500KB/s >/dev/null 2>&1 & pids+=($!)
"$shoal" get holiday-video.mkv --user quentin --dir "$dir/quentin" --tracker "$tracker" --max-download 1MB/s >/dev/null 2>&1 & pids+=($!)
sleep 9

token=$(cat "$dir/tracker.sqlite-operator-token")
root=()
[ "$(id -u)" = 0 ] && root=(--no-sandbox)
chromium --headless "${root[@]}" --disable-gpu --user-data-dir="$dir/chromium" --hide-scrollbars \
    --window-size=1280,860 --virtual-time-budget=3000 --screenshot="$out" "${page}?token=${token}" 2>/dev/null
echo "wrote $out"
