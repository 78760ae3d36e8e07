#!/bin/bash
# What the metrics cost on the hottest path: manifest GET req/s with
# metrics.listen unset (nothing counted) and set (every request counted, and
# /metrics scraped once a second while the load runs). Not part of make check.
#
#   bench/metrics.sh                          5 rounds, 5 s per run
#   METRICS_ROUNDS=9 METRICS_SECONDS=10 bench/metrics.sh
#   BERTH=/path/to/berth bench/metrics.sh
#
# One store with one 400-byte-class OCI manifest (bench/manifest:v1). Each
# round runs the two servers in turn on that store (one berth per store), the
# order flipping every round so a slow drift of the machine hits both alike:
# start berth, warm up 1 s, then h2load for METRICS_SECONDS with HTTP/1.1
# keep-alive (--h1) and with h2c prior knowledge (-m1), 64 connections each,
# GET by tag with the manifest Accept header. Prints each run, then the
# median req/s of the rounds per protocol, off and on, and how far apart (the
# target is at most 3%). Needs h2load (nghttp2-client) and curl.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BERTH=${BERTH:-$top/berth}
ROUNDS=${METRICS_ROUNDS:-5}
DUR=${METRICS_SECONDS:-5}
CONNS=${METRICS_CONNECTIONS:-64}
ACCEPT=application/vnd.oci.image.manifest.v1+json
command -v h2load >/dev/null || { echo "bench/metrics.sh: h2load not found (apt-get install nghttp2-client)" >&2; exit 1; }
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/berth-metrics-bench.XXXXXX")
pid=""
scraper=""
stop_server() {
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null && wait "$scraper" 2>/dev/null || true
    scraper=""
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    pid=""
}
trap 'stop_server; rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)
url="http://127.0.0.1:$port"
cat >"$tmp/off.yaml" <<EOF
listen: "127.0.0.1:$port"
storage: {root: $tmp/store}
log: {level: warn, access_log: false}
gc: {interval: 0}
EOF
cp "$tmp/off.yaml" "$tmp/on.yaml"
printf 'metrics: {listen: "127.0.0.1:%s"}\n' "$mport" >>"$tmp/on.yaml"

start_server() { # off|on
    "$BERTH" serve -c "$tmp/$1.yaml" >>"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do curl -s -o /dev/null "$url/v2/" && break; sleep 0.05; done
    if [ "$1" = on ]; then
        (while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; done) &
        scraper=$!
    fi
}

# Seed: a config, a layer and the manifest, through the API.
start_server off
printf '{"architecture":"amd64","os":"linux"}' >"$tmp/config"
head -c 4096 /dev/urandom >"$tmp/layer"
for f in config layer; do
    d=sha256:$(sha256sum "$tmp/$f" | cut -d' ' -f1)
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/$f" \
        "$url/v2/bench/manifest/blobs/uploads/?digest=$d"
    eval "${f}_d=$d ${f}_s=$(stat -c %s "$tmp/$f")"
done
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$ACCEPT" "$config_d" "$config_s" "$layer_d" "$layer_s" >"$tmp/manifest"
curl -sf -o /dev/null -X PUT -H "Content-Type: $ACCEPT" --data-binary "@$tmp/manifest" "$url/v2/bench/manifest/manifests/v1"
stop_server

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

run() { # proto → "req/s cpu-µs-per-request"
    local args=(-m1) c0 c1 n
    [ "$1" = h1 ] && args=(--h1)
    c0=$(cpu_ticks)
    timeout $((DUR + 30)) h2load "${args[@]}" -c"$CONNS" -t2 -D"$DUR" -H "Accept: $ACCEPT" \
        "$url/v2/bench/manifest/manifests/v1" >"$tmp/h2load.out" 2>&1 || true
    c1=$(cpu_ticks)
    local ok rps
    ok=$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$tmp/h2load.out")
    rps=$(sed -nE 's/^finished in [0-9.]+m?s, ([0-9.]+) req\/s.*/\1/p' "$tmp/h2load.out")
    if [ -z "$rps" ] || [ "${ok:-0}" = 0 ]; then
        echo "error error"
        return
    fi
    # server CPU (user + system) per answered request, in microseconds: far
    # less sensitive than req/s to other work on a shared machine
    printf '%.0f %.2f\n' "$rps" "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $ok" | bc -l)"
}

echo "manifest GET by tag, $CONNS connections, ${DUR}s per run, $ROUNDS rounds, $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A res cpu
for r in $(seq 1 "$ROUNDS"); do
    order="off on"
    [ $((r % 2)) = 0 ] && order="on off"
    for mode in $order; do
        start_server "$mode"
        h2load --h1 -c8 -t1 -D1 -H "Accept: $ACCEPT" "$url/v2/bench/manifest/manifests/v1" >/dev/null 2>&1 || true
        for proto in h1 h2c; do
            read -r v c < <(run "$proto")
            res[$mode.$proto]="${res[$mode.$proto]:-} $v"
            cpu[$mode.$proto]="${cpu[$mode.$proto]:-} $c"
            echo "round $r metrics $mode $proto: $v req/s, $c µs server CPU per request"
        done
        stop_server
    done
done

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "error"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%+.1f%%", (a / b - 1) * 100; else print "n/a" }'; }
printf '%-5s %10s %10s %8s   %12s %12s %8s\n' proto "off req/s" "on req/s" "on/off" "off µs/req" "on µs/req" "on/off"
for proto in h1 h2c; do
    off=$(echo "${res[off.$proto]}" | median)
    on=$(echo "${res[on.$proto]}" | median)
    coff=$(echo "${cpu[off.$proto]}" | median)
    con=$(echo "${cpu[on.$proto]}" | median)
    printf '%-5s %10s %10s %8s   %12s %12s %8s\n' "$proto" "$off" "$on" "$(ratio "$on" "$off")" "$coff" "$con" "$(ratio "$con" "$coff")"
done
echo "(medians over the rounds; req/s on/off: higher is better, CPU on/off: lower is better)"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
