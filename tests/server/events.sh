#!/usr/bin/env bash
# Notifications (notifications.endpoints): a webhook receiver the test runs gets
# distribution-format envelopes and CloudEvents for pushes, pulls, mounts and
# deletes, in order, with the fields receivers written for registry:2 read;
# per-endpoint headers and ignore rules; events queued while the receiver is
# down are delivered when it is back, also after a kill -9 of berth; a full
# queue drops its oldest events and says how many.
. "$top_srcdir/tests/lib.sh"
command -v jq >/dev/null || skip_all "jq is not installed"

PW=alice-pw-9
printf '%s\n' "$PW" | "$BERTH" hash-password alice >"$BR_TMP/htpasswd"
EV="$BR_TMP/events.jsonl"
RPID=""
# receiver_start [STATUS] — (re)starts the receiver on $RPORT (a new one first)
receiver_start() {
    rm -f "$BR_TMP/rport"
    python3 "$top_srcdir/tests/server/webhook_receiver.py" "$EV" "$BR_TMP/rport" "${RPORT:-0}" "${1:-200}" &
    RPID=$!
    local i
    for i in $(seq 1 100); do [ -s "$BR_TMP/rport" ] && break; sleep 0.05; done
    RPORT=$(cat "$BR_TMP/rport")
}
receiver_stop() {
    [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
    RPID=""
}
at_exit receiver_stop
receiver_start

BR_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
CFG="$BR_TMP/berth.yaml"
M_PORT=$(free_port)
# conf QUEUE_SIZE
conf() {
    cat >"$CFG" <<YAML
listen: "127.0.0.1:$BR_PORT"
metrics: {listen: "127.0.0.1:$M_PORT"}
storage:
  root: $BR_TMP/store
auth:
  htpasswd: $BR_TMP/htpasswd
  rules:
    - {repository: "**", users: [alice], actions: ["*"]}
notifications:
  queue_size: $1
  endpoints:
    - name: dist
      url: http://127.0.0.1:$RPORT/dist
      headers: {Authorization: [Bearer s3cret], X-Extra: one}
      timeout: 2s
      backoff: 200ms
      threshold: 3
    - name: cloud
      url: http://127.0.0.1:$RPORT/ce
      format: cloudevents
      backoff: 200ms
      ignore: {actions: [pull, delete]}
    - name: manifests-only
      url: http://127.0.0.1:$RPORT/mo
      backoff: 200ms
      ignoredmediatypes: [application/octet-stream]
YAML
}
conf 1000
br_serve "$CFG" || { echo "Bail out! berth did not start"; exit 1; }

c() { curl -s -u "alice:$PW" -A "events-test/1" "$@"; }
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
# push_blob REPO FILE — monolithic POST; prints the status
push_blob() {
    c -o /dev/null -w '%{http_code}' -X POST --data-binary @"$2" -H 'Content-Type: application/octet-stream' \
        "$BR_URL/v2/$1/blobs/uploads/?digest=$(sha "$2")"
}
# events PATH — the events received on PATH so far, one compact JSON a line
events() {
    [ -f "$EV" ] || return 0
    if [ "$1" = /ce ]; then
        jq -c "select(.path == \"$1\") | .body" "$EV"
    else
        jq -c "select(.path == \"$1\") | .body.events[]" "$EV"
    fi
}
# wait_events PATH N — until N events arrived on PATH (30 s)
wait_events() {
    local i
    for i in $(seq 1 300); do
        [ "$(events "$1" | wc -l)" -ge "$2" ] && return 0
        sleep 0.1
    done
    echo "# only $(events "$1" | wc -l) of $2 events on $1"
    return 1
}

# ---- a push and a pull, curl-level ----------------------------------------------
printf 'layer one' >"$BR_TMP/layer"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$BR_TMP/config"
LD=$(sha "$BR_TMP/layer") CD=$(sha "$BR_TMP/config")
cat >"$BR_TMP/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CD","size":$(stat -c %s "$BR_TMP/config")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$LD","size":$(stat -c %s "$BR_TMP/layer")}]}
JSON
MD=$(sha "$BR_TMP/manifest")
MSIZE=$(stat -c %s "$BR_TMP/manifest")
is "$(push_blob team/app "$BR_TMP/layer")" 201 "push the layer"
is "$(push_blob team/app "$BR_TMP/config")" 201 "push the config"
is "$(c -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$BR_TMP/manifest" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' -H 'X-Request-Id: put-manifest-1' \
    "$BR_URL/v2/team/app/manifests/v1")" 201 "push the manifest as team/app:v1"
is "$(c -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$BR_URL/v2/team/app/manifests/v1")" 200 "pull the manifest by tag"
is "$(c -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$BR_URL/v2/team/app/manifests/v1")" 200 "HEAD of the manifest (no event)"
is "$(c -o /dev/null -w '%{http_code}' "$BR_URL/v2/team/app/blobs/$LD")" 200 "pull the layer"
is "$(c -o /dev/null -w '%{http_code}' -X POST "$BR_URL/v2/other/blobs/uploads/?mount=$LD&from=team/app")" 201 "mount the layer into other"
is "$(c -o /dev/null -w '%{http_code}' -X DELETE "$BR_URL/v2/team/app/manifests/v1")" 202 "delete the tag"

ok "dist: seven events arrive" wait_events /dist 7
is "$(events /dist | jq -r '[.action, .target.repository, (.target.digest // "-"), (.target.tag // "-")] | join(" ")' | tr '\n' ';')" \
    "push team/app $LD -;push team/app $CD -;push team/app $MD v1;pull team/app $MD v1;pull team/app $LD -;mount other $LD -;delete team/app - v1;" \
    "dist: push layer, push config, push manifest, pull manifest, pull layer, mount, delete tag, in order"
m=$(events /dist | sed -n 3p)
is "$(jq -r '.target.mediaType' <<<"$m")" application/vnd.oci.image.manifest.v1+json "manifest push: target.mediaType"
is "$(jq -r '"\(.target.size) \(.target.length)"' <<<"$m")" "$MSIZE $MSIZE" "manifest push: target.size and target.length"
is "$(jq -r '.target.url' <<<"$m")" "$BR_URL/v2/team/app/manifests/$MD" "manifest push: target.url"
is "$(jq -r '"\(.request.id) \(.request.method) \(.request.useragent) \(.request.host)"' <<<"$m")" \
    "put-manifest-1 PUT events-test/1 127.0.0.1:$BR_PORT" "manifest push: request id, method, useragent, host"
like "$(jq -r '.request.addr' <<<"$m")" '^127\.0\.0\.1:[0-9]+$' "manifest push: request.addr is host:port"
is "$(jq -r '.actor.name' <<<"$m")" alice "manifest push: actor.name"
like "$(jq -r '"\(.source.addr) \(.source.instanceID)"' <<<"$m")" ":$BR_PORT [0-9a-f-]{36}$" "manifest push: source.addr and instanceID"
like "$(jq -r '"\(.id) \(.timestamp)"' <<<"$m")" '^[0-9a-f-]{36} [0-9-]{10}T[0-9:.]+Z$' "manifest push: id and timestamp"
l=$(events /dist | sed -n 1p)
is "$(jq -r '"\(.target.mediaType) \(.target.size) \(.target.url)"' <<<"$l")" \
    "application/octet-stream 9 $BR_URL/v2/team/app/blobs/$LD" "blob push: mediaType, size, url"
is "$(events /dist | sed -n 6p | jq -r '.target.fromRepository')" team/app "mount: fromRepository"
is "$(jq -r 'select(.path == "/dist") | "\(.content_type) \(.authorization)"' "$EV" | sort -u)" \
    "application/vnd.docker.distribution.events.v1+json Bearer s3cret" "dist: envelope media type and the configured header"

ok "cloudevents: four events (pushes and the mount; pulls and deletes ignored)" wait_events /ce 4
sleep 0.5
is "$(events /ce | wc -l)" 4 "cloudevents: no more than those"
ce=$(events /ce | sed -n 3p)
is "$(jq -r '"\(.specversion) \(.type) \(.subject) \(.datacontenttype)"' <<<"$ce")" \
    "1.0 dev.berth.registry.push team/app:v1 application/json" "cloudevents: specversion, type, subject, datacontenttype"
is "$(jq -r '"\(.id) \(.time) \(.data.target.digest)"' <<<"$ce")" "$(jq -r '"\(.id) \(.timestamp) \(.target.digest)"' <<<"$m")" \
    "cloudevents: id, time and data are the event's"
like "$(jq -r '.source' <<<"$ce")" '^/berth/[0-9a-f-]{36}$' "cloudevents: source"
is "$(jq -r 'select(.path == "/ce") | .content_type' "$EV" | sort -u)" application/cloudevents+json "cloudevents: structured mode content type"

ok "manifests-only: the manifest events arrive" wait_events /mo 3
sleep 0.5
is "$(events /mo | jq -r '.action' | tr '\n' ' ')" "push pull delete " "manifests-only: blob events ignored by media type"

# ---- receiver down: queued, delivered when it is back ---------------------------------
receiver_stop
printf 'while down' >"$BR_TMP/down"
is "$(push_blob team/app "$BR_TMP/down")" 201 "push while the receiver is down"
for i in $(seq 1 100); do grep -q "endpoint dist: delivery failed" "$BR_TMP/server.log" && break; sleep 0.1; done
ok "the failed delivery is logged" grep -q "endpoint dist: delivery failed (Connection refused)" "$BR_TMP/server.log"
receiver_start
ok "delivered once the receiver is back" wait_events /dist 8
is "$(events /dist | sed -n 8p | jq -r .target.digest)" "$(sha "$BR_TMP/down")" "... the event pushed while it was down"

# ---- kill -9 with undelivered events ----------------------------------------------------
receiver_stop
printf 'before the kill' >"$BR_TMP/killed"
is "$(push_blob team/app "$BR_TMP/killed")" 201 "push while the receiver is down"
n=$(grep -c "endpoint dist: delivery failed" "$BR_TMP/server.log")
for i in $(seq 1 100); do [ "$(grep -c "endpoint dist: delivery failed" "$BR_TMP/server.log")" -gt "$n" ] && break; sleep 0.1; done
br_kill9
receiver_start
br_serve "$CFG" || { echo "Bail out! berth did not restart"; exit 1; }
ok "after kill -9 and restart, the queued event is delivered" wait_events /dist 9
is "$(events /dist | sed -n 9p | jq -r .target.digest)" "$(sha "$BR_TMP/killed")" "... the event pushed before the kill"
sleep 0.5
is "$(events /dist | wc -l)" 9 "... once (nothing delivered twice)"

# ---- a full queue drops the oldest -------------------------------------------------------
br_stop
receiver_stop
conf 3
br_serve "$CFG" || { echo "Bail out! berth did not restart"; exit 1; }
for i in 1 2 3 4 5; do
    printf 'queued %s' "$i" >"$BR_TMP/q$i"
    push_blob full "$BR_TMP/q$i" >/dev/null
    sleep 0.2 # one batch each: the order of drops is then the order of pushes
done
sleep 0.5
dropped=$(sed -nE 's/.*queue full \(notifications.queue_size 3\): dropped the ([0-9]+) oldest events.*/\1/p' "$BR_TMP/server.log" |
    awk '{ n += $1 } END { print n + 0 }')
is "$dropped" 2 "queue_size 3, five events: two dropped, and the log says so"
like "$(grep 'queue full' "$BR_TMP/server.log" | tail -n 1)" "\(2 in all\)" "... with the count kept in the store"
is "$(curl -s "http://127.0.0.1:$M_PORT/metrics" | grep -E '^berth_notifications_events_(queued|dropped_total) ' | tr '\n' ' ')" \
    "berth_notifications_events_queued 3 berth_notifications_events_dropped_total 2 " "... and in /metrics, with the 3 queued"
receiver_start
ok "the three kept are delivered" wait_events /dist 12
is "$(events /dist | sed -n '10,12p' | jq -r .target.digest | tr '\n' ' ')" \
    "$(sha "$BR_TMP/q3") $(sha "$BR_TMP/q4") $(sha "$BR_TMP/q5") " "... the newest three, in order"

# ---- https:// endpoints: verified against the trust store -----------------------------
br_stop
if command -v openssl >/dev/null; then
    mkcert() { # mkcert NAME — self-signed, for 127.0.0.1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -keyout "$BR_TMP/$1.key" \
            -out "$BR_TMP/$1.crt" -subj "/CN=$1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
    }
    mkcert trusted
    mkcert stranger
    tls_receiver() { # tls_receiver NAME OUT — prints its port
        rm -f "$BR_TMP/$1.port"
        RECEIVER_TLS_CERT="$BR_TMP/$1.crt" RECEIVER_TLS_KEY="$BR_TMP/$1.key" \
            python3 "$top_srcdir/tests/server/webhook_receiver.py" "$2" "$BR_TMP/$1.port" >/dev/null 2>&1 &
        echo $! >"$BR_TMP/$1.pid"
        for i in $(seq 1 100); do [ -s "$BR_TMP/$1.port" ] && break; sleep 0.05; done
    }
    tls_receiver trusted "$BR_TMP/tls.jsonl"
    tls_receiver stranger "$BR_TMP/stranger.jsonl"
    at_exit "kill $(cat "$BR_TMP/trusted.pid") $(cat "$BR_TMP/stranger.pid")"
    cat >"$CFG" <<YAML
listen: "127.0.0.1:$BR_PORT"
storage:
  root: $BR_TMP/store-tls
notifications:
  endpoints:
    - {name: secure, url: "https://127.0.0.1:$(cat "$BR_TMP/trusted.port")/tls", backoff: 200ms}
    - {name: untrusted, url: "https://127.0.0.1:$(cat "$BR_TMP/stranger.port")/tls", backoff: 200ms}
YAML
    # the trust store berth's client reads: OpenSSL's default paths, which SSL_CERT_FILE overrides
    SSL_CERT_FILE="$BR_TMP/trusted.crt" br_serve "$CFG" || { echo "Bail out! berth did not restart"; exit 1; }
    is "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$BR_TMP/layer" \
        "$BR_URL/v2/tls/blobs/uploads/?digest=$LD")" 201 "push with https endpoints"
    for i in $(seq 1 100); do [ -s "$BR_TMP/tls.jsonl" ] && break; sleep 0.1; done
    is "$(jq -r '.body.events[] | "\(.action) \(.target.repository) \(.target.digest)"' "$BR_TMP/tls.jsonl" 2>/dev/null)" \
        "push tls $LD" "https endpoint with a trusted certificate gets the event"
    for i in $(seq 1 100); do grep -q "endpoint untrusted: delivery failed" "$BR_TMP/server.log" && break; sleep 0.1; done
    like "$(grep "endpoint untrusted: delivery failed" "$BR_TMP/server.log" | head -n 1)" "TLS handshake: certificate verify failed" \
        "an endpoint whose certificate does not verify gets nothing, and the log says why"
    ok "... nothing reached it" test ! -s "$BR_TMP/stranger.jsonl"
fi

ok "server exits cleanly" br_stop
no_sanitizer_report "$BR_TMP/server.log"
done_testing
