#!/bin/bash
# What the metrics cost on the hottest path: manifest GET req/s with
# metrics.listen unset (nothing counted) and set (every request counted, and
# /metrics scraped once a second while the load runs). Not part of make check.
#
#   bench/metrics.sh                          9 pairs per protocol, 5 s per run (about 4 min)
#   METRICS_ROUNDS=15 METRICS_SECONDS=10 bench/metrics.sh
#   BERTH=/path/to/berth bench/metrics.sh
#
# Two servers run side by side on 127.0.0.1, each with its own store holding
# the same OCI manifest (bench/manifest:v1): one without metrics.listen, one
# with it. A pair is one h2load run against each, back to back, in an order
# that flips every pair, so a drift of the machine (other work on a shared
# host) hits both alike; the result is the median over the pairs of the
# on/off ratio. Runs: METRICS_SECONDS each, HTTP/1.1 keep-alive (--h1) and
# h2c prior knowledge (-m1), 64 connections, GET by tag with the manifest
# Accept header. Besides req/s, the server's CPU time (user + system, from
# /proc/PID/stat) per answered request, which other load on the machine
# disturbs less. The target is at most 3% apart. Needs h2load
# (nghttp2-client), curl and bc.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BERTH=${BERTH:-$top/berth}
ROUNDS=${METRICS_ROUNDS:-9}
DUR=${METRICS_SECONDS:-5}
CONNS=${METRICS_CONNECTIONS:-64}
ACCEPT=application/vnd.oci.image.manifest.v1+json
command -v h2load >/dev/null || { echo "bench/metrics.sh: h2load not found (apt-get install nghttp2-client)" >&2; exit 1; }
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/berth-metrics-bench.XXXXXX")
declare -A pid port
scraper=""
cleanup() {
    if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; fi
    for m in "${!pid[@]}"; do kill "${pid[$m]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port[off]=$(free_port)
port[on]=$(free_port)
mport=$(free_port)
for m in off on; do
    cat >"$tmp/$m.yaml" <<EOF
listen: "127.0.0.1:${port[$m]}"
storage: {root: $tmp/store-$m}
log: {level: warn, access_log: false}
gc: {interval: 0}
EOF
done
printf 'metrics: {listen: "127.0.0.1:%s"}\n' "$mport" >>"$tmp/on.yaml"

printf '{"architecture":"amd64","os":"linux"}' >"$tmp/config"
head -c 4096 /dev/urandom >"$tmp/layer"
for m in off on; do
    "$BERTH" serve -c "$tmp/$m.yaml" >>"$tmp/server-$m.log" 2>&1 &
    pid[$m]=$!
    url="http://127.0.0.1:${port[$m]}"
    for _ in $(seq 200); do curl -s -o /dev/null "$url/v2/" && break; sleep 0.05; done
    for f in config layer; do
        d=sha256:$(sha256sum "$tmp/$f" | cut -d' ' -f1)
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/$f" \
            "$url/v2/bench/manifest/blobs/uploads/?digest=$d"
        eval "${f}_d=$d ${f}_s=$(stat -c %s "$tmp/$f")"
    done
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
        "$ACCEPT" "$config_d" "$config_s" "$layer_d" "$layer_s" >"$tmp/manifest"
    curl -sf -o /dev/null -X PUT -H "Content-Type: $ACCEPT" --data-binary "@$tmp/manifest" "$url/v2/bench/manifest/manifests/v1"
    h2load --h1 -c8 -t1 -D1 -H "Accept: $ACCEPT" "$url/v2/bench/manifest/manifests/v1" >/dev/null 2>&1 || true # warm up
done
(while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; done) &
scraper=$!

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run() { # mode proto -> "req/s cpu-us-per-request"
    local args=(-m1) c0 c1 ok rps
    [ "$2" = h1 ] && args=(--h1)
    c0=$(cpu_ticks "${pid[$1]}")
    timeout $((DUR + 30)) h2load "${args[@]}" -c"$CONNS" -t2 -D"$DUR" -H "Accept: $ACCEPT" \
        "http://127.0.0.1:${port[$1]}/v2/bench/manifest/manifests/v1" >"$tmp/h2load.out" 2>&1 || true
    c1=$(cpu_ticks "${pid[$1]}")
    ok=$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$tmp/h2load.out")
    rps=$(sed -nE 's/^finished in [0-9.]+m?s, ([0-9.]+) req\/s.*/\1/p' "$tmp/h2load.out")
    if [ -z "$rps" ] || [ "${ok:-0}" = 0 ]; then
        echo "error error"
        return
    fi
    printf '%.0f %.3f\n' "$rps" "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $ok" | bc -l)"
}

median() {
    tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "error"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
pct() { awk -v r="$1" 'BEGIN { if (r == "error") print "n/a"; else printf "%+.1f%%", (r - 1) * 100 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.4f", a / b; else print "error" }'; }

echo "manifest GET by tag, $CONNS connections, ${DUR}s per run, $ROUNDS pairs per protocol, $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rps cpu rr cr
for r in $(seq 1 "$ROUNDS"); do
    order="off on"
    [ $((r % 2)) = 0 ] && order="on off"
    for proto in h1 h2c; do
        for mode in $order; do
            read -r v c < <(run "$mode" "$proto")
            rps[$mode.$proto]="${rps[$mode.$proto]:-} $v"
            cpu[$mode.$proto]="${cpu[$mode.$proto]:-} $c"
            printf -v "last_$mode" '%s %s' "$v" "$c"
        done
        read -r von con <<<"$last_on"
        read -r voff coff <<<"$last_off"
        rr[$proto]="${rr[$proto]:-} $(ratio "$von" "$voff")"
        cr[$proto]="${cr[$proto]:-} $(ratio "$con" "$coff")"
        echo "pair $r $proto: off $voff req/s $coff us/req, on $von req/s $con us/req"
    done
done
echo
printf '%-5s %10s %10s %10s   %10s %10s %10s\n' proto "off req/s" "on req/s" "on/off" "off us/req" "on us/req" "on/off"
for proto in h1 h2c; do
    printf '%-5s %10s %10s %10s   %10s %10s %10s\n' "$proto" "$(echo "${rps[off.$proto]}" | median)" \
        "$(echo "${rps[on.$proto]}" | median)" "$(pct "$(echo "${rr[$proto]}" | median)")" \
        "$(echo "${cpu[off.$proto]}" | median)" "$(echo "${cpu[on.$proto]}" | median)" "$(pct "$(echo "${cr[$proto]}" | median)")"
done
echo "(medians over the pairs; on/off is the median of the per-pair ratios: for req/s higher is better, for CPU per request lower)"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
