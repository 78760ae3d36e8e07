#!/usr/bin/env bash
# One big blob, pushed in one PATCH and pulled back, side by side with Debian's
# docker-registry (distribution 2.8), over HTTP/1.1 (plain) and HTTP/2 (TLS with
# ALPN, since distribution has no h2c), plus berth over h2c. Prints medians of
# ROUNDS rounds (A B A B), MB/s, and each server's peak RSS (VmHWM) and peak
# RssAnon.
#
#   BERTH=/path/to/berth bench/big_blob.sh [SIZE_MIB] [ROUNDS]     (default 1024 3)
#
# Needs: docker-registry, curl, openssl, python3. Only 127.0.0.1 is used;
# everything started is stopped, and the temp dir is removed.
set -euo pipefail
SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
BERTH=${BERTH:?set BERTH to the berth binary}
REG=/usr/bin/docker-registry
[ -x "$REG" ] || { echo "docker-registry is not installed (apt-get install docker-registry)" >&2; exit 2; }
T=$(mktemp -d "${BENCH_TMP:-/tmp}/bigblob.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -keyout "$T/key.pem" -out "$T/cert.pem" \
    -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
head -c $((SIZE_MIB << 20)) /dev/urandom >"$T/blob"
DIGEST=sha256:$(sha256sum "$T/blob" | cut -c1-64)

# Peak VmHWM / RssAnon of a pid, sampled every 100 ms into a file until killed.
sample() {
    while kill -0 "$1" 2>/dev/null; do
        awk '/^VmHWM|^RssAnon/ {print $1, $2}' "/proc/$1/status" 2>/dev/null >>"$2"
        sleep 0.1
    done
}

start_berth() { # start_berth NAME TLS(0|1)
    local p; p=$(port)
    local tls=()
    [ "$2" = 1 ] && tls=(env BERTH_TLS_CERTIFICATE="$T/cert.pem" BERTH_TLS_KEY="$T/key.pem")
    "${tls[@]}" "$BERTH" serve --listen "127.0.0.1:$p" --root "$T/$1" >"$T/$1.log" 2>&1 &
    echo "$! $p"
}
start_dist() { # start_dist NAME TLS(0|1)
    local p; p=$(port)
    {
        echo "version: 0.1"
        echo "log: {level: warn}"
        echo "storage: {filesystem: {rootdirectory: $T/$1}, delete: {enabled: true}}"
        if [ "$2" = 1 ]; then
            echo "http: {addr: 127.0.0.1:$p, tls: {certificate: $T/cert.pem, key: $T/key.pem}}"
        else
            echo "http: {addr: 127.0.0.1:$p}"
        fi
    } >"$T/$1.yml"
    env -u REGISTRY_AUTH_FILE "$REG" serve "$T/$1.yml" >"$T/$1.log" 2>&1 &
    echo "$! $p"
}
wait_up() { for _ in $(seq 1 100); do curl -sk -o /dev/null "$1/v2/" && return 0; sleep 0.1; done; return 1; }

# push URL CURLFLAGS → seconds for the one PATCH (+ PUT); pull → seconds for GET
push_once() {
    local url=$1 flags=$2 loc t0 t1
    loc=$(curl -sk $flags -X POST -D - -o /dev/null "$url/v2/bench/big/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    case $loc in http*) ;; *) loc="$url$loc" ;; esac
    t0=$(date +%s.%N)
    loc=$(curl -sk $flags -X PATCH -H 'Content-Type: application/octet-stream' -T "$T/blob" -D - -o /dev/null "$loc" |
        tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    case $loc in http*) ;; *) loc="$url$loc" ;; esac
    case $loc in *\?*) loc="$loc&digest=$DIGEST" ;; *) loc="$loc?digest=$DIGEST" ;; esac
    local code; code=$(curl -sk $flags -X PUT -o /dev/null -w '%{http_code}' "$loc")
    t1=$(date +%s.%N)
    [ "$code" = 201 ] || { echo "error"; return; }
    echo "$t1 - $t0" | bc
}
pull_once() {
    local url=$1 flags=$2 t0 t1 sum
    t0=$(date +%s.%N)
    sum=$(curl -sk $flags "$url/v2/bench/big/blobs/$DIGEST" | sha256sum | cut -c1-64)
    t1=$(date +%s.%N)
    [ "sha256:$sum" = "$DIGEST" ] || { echo "error"; return; }
    echo "$t1 - $t0" | bc
}
delete_blob() { curl -sk $2 -X DELETE -o /dev/null "$1/v2/bench/big/blobs/$DIGEST" || true; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "error"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

run_case() { # run_case LABEL SERVER(berth|dist) TLS CURLFLAGS SCHEME
    local label=$1 kind=$2 tls=$3 flags=$4 scheme=$5 pid p name
    name=$(printf '%s' "$label" | tr -c 'a-z0-9' '_')
    read -r pid p < <(start_$kind "$name" "$tls")
    pids+=("$pid")
    local url="$scheme://127.0.0.1:$p"
    wait_up "$url" || { echo "$label: server did not start" >&2; return; }
    sample "$pid" "$T/$name.rss" &
    local i
    for i in $(seq 1 "$ROUNDS"); do
        push_once "$url" "$flags" >>"$T/$name.push"
        pull_once "$url" "$flags" >>"$T/$name.pull"
        # Same digest every round: the store keeps one copy; the delete unlinks
        # it from the repository, so the next round uploads it in full again.
        delete_blob "$url" "$flags"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local push pull hwm anon
    push=$(grep -v error "$T/$name.push" | median)
    pull=$(grep -v error "$T/$name.pull" | median)
    hwm=$(awk '$1=="VmHWM:"{if($2>m)m=$2} END{print int(m/1024)}' "$T/$name.rss")
    anon=$(awk '$1=="RssAnon:"{if($2>m)m=$2} END{print int(m/1024)}' "$T/$name.rss")
    printf '%-22s push %7.1f MB/s   pull %7.1f MB/s   peak RSS %5d MiB   peak RssAnon %5d MiB   (%s push errors)\n' \
        "$label" "$(echo "$SIZE_MIB * 1.048576 / $push" | bc -l)" "$(echo "$SIZE_MIB * 1.048576 / $pull" | bc -l)" \
        "$hwm" "$anon" "$(grep -c error "$T/$name.push" || true)"
}

echo "one $SIZE_MIB MiB blob, one PATCH; medians of $ROUNDS rounds; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
run_case "berth http/1.1" berth 0 "--http1.1" http
run_case "distribution http/1.1" dist 0 "--http1.1" http
run_case "berth h2 (tls)" berth 1 "--http2" https
run_case "distribution h2 (tls)" dist 1 "--http2" https
run_case "berth h2c" berth 0 "--http2-prior-knowledge" http
