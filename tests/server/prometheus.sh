#!/bin/bash
# A real Prometheus (Debian's prometheus, private data directory, loopback,
# scrape_interval 1s) scrapes berth's metrics listener; after a known number
# of pushes its HTTP API (/api/v1/query) returns the values berth counted.
. "$top_srcdir/tests/lib.sh"

command -v prometheus >/dev/null || skip_all "prometheus (Debian package prometheus) is not installed"
command -v jq >/dev/null || skip_all "jq is not installed"

BR_PORT=$(free_port)
M_PORT=$(free_port)
P_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
P_URL="http://127.0.0.1:$P_PORT"
cat >"$BR_TMP/c.yaml" <<EOF
listen: ["127.0.0.1:$BR_PORT"]
storage: {root: $BR_TMP/store, fsync: false}
metrics: {listen: "127.0.0.1:$M_PORT"}
EOF
ok "berth starts with metrics.listen" br_serve "$BR_TMP/c.yaml"

mkdir -p "$BR_TMP/prom"
cat >"$BR_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: berth
    static_configs:
      - targets: ["127.0.0.1:$M_PORT"]
EOF
prometheus --config.file="$BR_TMP/prometheus.yml" --storage.tsdb.path="$BR_TMP/prom" \
    --web.listen-address="127.0.0.1:$P_PORT" >"$BR_TMP/prometheus.log" 2>&1 &
P_PID=$!
at_exit "kill $P_PID 2>/dev/null; wait $P_PID 2>/dev/null"

# query EXPR — the value of an instant query's first result, or nothing.
query() {
    curl -s --max-time 5 -G "$P_URL/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // empty' 2>/dev/null
}
# wait_value EXPR WANT — polls Prometheus until EXPR is WANT (up to 60 s).
wait_value() {
    local i v=""
    for i in $(seq 1 120); do
        v=$(query "$1")
        [ "$v" = "$2" ] && break
        sleep 0.5
    done
    printf '%s' "$v"
}

is "$(wait_value 'up{job="berth"}' 1)" 1 "Prometheus scrapes berth (up == 1)"

# Four pushes: a layer and a config each (monolithic uploads), then a
# manifest tagged tN.
MT=application/vnd.oci.image.manifest.v1+json
for n in 1 2 3 4; do
    printf 'layer %d %s' "$n" "$RANDOM" >"$BR_TMP/l"
    printf '{"n":%d}' "$n" >"$BR_TMP/c"
    ld=sha256:$(sha256sum "$BR_TMP/l" | cut -d' ' -f1)
    cd=sha256:$(sha256sum "$BR_TMP/c" | cut -d' ' -f1)
    for f in l c; do
        d=sha256:$(sha256sum "$BR_TMP/$f" | cut -d' ' -f1)
        curl -s -o /dev/null -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$BR_TMP/$f" \
            "$BR_URL/v2/prom/app/blobs/uploads/?digest=$d"
    done
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
        "$MT" "$cd" "$(stat -c %s "$BR_TMP/c")" "$ld" "$(stat -c %s "$BR_TMP/l")" >"$BR_TMP/m"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $MT" --data-binary "@$BR_TMP/m" "$BR_URL/v2/prom/app/manifests/t$n")
    [ "$code" = 201 ] || diag "push $n: manifest PUT $code"
done

is "$(wait_value 'sum(berth_http_requests_total{route="manifest",method="PUT",status="2xx"})' 4)" 4 \
    "Prometheus reads 4 manifest PUTs back"
is "$(wait_value 'berth_store_tags' 4)" 4 "and 4 tags in the store"
is "$(wait_value 'sum(berth_http_requests_total{route="upload",method="POST",status="2xx"})' 8)" 8 "and 8 blob uploads"
is "$(wait_value 'berth_http_request_duration_seconds_count{route="manifest",method="PUT"}' 4)" 4 "the PUT latency histogram counts 4"
# Over the counts since start (a rate() of a series whose every increase came
# before its first sample would be 0/0).
q=$(query 'histogram_quantile(0.5, sum by (le) (berth_http_request_duration_seconds_bucket{route="manifest",method="PUT"}))')
like "$q" '^[0-9.e+-]+$' "histogram_quantile over the PUT latency gives a number of seconds ($q)"

kill "$P_PID"
wait "$P_PID" 2>/dev/null
ok "Prometheus stopped" sh -c "! kill -0 $P_PID 2>/dev/null"
ok "berth stops cleanly" br_stop
no_sanitizer_report "$BR_TMP/server.log"

done_testing
