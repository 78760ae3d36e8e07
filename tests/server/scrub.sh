#!/bin/bash
# Scrub (config scrub.rate): a blob whose file is corrupted behind berth's back
# is found by the background re-hash, quarantined (logged; GET and HEAD 404
# BLOB_UNKNOWN from then on, a manifest naming it is refused), reported by
# berth fsck, and healed by pushing it again; a blob whose file vanished is
# quarantined too (404 instead of a 500).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

CONF=$BR_TMP/scrub.yaml
printf 'scrub:\n  rate: 100MB/s\ngc:\n  interval: 0\n' >"$CONF"
conf() { echo "$CONF"; }
BR_START_CONFIG=conf
BR_ROOT=$BR_TMP/store
br_start || { ok "berth starts" false; done_testing; exit 1; }
at_exit br_stop

# until_404 DIGEST — GETs the blob of s/a until the scrub has quarantined it
# (15 s at most); prints the last status and leaves its body in $BR_TMP/b.
until_404() {
    local st="" i
    for i in $(seq 1 150); do
        st=$(http GET "/v2/s/a/blobs/$1")
        [ "$st" = 404 ] && break
        sleep 0.1
    done
    echo "$st"
}

printf 'the layer the disk will damage' >"$BR_TMP/layer"
printf '{"scrub":1}' >"$BR_TMP/cfg"
push_blob s/a "$BR_TMP/layer" && push_blob s/a "$BR_TMP/cfg"
L=$(sha256d "$BR_TMP/layer")
manifest() { # TAG-less body naming the layer
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}],"annotations":{"n":"%s"}}' \
        "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha256d "$BR_TMP/cfg")" "$(fsize "$BR_TMP/cfg")" "$OCI_LAYER" "$L" "$(fsize "$BR_TMP/layer")" "$1" >"$BR_TMP/m.$1"
}
manifest 1
is "$(put_manifest s/a v1 "$BR_TMP/m.1" "$OCI_MANIFEST")" 201 "push an image"
is "$(http GET "/v2/s/a/blobs/$L")" 200 "its layer is served"

# Same size, other bytes: only a re-hash can tell.
file="$BR_ROOT/blobs/sha256/${L:7:2}/${L:7}"
printf 'THE LAYER THE DISK WILL DAMAGE' >"$file"
is "$(until_404 "$L")" 404 "the scrub quarantines the corrupted layer: GET 404"
is "$(oci_error_check)" "BLOB_UNKNOWN 1" "... BLOB_UNKNOWN, so clients push it again"
is "$(http HEAD "/v2/s/a/blobs/$L" -I)" 404 "HEAD 404 too"
like "$(cat "$BR_TMP/server.log")" "error scrub: blob $L: content hashes to [0-9a-f]{64}; quarantined" "logged as an error"
manifest 2
is "$(put_manifest s/a v2 "$BR_TMP/m.2" "$OCI_MANIFEST")" 400 "a manifest naming it is refused"
is "$(oci_error_check)" "MANIFEST_BLOB_UNKNOWN 1" "... MANIFEST_BLOB_UNKNOWN"
out=$("$BERTH" fsck -c "$CONF" --root "$BR_ROOT" 2>&1)
is "$?" 1 "berth fsck: exit 1"
like "$out" "$L: quarantined by the scrub" "... reports the quarantined blob"

push_blob s/a "$BR_TMP/layer"
is "$(http GET "/v2/s/a/blobs/$L")" 200 "pushed again: served"
is "$(sha256_of "$BR_TMP/b")" "${L:7}" "... with its true bytes"
is "$(put_manifest s/a v2 "$BR_TMP/m.2" "$OCI_MANIFEST")" 201 "and a manifest may name it again"
out=$("$BERTH" fsck -c "$CONF" --root "$BR_ROOT" 2>&1)
is "$?" 0 "fsck is clean after the heal"

# A file gone: 404 rather than 500 once the scrub has seen it.
printf 'a layer whose file vanishes' >"$BR_TMP/gone"
push_blob s/a "$BR_TMP/gone"
G=$(sha256d "$BR_TMP/gone")
rm "$BR_ROOT/blobs/sha256/${G:7:2}/${G:7}"
is "$(until_404 "$G")" 404 "a blob whose file vanished: quarantined, 404"
push_blob s/a "$BR_TMP/gone"
is "$(http GET "/v2/s/a/blobs/$G")" 200 "pushed again: served"
rc=0
br_stop || rc=$?
is "$rc" 0 "the server stops cleanly with the scrub running"
no_sanitizer_report "$BR_TMP/server.log"
done_testing
