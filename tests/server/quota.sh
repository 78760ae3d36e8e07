#!/bin/bash
# Quotas (config 'quotas'): a push that would take a scope over its
# max_bytes is refused with 403 DENIED naming the quota; a blob counts once
# per scope however many of its repositories link it; a push adding no new
# bytes to the scope is accepted; mounts and manifest bodies count; the global
# limit (an item without repository) bounds the whole store; `berth du` shows
# usage against each quota; `berth reload` applies a changed quota; after a
# DELETE and a `berth gc` (another process) the usage drops and pushes pass;
# racing pushes never overshoot; `berth fsck` then finds the counts exact.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

BR_ROOT=$BR_TMP/store
BR_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
MPORT=$(free_port)
CONF=$BR_TMP/quota.yaml
# conf TEAM_MAX — team/** limited to TEAM_MAX bytes, the store to 20000
conf() {
    cat >"$CONF" <<YAML
listen: "127.0.0.1:$BR_PORT"
storage:
  root: $BR_ROOT
  delete: true
gc:
  interval: 0
metrics:
  listen: "127.0.0.1:$MPORT"
quotas:
  - {repository: "team/**", max_bytes: $1}
  - {repository: "other/*", max_bytes: 1MiB}
  - {max_bytes: 20000}
YAML
}
conf 3000
br_serve "$CONF" || { echo "Bail out! berth did not start"; exit 1; }
at_exit br_stop

# blob NAME BYTES — a file of random bytes
blob() { randfile "$BR_TMP/$1" "$2"; }
# denied NAME PATTERN — the last answer is 403 DENIED whose message matches PATTERN
denied() {
    is "$(oci_error_check)" "DENIED 1" "$1: DENIED, an OCI error body"
    like "$(jq -r '.errors[0].message' "$BR_TMP/b")" "$2" "$1: the message names the quota"
}
# push_code REPO FILE — status of a monolithic upload (POST with digest)
push_code() {
    http POST "/v2/$1/blobs/uploads/?digest=$(sha256d "$2")" --data-binary @"$2" -H "$OCT"
}
# chunked_code REPO FILE — status of the closing PUT of a POST, PATCH, PUT upload
chunked_code() {
    local loc
    loc=$(start_upload "$1") || return 1
    [ "$(http PATCH "$loc" --data-binary @"$2" -H "$OCT")" = 202 ] || return 1
    loc=$(header Location | loc_path)
    with_query "$loc" "digest=$(sha256d "$2")" >"$BR_TMP/lastput"
    http PUT "$(cat "$BR_TMP/lastput")"
}
# reload — berth reload, then wait for the server to log that it reloaded
reload() {
    local before i
    before=$(grep -c 'reload: config reloaded' "$BR_TMP/server.log")
    "$BERTH" reload -c "$CONF" >/dev/null || return 1
    for i in $(seq 1 100); do
        [ "$(grep -c 'reload: config reloaded' "$BR_TMP/server.log")" -gt "$before" ] && return 0
        sleep 0.1
    done
    return 1
}
du_quota() { "$BERTH" du -c "$CONF" | grep -F "quota \"$1\":"; }

blob A 1000 && blob B 1500 && blob C 1000
is "$(push_code team/a "$BR_TMP/A")" 201 "team/a: push A (1000 bytes)"
is "$(chunked_code team/b "$BR_TMP/A")" 201 "team/b: push A again (a layer two repositories of the scope share)"
is "$(du_quota 'team/\*\*')" "" "(du's quota line needs no glob escaping)"
is "$(du_quota 'team/**')" 'quota "team/**": 1000 bytes used of 3000 (33.3%)' "berth du: A counts once for team/**"
is "$(chunked_code team/a "$BR_TMP/B")" 201 "team/a: push B (1500 bytes): 2500 of 3000"
is "$(chunked_code team/b "$BR_TMP/C")" 403 "team/b: push C (1000 bytes): 403, over the quota"
denied "upload over the quota" '^quota "team/\*\*" exceeded: 2\.4 KiB used of 2\.9 KiB, this needs 1000 bytes more$'
cp "$BR_TMP/lastput" "$BR_TMP/refused-put"
is "$(http HEAD "/v2/team/b/blobs/$(sha256d "$BR_TMP/C")" -I)" 404 "... and C is not in team/b"
is "$(push_code team/c "$BR_TMP/C")" 403 "monolithic POST over the quota: 403"
denied "monolithic upload" '^quota "team/\*\*" exceeded'
is "$(find "$BR_ROOT/uploads" -type f | wc -l)" 1 "... its session went with it (only the retryable chunked one stays)"
is "$(push_code team/b "$BR_TMP/A")" 201 "team/b: A pushed again (linked there already): accepted"
is "$(push_code team/b "$BR_TMP/B")" 201 "team/b: B (new to team/b, already in team/a): accepted, no new bytes for the scope"
is "$(du_quota 'team/**')" 'quota "team/**": 2500 bytes used of 3000 (83.3%)' "berth du: 2500 bytes, A and B once each"
metrics=$(curl -s "http://127.0.0.1:$MPORT/metrics")
is "$(printf '%s\n' "$metrics" | grep '^berth_quota_' | sort | tr '\n' ' ')" \
    'berth_quota_limit_bytes 20000 berth_quota_limit_bytes{quota="other/*"} 1048576 berth_quota_limit_bytes{quota="team/**"} 3000 berth_quota_used_bytes 2500 berth_quota_used_bytes{quota="other/*"} 0 berth_quota_used_bytes{quota="team/**"} 2500 ' \
    "metrics: each quota's usage and limit (the global one unlabelled)"

# mounts: C lives outside the scope
is "$(push_code other/x "$BR_TMP/C")" 201 "other/x: push C"
is "$(http POST "/v2/team/c/blobs/uploads/?mount=$(sha256d "$BR_TMP/C")&from=other/x")" 403 "mount C from other/x into team/c: 403"
denied "mount from=" '^quota "team/\*\*" exceeded: .*this needs 1000 bytes more$'
is "$(http POST "/v2/team/c/blobs/uploads/?mount=$(sha256d "$BR_TMP/C")")" 403 "automatic mount (no from) into team/c: 403"
is "$(http POST "/v2/team/c/blobs/uploads/?mount=$(sha256d "$BR_TMP/A")&from=team/a")" 201 "mount A (in the scope already) into team/c: 201"

# a manifest body is a blob of its repository: 2500 used, the body is over 500 bytes
pad=$(head -c 500 /dev/zero | tr '\0' x)
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":1000},"layers":[{"mediaType":"%s","digest":"%s","size":1500}],"annotations":{"pad":"%s"}}' \
    "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha256d "$BR_TMP/A")" "$OCI_LAYER" "$(sha256d "$BR_TMP/B")" "$pad" >"$BR_TMP/M"
msize=$(fsize "$BR_TMP/M")
is "$(put_manifest team/a v1 "$BR_TMP/M" "$OCI_MANIFEST")" 403 "manifest PUT whose body ($msize bytes) would exceed: 403"
denied "manifest PUT" "^quota \"team/\\*\\*\" exceeded: .*this needs $msize bytes more\$"
is "$(http GET /v2/team/a/manifests/v1 -H "Accept: $OCI_MANIFEST")" 404 "... nothing stored"

# the global limit: 20000 bytes in the whole store
blob D 17000
is "$(push_code other/y "$BR_TMP/D")" 403 "other/y: push D (17000 bytes) into a store of 3500: over the global 20000"
denied "global limit" '^global quota exceeded: 3\.4 KiB stored of 19\.5 KiB, this needs 16\.6 KiB more$'
is "$("$BERTH" du -c "$CONF" | grep '^global quota:')" "global quota: 3500 bytes stored of 20000 (17.5%)" "berth du: the global quota"

# reload with a larger team quota
conf 10000
ok "berth reload: the server reloads" reload
is "$(put_manifest team/a v1 "$BR_TMP/M" "$OCI_MANIFEST")" 201 "after raising team/** to 10000: the manifest PUT passes"
is "$(http PUT "$(cat "$BR_TMP/refused-put")")" 201 "... and so does the closing PUT of C's refused upload into team/b, retried (the session stayed)"
is "$(http HEAD "/v2/team/b/blobs/$(sha256d "$BR_TMP/C")" -I)" 200 "... C is in team/b now"
used=$((2500 + msize + 1000))
is "$(du_quota 'team/**')" "quota \"team/**\": $used bytes used of 10000 ($(awk "BEGIN{printf \"%.1f\", $used / 100}")%)" "berth du: $used bytes of 10000"
blob E 6000
is "$(push_code team/e "$BR_TMP/E")" 403 "team/e: push E (6000 bytes) over $used of 10000: 403"

# DELETE, then berth gc (another process) unlinks: usage drops
is "$(http DELETE "/v2/team/a/manifests/$(sha256d "$BR_TMP/M")")" 202 "delete the manifest"
out=$("$BERTH" gc -c "$CONF" --grace 0 2>/dev/null | tail -n 1)
like "$out" "^gc: [1-9][0-9]* blobs" "berth gc --grace 0 collects"
is "$(du_quota 'team/**')" 'quota "team/**": 0 bytes used of 10000 (0.0%)' "berth du: team/** is empty"
is "$(push_code team/e "$BR_TMP/E")" 201 "team/e: push E passes now (the server sees the counts gc lowered)"
is "$(du_quota 'team/**')" 'quota "team/**": 6000 bytes used of 10000 (60.0%)' "berth du: 6000 bytes"
is "$(push_code other/y "$BR_TMP/D")" 403 "D still over the global limit"

# racing pushes: 6000 of 8000 used, eight 1000-byte blobs at once: exactly two fit
conf 8000
ok "berth reload to team/** 8000" reload
for i in 1 2 3 4 5 6 7 8; do
    blob "R$i" 1000
    curl -s -o /dev/null -w '%{http_code}\n' -X POST --data-binary @"$BR_TMP/R$i" -H "$OCT" \
        "$BR_URL/v2/team/r$i/blobs/uploads/?digest=$(sha256d "$BR_TMP/R$i")" >"$BR_TMP/race.$i" &
    pids="${pids:-} $!"
done
wait $pids
is "$(cat "$BR_TMP"/race.* | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')" "201x2 403x6 " \
    "eight racing pushes into the last 2000 bytes: two pass, six are refused"
is "$(du_quota 'team/**')" 'quota "team/**": 8000 bytes used of 8000 (100.0%)' "berth du: exactly full"
out=$("$BERTH" fsck --root "$BR_ROOT" 2>/dev/null)
is "$?:$(printf '%s\n' "$out" | tail -n 1 | sed 's/.* checked, //')" "0:0 problems" \
    "berth fsck: the quota counts equal the links, and refused pushes left no orphan file"
no_sanitizer_report "$BR_TMP/server.log"
done_testing
