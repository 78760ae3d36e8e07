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

# ms — milliseconds since the epoch (for timing diagnostics).
ms() { date +%s%3N; }

# head_is_clean PATH — sends HEAD PATH and then GET /v2/ on one HTTP/1.1
# connection and checks that the second response starts right after the
# first header block: a HEAD response MUST NOT carry a body. curl cannot
# check this itself (with -I it never reads a body).
head_is_clean() {
    "$PY" - "$BR_PORT" "$1" <<'PY'
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("HEAD %s HTTP/1.1\r\nHost: t\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path).encode())
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
