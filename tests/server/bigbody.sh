#!/bin/bash
# One large blob in ONE request (a single PATCH), over HTTP/1.1 and over h2c:
# digest verified on PUT and GET, berth's anonymous memory stays bounded (the
# body spills to a file under BR_ROOT/tmp and is hashed/written in 1 MiB
# slices), /v2/ stays responsive while the body is processed, and the spill
# files are gone afterwards.
#
# Size: BR_BIG_SIZE in MiB (default 512). For a manual run with a 4 GiB body:
#   BR_BIG_SIZE=4096 BERTH=$PWD/berth top_srcdir=/work/main bash tests/server/bigbody.sh
# Needs 3x the size free on the filesystem of $TMPDIR (else skipped).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

SIZE_MIB=${BR_BIG_SIZE:-512}
SIZE=$((SIZE_MIB << 20))
RSS_BOUND_MIB=${BR_BIG_RSS_BOUND:-256}
# Responsiveness bound for /v2/ during the upload; sanitizer builds run slower.
LAT_BOUND=1.0
[ "${BR_SANITIZED:-0}" = 1 ] && LAT_BOUND=5.0
free_kib=$(df -Pk "$BR_TMP" | awk 'NR==2 {print $4}')
[ "$free_kib" -ge $((SIZE_MIB * 3 * 1024)) ] ||
    skip_all "need $((SIZE_MIB * 3)) MiB free under $BR_TMP, have $((free_kib / 1024)) MiB"

ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }



head -c "$SIZE" /dev/urandom >"$BR_TMP/big"
dg="sha256:$(sha256_of "$BR_TMP/big")"
diag "blob: $SIZE_MIB MiB, $dg"

# sample_rss OUT — samples VmRSS/RssAnon/RssFile of berth every 50 ms into OUT until killed.
sample_rss() {
    while kill -0 "$BR_PID" 2>/dev/null; do
        awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s=%s ", $1, $2} END {print ""}' "/proc/$BR_PID/status" 2>/dev/null
        sleep 0.05
    done >"$1"
}
peak() { grep -o "$1:=[0-9]*" "$2" | cut -d= -f2 | sort -n | tail -1; }

# probe_v2 OUT — GET /v2/ every 100 ms (as 127.0.0.1), writes each time_total; until killed.
probe_v2() {
    while :; do
        curl -s -m 5 -o /dev/null -w '%{http_code} %{time_total}\n' "$BR_URL/v2/"
        sleep 0.1
    done >"$1"
}

# push NAME CURLFLAGS — one PATCH of the whole file, then PUT; verifies and reports.
push() {
    local name=$1 flags=$2 loc t0 t1
    is "$(curl -s $flags -X POST -D "$BR_TMP/h" -o /dev/null -w '%{http_code}' "$BR_URL/v2/big/$name/blobs/uploads/")" 202 "$name: start upload"
    loc=$(header Location)
    sample_rss "$BR_TMP/rss.$name" &
    local rss_pid=$!
    probe_v2 "$BR_TMP/probe.$name" &
    local probe_pid=$!
    t0=$(date +%s%N)
    is "$(curl -s $flags -X PATCH -T "$BR_TMP/big" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        -D "$BR_TMP/h" -o /dev/null -w '%{http_code}' "$BR_URL$loc")" 202 "$name: one PATCH of $SIZE_MIB MiB → 202"
    t1=$(date +%s%N)
    kill "$rss_pid" "$probe_pid" 2>/dev/null
    wait "$rss_pid" "$probe_pid" 2>/dev/null
    is "$(header Range)" "0-$((SIZE - 1))" "$name: Range covers the whole body"
    loc=$(header Location)
    is "$(curl -s $flags -X PUT -D "$BR_TMP/h" -o /dev/null -w '%{http_code}' "$BR_URL$loc?digest=$dg")" 201 "$name: PUT ?digest → 201 (digest verified)"
    is "$(header Docker-Content-Digest)" "$dg" "$name: Docker-Content-Digest on 201"
    is "$(curl -s $flags "$BR_URL/v2/big/$name/blobs/$dg" | sha256sum | cut -d' ' -f1)" "${dg#sha256:}" "$name: GET body has the digest"
    local anon file vm n slow maxlat
    anon=$(peak RssAnon "$BR_TMP/rss.$name")
    file=$(peak RssFile "$BR_TMP/rss.$name")
    vm=$(peak VmRSS "$BR_TMP/rss.$name")
    diag "$name: PATCH took $(((t1 - t0) / 1000000)) ms; peak VmRSS $((vm / 1024)) MiB, RssAnon $((anon / 1024)) MiB, RssFile $((file / 1024)) MiB"
    if [ "${BR_SANITIZED:-0}" = 1 ]; then
        diag "$name: RssAnon bound not asserted under sanitizers (quarantine holds freed memory)"
    else
        ok "$name: peak RssAnon $((anon / 1024)) MiB < $RSS_BOUND_MIB MiB" test "$anon" -lt $((RSS_BOUND_MIB * 1024))
    fi
    n=$(wc -l <"$BR_TMP/probe.$name")
    slow=$(awk -v b="$LAT_BOUND" '$1 != 200 || $2 >= b' "$BR_TMP/probe.$name" | wc -l)
    maxlat=$(awk '{print $2}' "$BR_TMP/probe.$name" | sort -n | tail -1)
    diag "$name: $n /v2/ probes during the upload, slowest ${maxlat:-?} s"
    ok "$name: every concurrent /v2/ GET answered within $LAT_BOUND s ($slow of $n not)" test "$n" -gt 0 -a "$slow" -eq 0
    local i
    for i in $(seq 1 40); do
        [ -z "$(ls -A "$BR_ROOT/tmp" 2>/dev/null)" ] && break
        sleep 0.05
    done
    is "$(ls -A "$BR_ROOT/tmp" 2>/dev/null | tr '\n' ' ')" "" "$name: no spill files left under BR_ROOT/tmp"
    ok "$name: no upload files left under BR_ROOT/uploads" test -z "$(find "$BR_ROOT/uploads" -type f 2>/dev/null)"
}

push http1 ""
# The blob's own file stays in the store (same content is pushed again below,
# so it costs no more disk than the spill and upload files of the second push).
curl --http2-prior-knowledge -s -o /dev/null "$BR_URL/v2/" 2>/dev/null && push h2c "--http2-prior-knowledge" ||
    diag "curl cannot do h2c: HTTP/2 part skipped"
rm -f "$BR_TMP/big"

# A crude watch on the store's size: one copy of the blob, not two.
used=$(du -sk "$BR_ROOT" | cut -f1)
diag "store uses $((used / 1024)) MiB after both pushes"
ok "the store holds one copy of the blob (< 1.2 x size)" test "$used" -lt $((SIZE_MIB * 1024 * 12 / 10))

ok "server still answers /v2/" v2_ok
ok "server process alive" server_alive
ok "clean exit" br_stop
ok "no sanitizer report or crash in the server log" server_log_clean
done_testing
