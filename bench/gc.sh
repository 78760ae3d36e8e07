#!/bin/bash
# Garbage collection on a large store, measured (not part of make check).
#
#   bench/gc.sh                       10,000 manifests x (config + 10 layers) = 110,000 blobs + 10,000 bodies
#   GC_MANIFESTS=2000 bench/gc.sh     smaller
#
# Needs a built tree (./configure && make): it compiles bench/gc_store.c
# against libbrstorage.a. Steps: build the store through the storage API
# (half the manifests deleted again, so about half the blobs are garbage);
# start berth on it; GET load (manifest by tag + one of its layers, keep-alive,
# GC_THREADS clients) for GC_BASE_SECONDS without a collection; the same load
# while `berth gc --grace 0` runs beside the server (a second process); then a
# dry run must find nothing left and fsck must find the store clean.
# Prints the collection's time and figures, and p50/p99 of both GETs without
# and during the collection.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BERTH=${BERTH:-$top/berth}
MANIFESTS=${GC_MANIFESTS:-10000}
LAYERS=${GC_LAYERS:-10}
THREADS=${GC_THREADS:-8}
BASE=${GC_BASE_SECONDS:-15}
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/berth-gc-bench.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

cc -O2 -D_GNU_SOURCE -I"$top" -include "$top/berth_config.h" "$top/bench/gc_store.c" "$top/libbrstorage.a" "$top/libbrcommon.a" \
    -llmdb -lcrypto -lpthread -o "$tmp/gc_store"
t0=$(date +%s.%N)
"$tmp/gc_store" "$tmp/store" "$MANIFESTS" "$((LAYERS - 1))" 100 "$tmp/live"
t1=$(date +%s.%N)
files=$(find "$tmp/store/blobs" -type f | wc -l)
echo "store: $files blob files, $MANIFESTS manifests ($(wc -l <"$tmp/live") live) built in $(echo "$t1 - $t0" | bc) s"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'gc:\n  interval: 0\nlog:\n  access_log: false\n' >"$tmp/berth.yaml"
"$BERTH" serve -c "$tmp/berth.yaml" --root "$tmp/store" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done

load() { python3 "$top/bench/lib/gcload.py" "$port" "$tmp/live" "$THREADS" "$1" "$tmp/stop"; }
load 3 >/dev/null # warm the page cache and connections
echo "without gc: $(load "$BASE")"
rm -f "$tmp/stop"
load 3600 >"$tmp/during.json" &
lp=$!
sleep 0.5 # the clients are connected and running
g0=$(date +%s.%N)
out=$("$BERTH" gc -c "$tmp/berth.yaml" --root "$tmp/store" --grace 0 | tail -n 1)
g1=$(date +%s.%N)
touch "$tmp/stop"
wait "$lp"
echo "during gc:  $(cat "$tmp/during.json")"
echo "collection: $out in $(echo "$g1 - $g0" | bc) s (server running, $THREADS clients reading)"
echo "after:      $("$BERTH" gc -c "$tmp/berth.yaml" --root "$tmp/store" --grace 0 --dry-run | tail -n 1)"
echo "fsck:       $("$BERTH" fsck -c "$tmp/berth.yaml" --root "$tmp/store" | tail -n 1)"
echo "files left: $(find "$tmp/store/blobs" -type f | wc -l)"
