#!/bin/bash
# The base of the API and the command line: GET/HEAD /v2/ (end-1, "API
# Version Check"), 404 for paths outside the API, 405 with an OCI error body
# for a method a route does not serve, `berth version`, the help texts,
# `berth check-config`, and `berth` with no arguments (embedded defaults:
# listen :5000, store ./berth-data), run in a private network namespace so
# nothing but loopback is ever bound.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

t0=$(ms)
br_start || { ok "berth starts" false; done_testing; exit 1; }
D=sha256:$(str_sha256 base)

# ---- with auth on (conformance-basic.sh, conformance-token.sh) ----------------------
# A request without credentials is 401 UNAUTHORIZED with a challenge of the
# configured scheme (Docker token spec for Bearer: the scope names the
# repository and the actions the request needs); the credentials open /v2/.
if [ -n "$BR_AUTH_MODE" ]; then
    st=$(http_raw GET /v2/)
    expect_error "$st" 401 UNAUTHORIZED "auth: GET /v2/ without credentials"
    is "$(header Docker-Distribution-API-Version)" "registry/2.0" "auth: the 401 carries Docker-Distribution-API-Version"
    if [ "$BR_AUTH_MODE" = basic ]; then
        is "$(header WWW-Authenticate)" 'Basic realm="berth-conformance"' "auth: a Basic challenge naming the realm"
        st=$(http_raw GET /v2/ -u "$OCI_USER:not-$OCI_PASS")
        is "$st:$(header WWW-Authenticate)" '401:Basic realm="berth-conformance"' "auth: a wrong password is 401 with the challenge"
    else
        ch="Bearer realm=\"$BR_URL/token\",service=\"$OCI_SERVICE\""
        is "$(header WWW-Authenticate)" "$ch" "auth: a Bearer challenge with realm and service"
        http_raw GET /v2/base/r/tags/list >/dev/null
        is "$(header WWW-Authenticate)" "$ch,scope=\"repository:base/r:pull\"" "auth: pull challenge scope"
        http_raw POST /v2/base/r/blobs/uploads/ --data-binary '' -H "$OCT" >/dev/null
        is "$(header WWW-Authenticate)" "$ch,scope=\"repository:base/r:pull,push\"" "auth: push challenge scope"
        st=$(http_raw GET /v2/ -H 'Authorization: Bearer not.a.token')
        like "$st:$(header WWW-Authenticate)" '^401:Bearer .*error="invalid_token"' "auth: a bad token is 401 invalid_token"
    fi
    st=$(http GET /v2/)
    is "$st" 200 "auth: GET /v2/ with the $BR_AUTH_MODE client is 200"
fi

# ---- /v2/ -------------------------------------------------------------------------
st=$(http GET /v2/)
is "$st" 200 "GET /v2/ is 200"
is "$(header Docker-Distribution-API-Version)" "registry/2.0" "GET /v2/: Docker-Distribution-API-Version: registry/2.0"
st=$(http HEAD /v2/ -I)
is "$st" 200 "HEAD /v2/ is 200"
is "$(header Docker-Distribution-API-Version)" "registry/2.0" "HEAD /v2/: Docker-Distribution-API-Version"
ok "HEAD /v2/: no body on the wire" head_is_clean /v2/

# ---- paths outside the API -> 404 ------------------------------------------------------
# A 4xx body MAY be in any format; if it is JSON it MUST be an OCI error body
# with a registered code ("Error Codes").
json_error_if_json() {
    case $(header Content-Type) in
    *json*) oci_error_body ;;
    *) return 0 ;;
    esac
}
for p in / /v1/ /v3/ /favicon.ico /v2/foo /v2/foo/bar /v2/foo/tags /v2/foo/tags/list/x /v2/foo/blobs \
    /v2/foo/manifests /v2/foo/unknown/thing "/v2/foo/blobs/uploads/x/y" /v2/_catalog/x; do
    st=$(http GET "$p")
    is "$st" 404 "GET $p is 404"
    ok "GET $p: an error body, if JSON, has registered codes" json_error_if_json
done

# ---- methods a route does not serve -> 405 ------------------------------------------------
not_allowed() { # METHOD PATH
    local st
    st=$(http "$1" "$2" --data-binary '' -H "$OCT")
    expect_error "$st" 405 UNSUPPORTED "$1 $2"
    ok "$1 $2: Allow header lists the route's methods" test -n "$(header Allow)"
}
for m in POST PUT DELETE PATCH; do not_allowed $m /v2/; done
for m in POST PUT DELETE PATCH; do not_allowed $m /v2/_catalog; done
for m in POST PUT PATCH; do not_allowed $m "/v2/base/r/blobs/$D"; done
for m in GET PUT DELETE PATCH; do not_allowed $m /v2/base/r/blobs/uploads/; done
for m in POST; do not_allowed $m /v2/base/r/blobs/uploads/0b5e5b6c-2a4b-4d6c-9a1c-3e0f5d0e9a11; done
for m in POST PATCH; do not_allowed $m /v2/base/r/manifests/latest; done
for m in POST PUT DELETE PATCH; do not_allowed $m /v2/base/r/tags/list; done
for m in POST PUT DELETE PATCH; do not_allowed $m "/v2/base/r/referrers/$D"; done
st=$(http GET /v2/)
is "$st" 200 "the server still answers after all that"

# ---- command line -------------------------------------------------------------------------
out=$("$BERTH" version 2>&1)
rc=$?
is "$rc" 0 "berth version exits 0"
like "$out" '^berth [0-9]+\.[0-9]+' "berth version prints the version"
out=$("$BERTH" --help 2>&1)
rc=$?
is "$rc" 0 "berth --help exits 0"
like "$out" 'serve' "berth --help names serve"
like "$out" 'check-config' "berth --help names check-config"
like "$out" 'version' "berth --help names version"
out=$("$BERTH" serve --help 2>&1)
rc=$?
is "$rc" 0 "berth serve --help exits 0"
like "$out" '--listen' "berth serve --help: --listen"
like "$out" '--root' "berth serve --help: --root"
like "$out" '(-c|--config)' "berth serve --help: -c/--config"
out=$("$BERTH" check-config --help 2>&1)
is "$?" 0 "berth check-config --help exits 0"
"$BERTH" no-such-command >/dev/null 2>&1
ok "an unknown command fails" test $? -ne 0
"$BERTH" serve --no-such-flag >/dev/null 2>&1
ok "an unknown serve flag fails" test $? -ne 0

cat >"$BR_TMP/good.yaml" <<'EOF'
listen: "127.0.0.1:5999"
storage:
  root: /tmp/whatever
  delete: false
  upload_purge_age: 2h
limits:
  max_manifest_size: 8MiB
EOF
out=$("$BERTH" check-config -c "$BR_TMP/good.yaml" 2>&1)
is "$?" 0 "check-config on a good file exits 0"
if [ -f "$top_srcdir/config/berth.example.yaml" ]; then
    out=$("$BERTH" check-config -c "$top_srcdir/config/berth.example.yaml" 2>&1)
    is "$?" 0 "check-config on config/berth.example.yaml exits 0"
fi
printf 'storage:\n  delete: maybe\n' >"$BR_TMP/bad1.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/bad1.yaml" 2>&1)
is "$?" 1 "check-config on a bad value exits 1"
like "$out" "^$BR_TMP/bad1.yaml:2:[0-9]+: " "bad value: message starts with file:line:col:"
printf 'storage:\n  root: /x\n  no_such_key: 1\n' >"$BR_TMP/bad2.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/bad2.yaml" 2>&1)
is "$?" 1 "check-config on an unknown key exits 1"
like "$out" "^$BR_TMP/bad2.yaml:3:[0-9]+: " "unknown key: message starts with file:line:col:"
printf 'listen: [":5000"\nstorage: {\n' >"$BR_TMP/bad3.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/bad3.yaml" 2>&1)
is "$?" 1 "check-config on broken YAML exits 1"
like "$out" "^$BR_TMP/bad3.yaml:[0-9]+:[0-9]+: " "broken YAML: message starts with file:line:col:"
out=$("$BERTH" check-config -c "$BR_TMP/does-not-exist.yaml" 2>&1)
is "$?" 1 "check-config on a missing file exits 1"
"$BERTH" check-config >/dev/null 2>&1
ok "check-config without -c fails" test $? -ne 0

# ---- embedded defaults: `berth` with no arguments ---------------------------------------------
# It listens on :5000 (every address), so run it in a private network
# namespace where only loopback exists; without one, fall back to the host's
# loopback only if 5000 is free there, with BERTH_LISTEN keeping it on
# 127.0.0.1 (then the default address itself is not exercised).
defaults_run() { # runs inside the namespace (or not); prints "<GET /v2/> <POST blob> <exit status>"
    local dir=$1 pid st1 st2 rc i
    cd "$dir" || return 1
    "$BERTH" >"$dir/log" 2>&1 &
    pid=$!
    for i in $(seq 1 200); do
        curl -s -o /dev/null "http://127.0.0.1:5000/v2/" && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    st1=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:5000/v2/")
    st2=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$OCT" --data-binary 'defaults' \
        "http://127.0.0.1:5000/v2/d/blobs/uploads/?digest=sha256:$(str_sha256 defaults)")
    kill -TERM $pid 2>/dev/null
    rc=0
    wait $pid || rc=$?
    echo "$st1 $st2 $rc"
}
ddir=$BR_TMP/defaults
mkdir -p "$ddir"
mode=""
if command -v unshare >/dev/null 2>&1 && unshare -rn true 2>/dev/null; then
    mode=netns
    export -f defaults_run str_sha256
    export BERTH OCT
    res=$(unshare -rn bash -c 'ip link set lo up 2>/dev/null; defaults_run "$1"' _ "$ddir")
elif ! (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
    mode=loopback
    res=$(BERTH_LISTEN=127.0.0.1:5000 defaults_run "$ddir")
fi
if [ -n "$mode" ]; then
    diag "embedded defaults run ($mode): $res"
    set -- $res
    is "${1:-}" 200 "berth with no arguments answers GET /v2/ on port 5000"
    is "${2:-}" 201 "berth with no arguments takes a blob"
    is "${3:-}" 0 "berth with no arguments exits 0 on SIGTERM"
    ok "berth with no arguments created ./berth-data" test -d "$ddir/berth-data"
    ok "the blob landed under ./berth-data" test -n "$(find "$ddir/berth-data" -type f -name "$(str_sha256 defaults)*" 2>/dev/null)"
    [ -s "$ddir/log" ] && sed 's/^/#   /' "$ddir/log" | tail -n 5
else
    ok "# SKIP port 5000 is busy and no network namespace is available" true
fi

ok "server exits cleanly" br_stop

# ---- deletes disabled (storage.delete: false) ----------------------------------------------------
# "Content Management": with deletion disabled the registry MUST answer 400
# or 405 to DELETE of a blob, a manifest or a tag.
BR_ROOT=$BR_TMP/store-nodelete
BERTH_STORAGE_DELETE=false br_start || { ok "berth starts with deletes disabled" false; done_testing; exit 1; }
printf 'keep' >"$BR_TMP/keep"
push_blob base/nd "$BR_TMP/keep"
k_d=$(sha256d "$BR_TMP/keep")
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":4},"layers":[]}' \
    $OCI_MANIFEST $OCI_CONFIG "$k_d" >"$BR_TMP/nd.json"
st=$(put_manifest base/nd t "$BR_TMP/nd.json" $OCI_MANIFEST)
is "$st" 201 "deletes disabled: push a manifest"
nd_d=$(sha256d "$BR_TMP/nd.json")
st=$(http DELETE "/v2/base/nd/blobs/$k_d")
expect_error "$st" "400|405" "UNSUPPORTED|DENIED" "deletes disabled: DELETE blob"
st=$(http DELETE "/v2/base/nd/manifests/$nd_d")
expect_error "$st" "400|405" "UNSUPPORTED|DENIED" "deletes disabled: DELETE manifest"
st=$(http DELETE "/v2/base/nd/manifests/t")
expect_error "$st" "400|405" "UNSUPPORTED|DENIED" "deletes disabled: DELETE tag"
st=$(http GET "/v2/base/nd/manifests/t")
is "$st" 200 "deletes disabled: the tag is still there"
st=$(http GET "/v2/base/nd/blobs/$k_d")
is "$st" 200 "deletes disabled: the blob is still there"
ok "server exits cleanly (deletes disabled)" br_stop
diag "base.sh: $(($(ms) - t0)) ms"
done_testing
