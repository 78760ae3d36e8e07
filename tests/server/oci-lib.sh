# Helpers for the curl-level OCI Distribution API tests in tests/server/.
# Source after tests/lib.sh (needs BR_URL, BR_TMP and the `http` helper):
#
#   . "$top_srcdir/tests/lib.sh"
#   . "$top_srcdir/tests/server/oci-lib.sh"
#
# Everything here checks berth against the OCI Distribution Spec v1.1, not
# against what berth happens to do.

command -v jq >/dev/null 2>&1 || skip_all "jq is not installed"
command -v curl >/dev/null 2>&1 || skip_all "curl is not installed"
# A python3 for raw-socket checks (the system one starts fastest).
PY=$(command -v /usr/bin/python3 || command -v python3) || skip_all "python3 is not installed"

# The error codes registered by the spec ("Error Codes": code-1 .. code-14).
# A JSON error body MUST use one of these.
OCI_CODES="BLOB_UNKNOWN BLOB_UPLOAD_INVALID BLOB_UPLOAD_UNKNOWN DIGEST_INVALID MANIFEST_BLOB_UNKNOWN MANIFEST_INVALID MANIFEST_UNKNOWN NAME_INVALID NAME_UNKNOWN SIZE_INVALID UNAUTHORIZED DENIED UNSUPPORTED TOOMANYREQUESTS"

OCT='Content-Type: application/octet-stream'
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
OCI_LAYER=application/vnd.oci.image.layer.v1.tar+gzip
OCI_EMPTY=application/vnd.oci.empty.v1+json
DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
DOCKER_CONFIG=application/vnd.docker.container.image.v1+json
DOCKER_LAYER=application/vnd.docker.image.rootfs.diff.tar.gzip

# oci_error_check — prints "<first code> <valid>" for the last body, valid
# being 1 when it is {"errors":[{"code","message"[,"detail"]},...]} with at
# least one entry, every code registered and every message a string.
oci_error_check() {
    jq -r --arg codes "$OCI_CODES" '
        ($codes | split(" ")) as $reg
        | ((.errors[0].code? // "") | tostring) + " " +
          (if (.errors | type == "array" and length > 0)
              and all(.errors[]; (.code | type == "string") and (.code as $x | any($reg[]; . == $x))
                                  and ((has("message") | not) or (.message | type == "string")))
           then "1" else "0" end)' "$BR_TMP/b" 2>/dev/null || echo "- 0"
}
oci_error_body() { [ "$(oci_error_check | cut -d' ' -f2)" = 1 ]; }

# expect_error GOT_STATUS WANT_STATUS_RE WANT_CODE_RE NAME — three checks on
# the last response: status, code, and a well-formed OCI error body.
expect_error() {
    local r
    r=$(oci_error_check)
    like "$1" "^($2)\$" "$4: status $2"
    like "${r% *}" "^($3)\$" "$4: code $3"
    is "${r##* }" 1 "$4: OCI JSON error body with registered codes"
}

# header NAME — lib.sh's, without forking four processes per call (this
# machine's tests call it hundreds of times).
header() {
    local line name=${1,,}
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        if [[ ${line,,} == "$name:"* ]]; then
            line=${line#*:}
            line=${line#"${line%%[! ]*}"}
            printf '%s\n' "$line"
            return 0
        fi
    done <"$BR_TMP/h"
}

# Digest helpers.
sha256d() { local h; h=$(sha256sum "$1") && echo "sha256:${h%% *}"; }
sha512d() { local h; h=$(sha512sum "$1") && echo "sha512:${h%% *}"; }
str_sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
fsize() { stat -c %s "$1"; }

# randfile PATH BYTES — random content.
randfile() { head -c "$2" /dev/urandom >"$1"; }

# loc_path — a Location header value as a path (absolute URLs are allowed).
loc_path() {
    local l
    IFS= read -r l || true
    [[ $l =~ ^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+(.*)$ ]] && l=${BASH_REMATCH[1]}
    printf '%s\n' "$l"
}

# with_query LOCATION "k=v" — appends a query parameter, keeping any the
# registry put in the location (they MAY be critical).
with_query() {
    case $1 in
    *\?*) echo "$1&$2" ;;
    *) echo "$1?$2" ;;
    esac
}

# start_upload REPO — POST an upload session; prints its location path.
start_upload() {
    local st
    st=$(http POST "/v2/$1/blobs/uploads/" --data-binary '' -H "$OCT")
    [ "$st" = 202 ] || { echo "# start_upload $1: status $st" >&2; return 1; }
    header Location | loc_path
}

# push_blob REPO FILE — monolithic POST + PUT; returns 0 on 201.
push_blob() {
    local loc d st
    loc=$(start_upload "$1") || return 1
    d=$(sha256d "$2")
    st=$(http PUT "$(with_query "$loc" "digest=$d")" --data-binary @"$2" -H "$OCT")
    [ "$st" = 201 ] || { echo "# push_blob $1 $2: status $st: $(head -c 300 "$BR_TMP/b")" >&2; return 1; }
}

# put_manifest REPO REF FILE MEDIATYPE — prints the status.
put_manifest() {
    http PUT "/v2/$1/manifests/$2" --data-binary @"$3" -H "Content-Type: $4"
}

# ---- credentials: BR_AUTH_MODE=basic|token ----------------------------------------
# Unset, berth runs with auth off. Set (conformance-basic.sh, -token.sh), br_start
# gives berth an auth config where one user may pull, push and delete everywhere,
# and `http` sends that user's credentials:
#   basic  every request carries Basic credentials;
#   token  `http` is a registry client as the OCI conformance suite's is: on a
#          401 with a Bearer challenge it fetches a token from the realm, with
#          Basic credentials, for exactly the challenged scope(s), and retries
#          once with it. Tokens are cached per scope string, and the scope a
#          request needed is remembered per (method, repository, mount source)
#          and per repository, so later requests send a token straight away
#          (a mount only takes the scope its own challenge named).
# `http` runs inside $(...), so the caches are files under $BR_TMP/auth.
BR_AUTH_MODE=${BR_AUTH_MODE:-}
OCI_USER=conformance
OCI_SERVICE=berth-conformance.test
OCI_BASIC=""
case $BR_AUTH_MODE in
"") ;;
basic | token)
    mkdir -p "$BR_TMP/auth/tok" "$BR_TMP/auth/memo"
    OCI_PASS="Pw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    OCI_BASIC="Basic $(printf '%s' "$OCI_USER:$OCI_PASS" | base64 -w0)"
    printf '%s\n' "$OCI_PASS" | "$BERTH" hash-password "$OCI_USER" >"$BR_TMP/auth/htpasswd" ||
        { echo "Bail out! berth hash-password failed"; exit 1; }
    if [ "$BR_AUTH_MODE" = token ]; then
        "$BERTH" gen-key "$BR_TMP/auth/token.key" >/dev/null 2>&1 || { echo "Bail out! berth gen-key failed"; exit 1; }
    fi
    BR_START_CONFIG=oci_auth_config
    ;;
*)
    echo "Bail out! BR_AUTH_MODE=$BR_AUTH_MODE: want basic or token"
    exit 1
    ;;
esac

# oci_auth_config — br_start's hook: writes the auth config for $BR_URL and
# prints its path.
oci_auth_config() {
    local f=$BR_TMP/auth/berth.yaml
    {
        printf 'auth:\n  realm: berth-conformance\n  htpasswd: %s\n' "$BR_TMP/auth/htpasswd"
        printf '  rules:\n    - {repository: "**", users: [%s], actions: [pull, push, delete]}\n' "$OCI_USER"
        [ "$BR_AUTH_MODE" = token ] &&
            printf '  token:\n    realm: %s/token\n    path: /token\n    service: %s\n    issuer: berth-conformance\n    key: %s\n' \
                "$BR_URL" "$OCI_SERVICE" "$BR_TMP/auth/token.key"
    } >"$f"
    printf '%s\n' "$f"
}

# _oci_cache_file KIND KEY — sets _f to KEY's file in the KIND cache ('%' and
# '/' escaped); fails for keys too long for a file name (never cached).
_oci_cache_file() {
    local k=${2//%/%25}
    k=${k//\//%2F}
    [ ${#k} -le 200 ] || return 1
    _f=$BR_TMP/auth/$1/=$k
}

# oci_token REALM SERVICE SCOPE [fresh] — sets OCI_TOKEN to a token for SCOPE
# (space-separated scopes, may be empty), from the cache unless "fresh".
oci_token() {
    local realm=$1 service=$2 scope=$3 f="" s args=()
    OCI_TOKEN=""
    _oci_cache_file tok "$scope" && f=$_f
    if [ -z "${4:-}" ] && [ -n "$f" ] && read -r OCI_TOKEN 2>/dev/null <"$f" && [ -n "$OCI_TOKEN" ]; then
        return 0
    fi
    read -ra s <<<"$scope"
    for s in "${s[@]}"; do args+=(--data-urlencode "scope=$s"); done
    OCI_TOKEN=$(curl -s -G -H "Authorization: $OCI_BASIC" --data-urlencode "service=$service" "${args[@]}" "$realm" |
        jq -r '.token // empty' 2>/dev/null)
    [ -n "$OCI_TOKEN" ] || { echo "# no token from $realm for '$scope'" >&2; return 1; }
    [ -z "$f" ] || printf '%s\n' "$OCI_TOKEN" >"$f"
}

# _oci_challenge — parses the last response's Bearer challenge into _realm,
# _service and _scope; fails when there is none.
_oci_challenge() {
    local v
    v=$(header WWW-Authenticate)
    [[ $v =~ ^[Bb]earer\ +(.*)$ ]] || return 1
    v=${BASH_REMATCH[1]}
    _realm="" _service="" _scope=""
    while [[ $v =~ ^[\ ,]*([A-Za-z_]+)=\"([^\"]*)\"(.*)$ ]]; do
        case ${BASH_REMATCH[1]} in
        realm) _realm=${BASH_REMATCH[2]} ;;
        service) _service=${BASH_REMATCH[2]} ;;
        scope) _scope=${BASH_REMATCH[2]} ;;
        esac
        v=${BASH_REMATCH[3]}
    done
    [ -n "$_realm" ]
}

# http METHOD PATH [curl args...] — lib.sh's, with the mode's credentials.
# A retry resends the same arguments, so a --data-binary @FILE body goes again.
http() {
    local method=$1 path=$2 st p repo="" from="" scope="" sent="" fresh="" k1="" k2=""
    shift 2
    case $BR_AUTH_MODE in
    "") http_raw "$method" "$path" "$@"; return ;;
    basic) http_raw "$method" "$path" -H "Authorization: $OCI_BASIC" "$@"; return ;;
    esac
    p=${path%%\?*}
    [[ $p =~ ^/v2/(.+)/(blobs|manifests|tags|referrers)/ ]] && repo=${BASH_REMATCH[1]}
    [[ $path =~ [?\&]from=([^\&]*) ]] && from=${BASH_REMATCH[1]}
    _oci_cache_file memo "$method ${repo:-$p} $from" && k1=$_f
    # A mount needs pull on its source too, which berth does not challenge
    # for when the token lacks it (it answers 202, a plain upload): only the
    # challenge of a mount itself tells the client what to ask for.
    [ -z "$repo" ] || [ -n "$from" ] || { _oci_cache_file memo "$repo" && k2=$_f; }
    # (realm and service as configured: base.sh checks every challenge names them)
    if { [ -n "$k1" ] && read -r scope 2>/dev/null <"$k1"; } || { [ -n "$k2" ] && read -r scope 2>/dev/null <"$k2"; }; then
        oci_token "$BR_URL/token" "$OCI_SERVICE" "$scope" && sent=$OCI_TOKEN
    fi
    # the status goes through a file: one fork fewer per request than $(...)
    http_raw "$method" "$path" ${sent:+-H "Authorization: Bearer $sent"} "$@" >"$BR_TMP/auth/st"
    read -r st <"$BR_TMP/auth/st" || true
    if [ "$st" = 401 ] && _oci_challenge; then
        # A token already sent for exactly this scope was refused (expired?):
        # fetch a new one rather than resend the cached one.
        [ -n "$sent" ] && [ "$_scope" = "$scope" ] && fresh=fresh
        oci_token "$_realm" "$_service" "$_scope" $fresh &&
            st=$(http_raw "$method" "$path" -H "Authorization: Bearer $OCI_TOKEN" "$@")
        [ -z "$k1" ] || printf '%s\n' "$_scope" >"$k1"
        [ -z "$k2" ] || printf '%s\n' "$_scope" >"$k2"
    fi
    printf '%s' "$st"
}

# oci_authorization PATH — sets OCI_AUTHZ to an Authorization value for a
# request on PATH that cannot go through `http` (raw-socket probes): the Basic
# credentials, or a token with pull on PATH's repository; empty with auth off.
oci_authorization() {
    local p=${1%%\?*} scope=""
    OCI_AUTHZ=""
    case $BR_AUTH_MODE in
    basic) OCI_AUTHZ=$OCI_BASIC ;;
    token)
        [[ $p =~ ^/v2/(.+)/(blobs|manifests|tags|referrers)/ ]] && scope="repository:${BASH_REMATCH[1]}:pull"
        oci_token "$BR_URL/token" "$OCI_SERVICE" "$scope" && OCI_AUTHZ="Bearer $OCI_TOKEN"
        ;;
    esac
}

# ms — milliseconds since the epoch (for timing diagnostics).
ms() { date +%s%3N; }

# head_is_clean PATH — sends HEAD PATH and then GET /v2/ on one HTTP/1.1
# connection and checks that the second response starts right after the
# first header block: a HEAD response MUST NOT carry a body. curl cannot
# check this itself (with -I it never reads a body).
head_is_clean() {
    oci_authorization "$1"
    "$PY" - "$BR_PORT" "$1" "$OCI_AUTHZ" <<'PY'
import socket, sys
port, path, authz = int(sys.argv[1]), sys.argv[2], sys.argv[3]
a = "Authorization: %s\r\n" % authz if authz else ""
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("HEAD %s HTTP/1.1\r\nHost: t\r\n%s\r\nGET /v2/ HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n" % (path, a, a)).encode())
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    data += chunk
end = data.find(b"\r\n\r\n")
rest = data[end + 4:] if end >= 0 else b""
sys.exit(0 if rest.startswith(b"HTTP/1.1 200") else 1)
PY
}

# got STATUS WANT_STATUS FILE — the last response had WANT_STATUS and its
# body is byte-identical to FILE.
got() { [ "$1" = "$2" ] && cmp -s "$BR_TMP/b" "$3"; }

# like GOT REGEX NAME — lib.sh's, matched by bash itself (POSIX ERE, as grep
# -E) instead of a grep per check.
like() {
    _tap_n=$((_tap_n + 1))
    if [[ $1 =~ $2 ]]; then
        echo "ok $_tap_n - $3"
    else
        echo "not ok $_tap_n - $3"
        echo "#   got:  '${1:0:600}'"
        echo "#   want match: '$2'"
        _tap_failed=$((_tap_failed + 1))
    fi
}
