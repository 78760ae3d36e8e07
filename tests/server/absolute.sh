#!/bin/bash
# Absolute-form request targets (RFC 9112 §3.2.2: a server MUST accept
# `GET http://host:port/v2/... HTTP/1.1`; issue 9 item 6). Each request is sent
# in origin form and in absolute form (curl --request-target) and must get the
# same status, body and registry headers: blob uploads (POST, PATCH, PUT,
# monolithic), blob and manifest GET/HEAD, manifest PUT/DELETE, tags and
# catalog with their queries; with Basic auth on, the same 401/403/200
# decisions. Malformed absolute targets are 400 with an OCI error body.
. "$top_srcdir/tests/lib.sh"
for b in curl jq sha256sum; do command -v $b >/dev/null 2>&1 || skip_all "$b not installed"; done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

# send FORM METHOD PATH [curl args] — FORM origin or abs; prints the status,
# leaves headers in $BR_TMP/h.FORM and the body in $BR_TMP/b.FORM.
send() {
    local form=$1 m=$2 p=$3
    shift 3
    local nobody=()
    [ "$m" = HEAD ] && nobody=(-I)
    if [ "$form" = abs ]; then
        curl -s "${nobody[@]}" -X "$m" -D "$BR_TMP/h.$form" -o "$BR_TMP/b.$form" -w '%{http_code}' \
            --request-target "http://127.0.0.1:$BR_PORT$p" "$@" "$BR_URL/"
    else
        curl -s "${nobody[@]}" -X "$m" -D "$BR_TMP/h.$form" -o "$BR_TMP/b.$form" -w '%{http_code}' "$@" "$BR_URL$p"
    fi
    # with -I curl writes the headers (with their Date) where the body would go
    [ "$m" != HEAD ] || : >"$BR_TMP/b.$form"
}

# summary FORM — status line, the registry's headers that do not vary per
# request, and the body's digest.
summary() {
    grep -iE '^(HTTP/|docker-content-digest|content-type|content-length|content-range|www-authenticate|link|range|allow):' \
        "$BR_TMP/h.$1" | tr -d '\r' | tr 'A-Z' 'a-z' | sort | tr '\n' '|'
    sha256sum <"$BR_TMP/b.$1" | cut -c1-16
}

# same NAME WANT METHOD PATH [curl args] — origin and absolute form both answer
# WANT, with the same summary.
same() {
    local name=$1 want=$2 m=$3 p=$4 so sa
    shift 4
    so=$(send origin "$m" "$p" "$@")
    sa=$(send abs "$m" "$p" "$@")
    is "$so $sa" "$want $want" "$name: $want in origin and in absolute form"
    is "$(summary abs)" "$(summary origin)" "$name: same headers and body"
}

# abs_status METHOD TARGET [curl args] — status for a raw request target.
abs_status() {
    local m=$1 t=$2
    shift 2
    curl -s -X "$m" -o "$BR_TMP/b.raw" -w '%{http_code}' --request-target "$t" "$@" "$BR_URL/"
}

OCT=(-H 'Content-Type: application/octet-stream')
MT='application/vnd.oci.image.manifest.v1+json'
ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }
A="http://127.0.0.1:$BR_PORT"

# ---- uploads in absolute form ---------------------------------------------------
head -c 70000 /dev/urandom >"$BR_TMP/layer"
printf '{"architecture":"amd64","os":"linux"}' >"$BR_TMP/config"
DL="sha256:$(sha256_of "$BR_TMP/layer")"
DC="sha256:$(sha256_of "$BR_TMP/config")"
head -c 30000 "$BR_TMP/layer" >"$BR_TMP/part1"
tail -c +30001 "$BR_TMP/layer" >"$BR_TMP/part2"

st=$(abs_status POST "$A/v2/abs/repo/blobs/uploads/" -D "$BR_TMP/h")
is "$st" 202 "POST upload start in absolute form: 202"
loc=$(header Location)
like "$loc" '^/v2/abs/repo/blobs/uploads/' "... Location is the session's path"
st=$(abs_status PATCH "$A$loc" -D "$BR_TMP/h" "${OCT[@]}" --data-binary @"$BR_TMP/part1")
is "$st $(header Range)" "202 0-29999" "PATCH in absolute form: 202, Range 0-29999"
st=$(abs_status PATCH "$A$loc" -D "$BR_TMP/h" "${OCT[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$BR_TMP/part2")
is "$st $(header Range)" "202 0-69999" "chunked PATCH in absolute form: 202, Range 0-69999"
sep='?'
case $loc in *'?'*) sep='&' ;; esac
st=$(abs_status PUT "$A$loc${sep}digest=$DL" -D "$BR_TMP/h" "${OCT[@]}" --data-binary '')
is "$st $(header Docker-Content-Digest)" "201 $DL" "closing PUT with ?digest= in absolute form: 201 with the digest"
st=$(abs_status POST "$A/v2/abs/repo/blobs/uploads/?digest=$DC" "${OCT[@]}" --data-binary @"$BR_TMP/config")
is "$st" 201 "monolithic POST ?digest= in absolute form: 201"

# ---- reads: absolute form answers exactly like origin form --------------------------
same "GET blob" 200 GET "/v2/abs/repo/blobs/$DL"
is "$(sha256_of "$BR_TMP/b.abs")" "${DL#sha256:}" "GET blob in absolute form returns the content"
same "HEAD blob" 200 HEAD "/v2/abs/repo/blobs/$DL"
same "GET blob with Range" 206 GET "/v2/abs/repo/blobs/$DL" -H 'Range: bytes=10-99'
same "GET unknown blob" 404 GET "/v2/abs/repo/blobs/sha256:$(printf '0%.0s' $(seq 64))"
same "GET blob in another repository" 404 GET "/v2/abs/other/blobs/$DL"

printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":70000}]}' \
    "$MT" "$DC" "$(stat -c %s "$BR_TMP/config")" "$DL" >"$BR_TMP/manifest"
DM="sha256:$(sha256_of "$BR_TMP/manifest")"
st=$(abs_status PUT "$A/v2/abs/repo/manifests/v1" -D "$BR_TMP/h" -H "Content-Type: $MT" --data-binary @"$BR_TMP/manifest")
is "$st $(header Docker-Content-Digest)" "201 $DM" "manifest PUT in absolute form: 201 with its digest"
same "GET manifest by tag" 200 GET /v2/abs/repo/manifests/v1 -H "Accept: $MT"
same "HEAD manifest by tag" 200 HEAD /v2/abs/repo/manifests/v1 -H "Accept: $MT"
same "GET manifest by digest" 200 GET "/v2/abs/repo/manifests/$DM" -H "Accept: $MT"
is "$(sha256_of "$BR_TMP/b.abs")" "${DM#sha256:}" "GET manifest in absolute form returns it byte for byte"
st=$(abs_status PUT "$A/v2/abs/repo/manifests/v2" -H "Content-Type: $MT" --data-binary @"$BR_TMP/manifest")
same "tags list with ?n=1 (the query is routed too)" 200 GET "/v2/abs/repo/tags/list?n=1"
is "$(jq -c .tags "$BR_TMP/b.abs")" '["v1"]' "... and n=1 was applied"
same "tags list after ?last=v1" 200 GET "/v2/abs/repo/tags/list?last=v1"
same "catalog" 200 GET "/v2/_catalog?n=10"
same "GET /v2/" 200 GET /v2/
same "GET /v2 (no slash)" 200 GET /v2
same "unknown path" 404 GET /v3/
same "method not allowed" 405 POST /v2/abs/repo/tags/list
same "invalid name" 400 GET /v2/Abs/repo/tags/list

# ---- variants of the absolute form ------------------------------------------------
is "$(abs_status GET "HTTP://127.0.0.1:$BR_PORT/v2/")" 200 "scheme in upper case: 200"
is "$(abs_status GET "https://127.0.0.1:$BR_PORT/v2/")" 200 "https scheme on the plain port: routed by its path, 200"
is "$(abs_status GET "http://registry.example:443/v2/" -H 'Host: elsewhere')" 200 \
    "authority other than the Host header: routed by the path, 200"
is "$(abs_status GET "http://[::1]:5000/v2/")" 200 "IPv6 literal authority: 200"
is "$(abs_status GET "http://localhost/v2/abs/repo/tags/list")" 200 "authority without a port: 200"
is "$(abs_status GET "http://127.0.0.1:$BR_PORT")" "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/")" \
    "no path at all is '/' (same status as GET /)"

# ---- malformed absolute targets: 400 with an OCI error ------------------------------
for t in "http://" "http:///v2/" "http://u:p@127.0.0.1/v2/" "http://user@127.0.0.1/v2/" "ftp://127.0.0.1/v2/" \
    "http:/v2/" "http:v2/" "v2/" "http://127.0.0.1/v2/#frag" "http://127.0.0.1:99999999/v2/" "http://127.0.0.1:x/v2/" \
    "http://[::1/v2/" "http://[zz]/v2/" "http://a%zz/v2/" "http://a\"b/v2/" "http://127.0.0.1\\@x/v2/"; do
    st=$(abs_status GET "$t")
    is "$st $(jq -r '.errors[0].code' "$BR_TMP/b.raw" 2>/dev/null)" "400 UNSUPPORTED" "malformed target '$t': 400 with an OCI error"
done
ok "server still answers" test "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/v2/")" = 200

# HTTP/2's :path is origin-form only (RFC 9113 §8.3.1): an absolute URI there is malformed.
. "$top_srcdir/tests/server/robust_lib.sh"
py_checks - "$BR_PORT" <<'PY'
import sys, time
from robust_lib import *
c = H2Conn(int(sys.argv[1]))
c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack_block("GET", "/v2/")))
c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, hpack_block("GET", "http://127.0.0.1/v2/")))
deadline = time.monotonic() + 5 * SLOWDOWN
while time.monotonic() < deadline and not (1 in c.status and 3 in c.status) and not c.closed:
    time.sleep(0.05)
c.close()
check("h2c :path /v2/: 200", c.status.get(1) == 200, c.status)
check("h2c :path http://127.0.0.1/v2/: 400", c.status.get(3) == 400, c.status)
PY
ok "berth stops cleanly" br_stop

# ---- with Basic auth: the same decisions in both forms --------------------------------
HT="$BR_TMP/htpasswd"
PW_ALICE="Al-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
PW_BOB="Bo-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$PW_ALICE" | "$BERTH" hash-password alice >"$HT"
printf '%s\n' "$PW_BOB" | "$BERTH" hash-password bob >>"$HT"
cat >"$BR_TMP/auth.yaml" <<EOF
auth:
  realm: berth-test
  htpasswd: $HT
  admin_group: admins
  groups:
    admins: [alice]
  anonymous:
    - {repository: "public/**", actions: [pull]}
  rules:
    - {repository: "bob/**", users: [bob], actions: [pull, push]}
EOF
BR_START_CONFIG="echo $BR_TMP/auth.yaml"
ok "berth starts with Basic auth" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }
A="http://127.0.0.1:$BR_PORT"
ALICE=(-u "alice:$PW_ALICE")
BOB=(-u "bob:$PW_BOB")
st=$(curl -s -o /dev/null -w '%{http_code}' "${ALICE[@]}" -X PUT -H "Content-Type: $MT" --data-binary @"$BR_TMP/manifest" \
    "$BR_URL/v2/abs/repo/manifests/v1")
is "$st" 201 "alice (admin) pushes the manifest to abs/repo again"
for r in public/x bob/y; do
    curl -s -o /dev/null "${ALICE[@]}" -X POST "${OCT[@]}" --data-binary @"$BR_TMP/config" "$BR_URL/v2/$r/blobs/uploads/?digest=$DC"
done

same "anonymous GET /v2/" 401 GET /v2/
same "anonymous GET manifest in a private repository" 401 GET /v2/abs/repo/manifests/v1
same "anonymous GET blob in public/" 200 GET "/v2/public/x/blobs/$DC"
same "anonymous upload to public/" 401 POST /v2/public/x/blobs/uploads/
same "anonymous catalog (filtered to what anonymous may pull)" 200 GET /v2/_catalog
is "$(jq -c .repositories "$BR_TMP/b.abs")" '["public/x"]' "... lists only public/x in absolute form"
same "alice GET manifest" 200 GET /v2/abs/repo/manifests/v1 -H "Accept: $MT" "${ALICE[@]}"
same "alice catalog" 200 GET "/v2/_catalog?n=5" "${ALICE[@]}"
same "bob GET manifest outside his rules" 403 GET /v2/abs/repo/manifests/v1 "${BOB[@]}"
same "bob HEAD blob in bob/" 200 HEAD "/v2/bob/y/blobs/$DC" "${BOB[@]}"
same "bob DELETE blob in bob/ (no delete right)" 403 DELETE "/v2/bob/y/blobs/$DC" "${BOB[@]}"
same "wrong password" 401 GET /v2/ -u "alice:wrong-$PW_BOB"
# An absolute target whose authority names another host still authorizes the
# path's repository, not anything derived from the authority.
is "$(abs_status GET "http://public.example/v2/abs/repo/manifests/v1")" 401 \
    "anonymous, authority 'public.example', private repository path: 401"
st=$(abs_status POST "$A/v2/bob/y/blobs/uploads/" "${BOB[@]}")
is "$st" 202 "bob starts an upload in bob/ in absolute form: 202"
ok "berth stops cleanly" br_stop
done_testing
