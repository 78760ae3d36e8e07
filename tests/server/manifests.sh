#!/bin/bash
# Manifests, tags, catalog and referrers against the OCI Distribution Spec
# v1.1: "Pulling manifests", "Pushing Manifests" (and "with a subject"),
# "Content Discovery" (tags list with n/last/Link, referrers with the
# artifactType filter), "Content Management" (deleting tags and manifests),
# endpoints end-3, end-7, end-8a/8b, end-9, end-12a/12b, and the error codes.
# Manifests are stored byte for byte: the test writes them with odd
# formatting and compares what comes back.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

t0=$(ms)
br_start || { ok "berth starts" false; done_testing; exit 1; }
F=$BR_TMP/files
mkdir -p "$F"
R=mf/img

# ---- blobs the manifests reference --------------------------------------------------
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$F/config"
randfile "$F/layer" 4096
randfile "$F/layer2" 2048
printf '{}' >"$F/empty"
printf '{"sbom":"yes"}' >"$F/excfg"
for f in config layer layer2 empty excfg; do
    ok "push blob $f" push_blob $R "$F/$f"
done
c_d=$(sha256d "$F/config") c_s=$(fsize "$F/config")
l_d=$(sha256d "$F/layer") l_s=$(fsize "$F/layer")
l2_d=$(sha256d "$F/layer2") l2_s=$(fsize "$F/layer2")
e_d=$(sha256d "$F/empty")
x_d=$(sha256d "$F/excfg") x_s=$(fsize "$F/excfg")
is "$e_d" "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" "the empty blob {} has the well-known digest"

# image_manifest FILE ANNOTATION_VALUE [LAYER_DIGEST LAYER_SIZE] — an OCI image
# manifest with deliberately odd formatting (the registry MUST keep the bytes).
image_manifest() {
    local ld=${3:-$l_d} ls=${4:-$l_s}
    cat >"$1" <<EOF
{
   "schemaVersion" : 2,
   "mediaType": "$OCI_MANIFEST",
   "config": { "mediaType": "$OCI_CONFIG", "digest": "$c_d", "size": $c_s },
   "layers": [
      { "mediaType": "$OCI_LAYER", "digest": "$ld", "size": $ls }
   ],
   "annotations": { "test.note": "$2" }
}
EOF
}

# ---- PUT by tag, GET/HEAD by tag and digest (end-7, end-3) ----------------------------
image_manifest "$F/m1" one
m1_d=$(sha256d "$F/m1") m1_s=$(fsize "$F/m1")
st=$(put_manifest $R v1 "$F/m1" $OCI_MANIFEST)
is "$st" 201 "PUT manifest by tag is 201"
is "$(header Docker-Content-Digest)" "$m1_d" "PUT: Docker-Content-Digest is the sha256 of the exact bytes"
loc=$(header Location | loc_path)
like "$loc" "^/v2/$R/manifests/" "PUT: Location is a manifest URL"
st=$(http GET "$loc" -H "Accept: $OCI_MANIFEST")
ok "PUT: the Location is pullable" got "$st" 200 "$F/m1"
for ref in v1 "$m1_d"; do
    st=$(http GET "/v2/$R/manifests/$ref" -H "Accept: $OCI_MANIFEST")
    is "$st" 200 "GET manifest by ${ref:0:12} is 200"
    is "$(header Content-Type)" "$OCI_MANIFEST" "GET by ${ref:0:12}: Content-Type is the media type"
    is "$(header Docker-Content-Digest)" "$m1_d" "GET by ${ref:0:12}: Docker-Content-Digest"
    is "$(header Content-Length)" "$m1_s" "GET by ${ref:0:12}: Content-Length"
    ok "GET by ${ref:0:12}: body byte-identical to what was pushed" cmp -s "$BR_TMP/b" "$F/m1"
    st=$(http HEAD "/v2/$R/manifests/$ref" -I -H "Accept: $OCI_MANIFEST")
    is "$st" 200 "HEAD manifest by ${ref:0:12} is 200"
    is "$(header Content-Type)" "$OCI_MANIFEST" "HEAD by ${ref:0:12}: Content-Type"
    is "$(header Docker-Content-Digest)" "$m1_d" "HEAD by ${ref:0:12}: Docker-Content-Digest"
    is "$(header Content-Length)" "$m1_s" "HEAD by ${ref:0:12}: Content-Length"
    ok "HEAD by ${ref:0:12}: no body on the wire" head_is_clean "/v2/$R/manifests/$ref"
done
st=$(http GET "/v2/$R/manifests/v1" -H 'Accept:')
ok "GET without an Accept header returns the manifest" got "$st" 200 "$F/m1"
st=$(http GET "/v2/$R/manifests/v1" -H 'Accept: */*')
ok "GET with Accept: */* returns the manifest" got "$st" 200 "$F/m1"
st=$(http GET "/v2/$R/manifests/v1" -H "Accept: $DOCKER_MANIFEST;q=0.9, $OCI_MANIFEST;q=0.5, $OCI_INDEX")
ok "GET with a list of accepted types (q values) returns the manifest" got "$st" 200 "$F/m1"
st=$(http GET "/v2/$R/manifests/v1" -H "Accept: $DOCKER_MANIFEST" -H "Accept: $OCI_MANIFEST")
ok "GET with Accept split over two header lines returns the manifest" got "$st" 200 "$F/m1"
st=$(http GET "/v2/$R/manifests/v1" -H "Accept: $DOCKER_MANIFEST, $DOCKER_LIST")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET with an Accept that excludes the type (never converted)"

# ---- PUT by digest ------------------------------------------------------------------------
image_manifest "$F/m2" two "$l2_d" "$l2_s"
m2_d=$(sha256d "$F/m2") m2_s=$(fsize "$F/m2")
st=$(put_manifest $R "$m2_d" "$F/m2" $OCI_MANIFEST)
is "$st" 201 "PUT manifest by digest is 201"
is "$(header Docker-Content-Digest)" "$m2_d" "PUT by digest: Docker-Content-Digest"
st=$(http GET "/v2/$R/manifests/$m2_d")
ok "PUT by digest: GET by digest returns it" got "$st" 200 "$F/m2"

# ---- rejected manifests ---------------------------------------------------------------------
image_manifest "$F/m3" three
m3_d=$(sha256d "$F/m3")
st=$(put_manifest $R "$m2_d" "$F/m3" $OCI_MANIFEST)
expect_error "$st" 400 DIGEST_INVALID "PUT by a digest that does not match the body"
st=$(http GET "/v2/$R/manifests/$m3_d")
is "$st" 404 "digest mismatch: the body was not stored under its own digest"
st=$(put_manifest $R "sha256:xyz" "$F/m3" $OCI_MANIFEST)
expect_error "$st" "400|404" "DIGEST_INVALID|MANIFEST_INVALID|NAME_INVALID" "PUT by a malformed digest reference"

image_manifest "$F/miss" missing "sha256:$(str_sha256 not-pushed)" 10
st=$(put_manifest $R v-miss "$F/miss" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_BLOB_UNKNOWN "PUT referencing a missing layer"
sed "s/$c_d/sha256:$(str_sha256 no-config)/" "$F/m1" >"$F/misscfg"
st=$(put_manifest $R v-miss "$F/misscfg" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_BLOB_UNKNOWN "PUT referencing a missing config"
st=$(http GET "/v2/$R/manifests/v-miss")
is "$st" 404 "a rejected manifest's tag does not exist"
push_blob mf/elsewhere "$F/layer" >/dev/null
randfile "$F/only-elsewhere" 777
push_blob mf/elsewhere "$F/only-elsewhere"
image_manifest "$F/other-repo" x "$(sha256d "$F/only-elsewhere")" 777
st=$(put_manifest $R v-other "$F/other-repo" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_BLOB_UNKNOWN "PUT referencing a blob that only another repository has"

printf '{"schemaVersion": 2, "mediaType": "%s", "config": ' "$OCI_MANIFEST" >"$F/badjson"
st=$(put_manifest $R v-bad "$F/badjson" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_INVALID "PUT invalid JSON"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[],"layers":[]}' \
    "$OCI_MANIFEST" "$OCI_CONFIG" "$c_d" "$c_s" >"$F/dupkeys"
st=$(put_manifest $R v-bad "$F/dupkeys" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_INVALID "PUT with duplicate keys"
printf '{"schemaVersion":1,"name":"%s","tag":"v-bad","architecture":"amd64","fsLayers":[],"history":[]}' "$R" >"$F/schema1"
st=$(put_manifest $R v-bad "$F/schema1" application/vnd.docker.distribution.manifest.v1+json)
expect_error "$st" 400 "MANIFEST_INVALID|UNSUPPORTED" "PUT schemaVersion 1"
sed 's/"schemaVersion" : 2/"schemaVersion" : 1/' "$F/m1" >"$F/sv1oci"
st=$(put_manifest $R v-bad "$F/sv1oci" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_INVALID "PUT an OCI manifest with schemaVersion 1"
st=$(http PUT "/v2/$R/manifests/v-bad" --data-binary '' -H "Content-Type: $OCI_MANIFEST")
expect_error "$st" 400 MANIFEST_INVALID "PUT an empty body"
st=$(http GET "/v2/$R/manifests/v-bad")
is "$st" 404 "none of the invalid manifests was tagged"
for badtag in "-lead" ".lead" "$(printf 't%.0s' $(seq 129))" "a+b"; do
    st=$(put_manifest $R "$badtag" "$F/m1" $OCI_MANIFEST)
    expect_error "$st" "400|404" "[A-Z_]+" "PUT with an invalid tag '${badtag:0:12}'"
done
# A reference that is neither a tag nor a digest names no manifest: GET, HEAD
# and DELETE say 404 MANIFEST_UNKNOWN (the conformance suite v1.1.1 asks GET and
# HEAD of .INVALID_MANIFEST_NAME for 404); only a PUT is told it is invalid.
st=$(put_manifest $R .INVALID_MANIFEST_NAME "$F/m1" $OCI_MANIFEST)
expect_error "$st" 400 MANIFEST_INVALID "PUT .INVALID_MANIFEST_NAME"
for badref in .INVALID_MANIFEST_NAME -lead "$(printf 't%.0s' $(seq 129))" "a+b" "sha256:xyz" "md5:0123"; do
    st=$(http GET "/v2/$R/manifests/$badref" -H "Accept: $OCI_MANIFEST")
    expect_error "$st" 404 MANIFEST_UNKNOWN "GET of the invalid reference '${badref:0:12}'"
    is "$(http HEAD "/v2/$R/manifests/$badref" -I -H "Accept: $OCI_MANIFEST")" 404 "HEAD of '${badref:0:12}' is 404"
    st=$(http DELETE "/v2/$R/manifests/$badref")
    expect_error "$st" 404 MANIFEST_UNKNOWN "DELETE of the invalid reference '${badref:0:12}'"
done

# 4 MiB: a registry SHOULD take manifests of at least 4 MiB, and SHOULD answer
# 413 above its limit.
big_manifest() { # FILE TOTAL_BYTES
    "$PY" - "$1" "$2" "$OCI_MANIFEST" "$OCI_CONFIG" "$c_d" "$c_s" "$OCI_LAYER" "$l_d" "$l_s" <<'PY'
import sys
path, total, mt, cmt, cd, cs, lmt, ld, ls = sys.argv[1:]
head = '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}],"annotations":{"pad":"' % (mt, cmt, cd, cs, lmt, ld, ls)
tail = '"}}'
open(path, "w").write(head + "x" * (int(total) - len(head) - len(tail)) + tail)
PY
}
big_manifest "$F/4mib" $((4 * 1024 * 1024))
is "$(fsize "$F/4mib")" $((4 * 1024 * 1024)) "built a manifest of exactly 4 MiB"
st=$(put_manifest $R big "$F/4mib" $OCI_MANIFEST)
is "$st" 201 "a 4 MiB manifest is accepted"
st=$(http GET "/v2/$R/manifests/big")
ok "the 4 MiB manifest comes back identical" got "$st" 200 "$F/4mib"
big_manifest "$F/toobig" $((4 * 1024 * 1024 + 1))
st=$(put_manifest $R toobig "$F/toobig" $OCI_MANIFEST)
is "$st" 413 "a manifest over 4 MiB is 413"
empty_or_oci_error() { [ ! -s "$BR_TMP/b" ] || oci_error_body; }
ok "413: error body, if any, is an OCI error with registered codes" empty_or_oci_error
http DELETE "/v2/$R/manifests/$(sha256d "$F/4mib")" >/dev/null

# ---- Docker v2 schema 2 manifest and manifest list ------------------------------------
printf '{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$F/dconfig"
push_blob $R "$F/dconfig"
dc_d=$(sha256d "$F/dconfig") dc_s=$(fsize "$F/dconfig")
cat >"$F/docker" <<EOF
{
  "schemaVersion": 2,
  "mediaType": "$DOCKER_MANIFEST",
  "config": {"mediaType": "$DOCKER_CONFIG", "size": $dc_s, "digest": "$dc_d"},
  "layers": [{"mediaType": "$DOCKER_LAYER", "size": $l_s, "digest": "$l_d"}]
}
EOF
dk_d=$(sha256d "$F/docker") dk_s=$(fsize "$F/docker")
st=$(put_manifest $R docker "$F/docker" $DOCKER_MANIFEST)
is "$st" 201 "PUT Docker v2s2 manifest is 201"
is "$(header Docker-Content-Digest)" "$dk_d" "Docker v2s2: Docker-Content-Digest"
st=$(http GET "/v2/$R/manifests/docker" -H "Accept: $DOCKER_MANIFEST")
ok "GET Docker v2s2 manifest: identical" got "$st" 200 "$F/docker"
is "$(header Content-Type)" "$DOCKER_MANIFEST" "GET Docker v2s2: Content-Type"
cat >"$F/dlist" <<EOF
{
  "schemaVersion": 2,
  "mediaType": "$DOCKER_LIST",
  "manifests": [
    {"mediaType": "$DOCKER_MANIFEST", "size": $dk_s, "digest": "$dk_d", "platform": {"architecture": "arm64", "os": "linux"}},
    {"mediaType": "$OCI_MANIFEST", "size": $m1_s, "digest": "$m1_d", "platform": {"architecture": "amd64", "os": "linux"}}
  ]
}
EOF
dl_d=$(sha256d "$F/dlist")
st=$(put_manifest $R dlist "$F/dlist" $DOCKER_LIST)
is "$st" 201 "PUT Docker manifest list is 201"
st=$(http GET "/v2/$R/manifests/dlist" -H "Accept: $DOCKER_LIST")
ok "GET Docker manifest list: identical" got "$st" 200 "$F/dlist"
is "$(header Content-Type)" "$DOCKER_LIST" "GET Docker manifest list: Content-Type"
is "$(header Docker-Content-Digest)" "$dl_d" "GET Docker manifest list: Docker-Content-Digest"

# ---- OCI index ---------------------------------------------------------------------------------
cat >"$F/index" <<EOF
{"schemaVersion":2,"mediaType":"$OCI_INDEX","manifests":[
 {"mediaType":"$OCI_MANIFEST","digest":"$m1_d","size":$m1_s,"platform":{"architecture":"amd64","os":"linux"}},
 {"mediaType":"$OCI_MANIFEST","digest":"$m2_d","size":$m2_s,"platform":{"architecture":"arm64","os":"linux"}}]}
EOF
ix_d=$(sha256d "$F/index") ix_s=$(fsize "$F/index")
st=$(put_manifest $R index "$F/index" $OCI_INDEX)
is "$st" 201 "PUT OCI index is 201"
st=$(http GET "/v2/$R/manifests/index" -H "Accept: $OCI_INDEX")
ok "GET OCI index: identical" got "$st" 200 "$F/index"
is "$(header Content-Type)" "$OCI_INDEX" "GET OCI index: Content-Type"
st=$(http GET "/v2/$R/manifests/index" -H "Accept: $OCI_MANIFEST")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET an index with Accept: image manifest only"
sed "s/$m2_d/sha256:$(str_sha256 no-child)/" "$F/index" >"$F/index-miss"
st=$(put_manifest $R index-miss "$F/index-miss" $OCI_INDEX)
expect_error "$st" 400 MANIFEST_BLOB_UNKNOWN "PUT an index referencing a missing child manifest"

# ---- retag ------------------------------------------------------------------------------------------
st=$(put_manifest $R v1-copy "$F/m1" $OCI_MANIFEST)
is "$st" 201 "PUT the same bytes under a new tag is 201"
is "$(header Docker-Content-Digest)" "$m1_d" "retag: same digest"
st=$(http GET "/v2/$R/manifests/v1-copy")
ok "retag: new tag serves the manifest" got "$st" 200 "$F/m1"
st=$(put_manifest $R v1-copy "$F/m2" $OCI_MANIFEST)
is "$st" 201 "moving a tag to another manifest is 201"
st=$(http GET "/v2/$R/manifests/v1-copy")
ok "moved tag serves the new manifest" got "$st" 200 "$F/m2"
st=$(http GET "/v2/$R/manifests/v1")
ok "the other tag still serves the old one" got "$st" 200 "$F/m1"
st=$(http GET "/v2/$R/manifests/$m1_d")
is "$st" 200 "the old manifest is still there by digest"

# ---- unknown manifests ---------------------------------------------------------------------
st=$(http GET "/v2/$R/manifests/nope")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET an unknown tag"
st=$(http HEAD "/v2/$R/manifests/nope" -I)
is "$st" 404 "HEAD an unknown tag is 404"
st=$(http GET "/v2/$R/manifests/sha256:$(str_sha256 nope)")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET an unknown digest"
st=$(http GET "/v2/$R/manifests/$l_d")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET a blob (not a manifest) through /manifests/"
st=$(http GET "/v2/mf/never/manifests/v1")
expect_error "$st" 404 "MANIFEST_UNKNOWN|NAME_UNKNOWN" "GET a manifest of an unknown repository"

# ---- tags list (end-8a, end-8b) ----------------------------------------------------------------------
for t in b2 a1 c1 a2 b1 latest 1.0 1.0.1 z_9 zz-top; do
    put_manifest $R "$t" "$F/m1" $OCI_MANIFEST >/dev/null
done
st=$(http GET "/v2/$R/tags/list")
is "$st" 200 "GET tags/list is 200"
is "$(jq -r .name "$BR_TMP/b")" "$R" "tags list: name is the repository"
jq -r '.tags[]' "$BR_TMP/b" >"$F/tags"
LC_ALL=C sort "$F/tags" >"$F/tags.sorted"
ok "tags list is sorted" cmp -s "$F/tags" "$F/tags.sorted"
printf '%s\n' 1.0 1.0.1 a1 a2 b1 b2 c1 dlist docker index latest v1 v1-copy z_9 zz-top | LC_ALL=C sort >"$F/tags.want"
ok "tags list is complete and has no rejected tags" cmp -s "$F/tags.sorted" "$F/tags.want"
[ -s "$F/tags" ] || diag "tags: $(body)"
ok "unpaginated tags list has no Link header" test -z "$(header Link)"
# follow Link from n=2 to the end
: >"$F/paged"
url="/v2/$R/tags/list?n=2"
pages=0 bad_page=0 bad_link=0
while [ -n "$url" ] && [ $pages -lt 20 ]; do
    st=$(http GET "$url")
    pages=$((pages + 1))
    [ "$st" = 200 ] || bad_page=1
    n=$(jq '.tags | length' "$BR_TMP/b")
    [ "$n" -le 2 ] || bad_page=1
    jq -r '.tags[]' "$BR_TMP/b" >>"$F/paged"
    link=$(header Link)
    url=""
    if [ -n "$link" ]; then
        if [[ $link =~ ^\<([^>]+)\>\;\ *rel=\"next\"$ ]]; then
            url=$(printf '%s\n' "${BASH_REMATCH[1]}" | loc_path)
            [[ $url == *n=2* && $url == *last=* ]] || bad_link=1
        else
            bad_link=1
            diag "bad Link: $link"
        fi
    fi
done
is "$pages" 8 "n=2 over 15 tags: 8 pages by following Link"
is "$bad_page" 0 "every page is 200 with at most 2 tags"
is "$bad_link" 0 "every Link is <...?n=2&last=...>; rel=\"next\""
ok "the pages together are the whole sorted list" cmp -s "$F/paged" "$F/tags.want"
st=$(http GET "/v2/$R/tags/list?n=2")
is "$(jq -c .tags "$BR_TMP/b")" '["1.0","1.0.1"]' "n=2: the first two tags"
like "$(header Link)" "^<[^>]*/v2/$R/tags/list\?n=2&last=1\.0\.1>; rel=\"next\"$" "n=2: Link to the next page"
st=$(http GET "/v2/$R/tags/list?n=3&last=b1")
is "$(jq -c .tags "$BR_TMP/b")" '["b2","c1","dlist"]' "n=3&last=b1: the three tags after b1"
st=$(http GET "/v2/$R/tags/list?last=v1")
is "$(jq -c .tags "$BR_TMP/b")" '["v1-copy","z_9","zz-top"]' "last without n: every tag after it"
st=$(http GET "/v2/$R/tags/list?n=5&last=zz-top")
is "$st" 200 "last = the final tag is 200"
is "$(jq -c '.tags // []' "$BR_TMP/b")" '[]' "last = the final tag: empty list"
ok "last = the final tag: no Link" test -z "$(header Link)"
st=$(http GET "/v2/$R/tags/list?n=0")
is "$st" 200 "n=0 is 200"
is "$(jq -c '.tags // []' "$BR_TMP/b")" '[]' "n=0: empty list"
ok "n=0: no Link header" test -z "$(header Link)"
st=$(http GET "/v2/$R/tags/list?n=15")
is "$(jq '.tags | length' "$BR_TMP/b")" 15 "n = number of tags: all of them"
ok "n = number of tags: no Link" test -z "$(header Link)"
st=$(http GET "/v2/$R/tags/list?n=100")
is "$(jq '.tags | length' "$BR_TMP/b")" 15 "n above the number of tags: all of them"
st=$(http GET "/v2/mf/never/tags/list")
expect_error "$st" 404 NAME_UNKNOWN "tags list of an unknown repository"
st=$(http GET "/v2/$R/tags/list?n=abc")
if [ "$st" != 200 ]; then
    expect_error "$st" 400 "[A-Z_]+" "tags list with n=abc"
fi

# ---- catalog -------------------------------------------------------------------------------------------
for r in mf/cat1 mf/cat2 mf/cat3; do push_blob $r "$F/layer" || true; done
st=$(http GET /v2/_catalog)
is "$st" 200 "GET /v2/_catalog is 200"
jq -r '.repositories[]' "$BR_TMP/b" >"$F/repos"
LC_ALL=C sort "$F/repos" >"$F/repos.sorted"
ok "catalog is sorted" cmp -s "$F/repos" "$F/repos.sorted"
for r in $R mf/elsewhere mf/cat1 mf/cat2 mf/cat3; do
    ok "catalog lists $r" grep -qx "$r" "$F/repos"
done
: >"$F/rpaged"
url="/v2/_catalog?n=2"
pages=0 bad=0
while [ -n "$url" ] && [ $pages -lt 50 ]; do
    st=$(http GET "$url")
    pages=$((pages + 1))
    [ "$st" = 200 ] && [ "$(jq '.repositories | length' "$BR_TMP/b")" -le 2 ] || bad=1
    jq -r '.repositories[]' "$BR_TMP/b" >>"$F/rpaged"
    link=$(header Link)
    url=""
    if [[ $link =~ ^\<([^>]+)\>\;\ *rel=\"next\"$ ]]; then
        url=$(printf '%s\n' "${BASH_REMATCH[1]}" | loc_path)
    elif [ -n "$link" ]; then
        bad=1
    fi
done
is "$bad" 0 "catalog n=2: every page 200 with at most 2 entries and a well-formed Link"
ok "catalog pages together are the whole list" cmp -s "$F/rpaged" "$F/repos"
st=$(http GET "/v2/_catalog?n=1&last=mf/cat1")
is "$(jq -c .repositories "$BR_TMP/b")" '["mf/cat2"]' "catalog n=1&last=mf/cat1"

# ---- referrers (end-12a, end-12b) ------------------------------------------------------------------------
SBOM=application/vnd.example.sbom.v1
SIG=application/vnd.example.signature.v1
artifact() { # FILE ARTIFACT_TYPE SUBJECT_DIGEST SUBJECT_SIZE ANNOTATION
    cat >"$1" <<EOF
{"schemaVersion":2,"mediaType":"$OCI_MANIFEST","artifactType":"$2",
 "config":{"mediaType":"$OCI_EMPTY","digest":"$e_d","size":2},
 "layers":[{"mediaType":"$OCI_EMPTY","digest":"$e_d","size":2}],
 "subject":{"mediaType":"$OCI_MANIFEST","digest":"$3","size":$4},
 "annotations":{"org.opencontainers.image.created":"2024-01-01T00:00:00Z","test.kind":"$5"}}
EOF
}
artifact "$F/a1" $SBOM "$m1_d" "$m1_s" sbom
a1_d=$(sha256d "$F/a1") a1_s=$(fsize "$F/a1")
st=$(put_manifest $R "$a1_d" "$F/a1" $OCI_MANIFEST)
is "$st" 201 "PUT an artifact manifest with subject is 201"
is "$(header OCI-Subject)" "$m1_d" "artifact PUT: OCI-Subject is the subject digest"
artifact "$F/a2" $SIG "$m1_d" "$m1_s" sig
a2_d=$(sha256d "$F/a2")
st=$(put_manifest $R sig-tag "$F/a2" $OCI_MANIFEST)
is "$st" 201 "PUT a second artifact (by tag) is 201"
is "$(header OCI-Subject)" "$m1_d" "second artifact: OCI-Subject"
# A manifest with a subject but no artifactType: its descriptor's artifactType
# MUST be the config's media type.
cat >"$F/a3" <<EOF
{"schemaVersion":2,"mediaType":"$OCI_MANIFEST",
 "config":{"mediaType":"application/vnd.example.config.v1+json","digest":"$x_d","size":$x_s},
 "layers":[{"mediaType":"$OCI_LAYER","digest":"$l2_d","size":$l2_s}],
 "subject":{"mediaType":"$OCI_MANIFEST","digest":"$m1_d","size":$m1_s}}
EOF
a3_d=$(sha256d "$F/a3")
st=$(put_manifest $R "$a3_d" "$F/a3" $OCI_MANIFEST)
is "$st" 201 "PUT a subject manifest without artifactType (custom config type) is 201"
cat >"$F/a4" <<EOF
{"schemaVersion":2,"mediaType":"$OCI_MANIFEST",
 "config":{"mediaType":"$OCI_CONFIG","digest":"$c_d","size":$c_s},
 "layers":[{"mediaType":"$OCI_LAYER","digest":"$l_d","size":$l_s}],
 "subject":{"mediaType":"$OCI_MANIFEST","digest":"$m1_d","size":$m1_s}}
EOF
a4_d=$(sha256d "$F/a4")
st=$(put_manifest $R "$a4_d" "$F/a4" $OCI_MANIFEST)
is "$st" 201 "PUT an image manifest (image config, no artifactType) with subject is 201"
cat >"$F/i1" <<EOF
{"schemaVersion":2,"mediaType":"$OCI_INDEX",
 "manifests":[{"mediaType":"$OCI_MANIFEST","digest":"$m2_d","size":$m2_s}],
 "subject":{"mediaType":"$OCI_MANIFEST","digest":"$m1_d","size":$m1_s},
 "annotations":{"test.kind":"index"}}
EOF
i1_d=$(sha256d "$F/i1") i1_s=$(fsize "$F/i1")
st=$(put_manifest $R "$i1_d" "$F/i1" $OCI_INDEX)
is "$st" 201 "PUT an index with a subject is 201"
is "$(header OCI-Subject)" "$m1_d" "index with subject: OCI-Subject"

st=$(http GET "/v2/$R/referrers/$m1_d")
is "$st" 200 "GET referrers is 200"
is "$(header Content-Type)" "$OCI_INDEX" "referrers: Content-Type is the OCI index type"
cp "$BR_TMP/b" "$F/refs"
is "$(jq -r '.schemaVersion' "$F/refs")" 2 "referrers: schemaVersion 2"
is "$(jq -r '.mediaType' "$F/refs")" "$OCI_INDEX" "referrers: mediaType is the OCI index type"
is "$(jq '.manifests | length' "$F/refs")" 5 "referrers: five referrers"
desc() { jq -c --arg d "$1" '.manifests[] | select(.digest == $d)' "$F/refs"; }
is "$(desc "$a1_d" | jq -c '[.mediaType, .size, .artifactType, .annotations]')" \
    "$(jq -nc --arg mt $OCI_MANIFEST --argjson s "$a1_s" --arg at $SBOM \
        '[$mt, $s, $at, {"org.opencontainers.image.created":"2024-01-01T00:00:00Z","test.kind":"sbom"}]')" \
    "referrers: artifact descriptor has mediaType, size, artifactType and annotations"
is "$(desc "$a2_d" | jq -r .artifactType)" $SIG "referrers: second artifact's artifactType"
is "$(desc "$a3_d" | jq -r '.artifactType // "(none)"')" application/vnd.example.config.v1+json \
    "referrers: no artifactType -> the config's media type"
is "$(desc "$a4_d" | jq -r '.artifactType // "(none)"')" "$OCI_CONFIG" \
    "referrers: image manifest without artifactType -> artifactType is the image config type"
is "$(desc "$i1_d" | jq -c '[.mediaType, .size, (.artifactType // "(none)"), .annotations]')" \
    "$(jq -nc --arg mt $OCI_INDEX --argjson s "$i1_s" '[$mt, $s, "(none)", {"test.kind":"index"}]')" \
    "referrers: index descriptor (no artifactType, annotations copied)"
st=$(http GET "/v2/$R/referrers/$m1_d?artifactType=$SBOM")
is "$st" 200 "referrers ?artifactType= is 200"
is "$(header OCI-Filters-Applied)" artifactType "filtered referrers: OCI-Filters-Applied: artifactType"
is "$(jq -c '[.manifests[].digest]' "$BR_TMP/b")" "[\"$a1_d\"]" "filtered referrers: only the matching artifact"
st=$(http GET "/v2/$R/referrers/$m1_d?artifactType=application/vnd.example.none")
is "$(jq '.manifests | length' "$BR_TMP/b")" 0 "filter matching nothing: empty manifests"
st=$(http GET "/v2/$R/referrers/$m1_d")
ok "unfiltered referrers: no OCI-Filters-Applied" test -z "$(header OCI-Filters-Applied)"
st=$(http GET "/v2/$R/referrers/$m2_d")
is "$st" 200 "referrers of a manifest with none is 200"
is "$(header Content-Type)" "$OCI_INDEX" "no referrers: Content-Type OCI index"
is "$(jq -c '[.schemaVersion, .mediaType, .manifests]' "$BR_TMP/b")" "[2,\"$OCI_INDEX\",[]]" "no referrers: an empty image index"
st=$(http GET "/v2/$R/referrers/sha256:$(str_sha256 never-pushed)")
ok "referrers of an unknown digest: 200 with an empty index" test "$st" = 200 -a "$(jq '.manifests | length' "$BR_TMP/b" 2>/dev/null)" = 0
st=$(http GET "/v2/$R/referrers/sha256:xyz")
expect_error "$st" 400 "DIGEST_INVALID|[A-Z_]+" "referrers with an invalid digest"
# subject that does not exist (yet): MUST be accepted
ghost=sha256:$(str_sha256 ghost-subject)
artifact "$F/a5" $SBOM "$ghost" 123 ghost
a5_d=$(sha256d "$F/a5")
st=$(put_manifest $R "$a5_d" "$F/a5" $OCI_MANIFEST)
is "$st" 201 "a manifest whose subject does not exist is accepted"
is "$(header OCI-Subject)" "$ghost" "ghost subject: OCI-Subject"
st=$(http GET "/v2/$R/referrers/$ghost")
is "$(jq -c '[.manifests[].digest]' "$BR_TMP/b")" "[\"$a5_d\"]" "referrers of the not-yet-pushed subject list it"
st=$(http GET "/v2/mf/cat1/referrers/$m1_d")
is "$(jq '.manifests | length' "$BR_TMP/b")" 0 "referrers are per repository"

# ---- a listing never outlives a change (berth keeps each thread's last page) ----------------------------
# One connection (one server thread) lists, tags, lists, deletes, lists: every
# listing must show the state after the write before it. Auth modes skip this
# block (raw curl without the client's credentials); the rule is the same there.
if [ -z "${BR_AUTH_MODE:-}" ]; then
    image_manifest "$F/cache1" listing-cache
    curl -s -o "$BR_TMP/l1" "$BR_URL/v2/$R/tags/list" \
        --next -s -o /dev/null -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary @"$F/cache1" "$BR_URL/v2/$R/manifests/zz-cache" \
        --next -s -o "$BR_TMP/l2" "$BR_URL/v2/$R/tags/list" \
        --next -s -o "$BR_TMP/l2n" "$BR_URL/v2/$R/tags/list?n=1&last=zz-cach" \
        --next -s -o /dev/null -X DELETE "$BR_URL/v2/$R/manifests/zz-cache" \
        --next -s -o "$BR_TMP/l3" "$BR_URL/v2/$R/tags/list" \
        --next -s -o "$BR_TMP/l3n" "$BR_URL/v2/$R/tags/list?n=1&last=zz-cach"
    has_tag() { jq -e --arg t "$2" '.tags | index($t) != null' "$1" >/dev/null 2>&1; }
    ok "listing before the tag: no zz-cache" sh -c '! jq -e ".tags | index(\"zz-cache\")" "$1" >/dev/null' sh "$BR_TMP/l1"
    ok "listing right after tagging on the same connection shows zz-cache" has_tag "$BR_TMP/l2" zz-cache
    is "$(jq -c .tags "$BR_TMP/l2n")" '["zz-cache"]' "paginated listing after tagging shows zz-cache"
    ok "listing right after deleting on the same connection drops zz-cache" sh -c '! jq -e ".tags | index(\"zz-cache\")" "$1" >/dev/null' sh "$BR_TMP/l3"
    ok "paginated listing after deleting drops zz-cache" sh -c '! jq -e ".tags | index(\"zz-cache\")" "$1" >/dev/null' sh "$BR_TMP/l3n"
    is "$(jq -c .tags "$BR_TMP/l1")" "$(jq -c .tags "$BR_TMP/l3")" "the listing after tag + delete equals the one before"
fi

# ---- DELETE (end-9) ------------------------------------------------------------------------------------
st=$(http DELETE "/v2/$R/manifests/v1-copy")
is "$st" 202 "DELETE by tag is 202"
st=$(http GET "/v2/$R/manifests/v1-copy")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET a deleted tag"
st=$(http GET "/v2/$R/manifests/$m2_d")
is "$st" 200 "DELETE by tag leaves the manifest by digest"
st=$(http GET "/v2/$R/tags/list")
ok "deleted tag gone from tags list" sh -c "! jq -r '.tags[]' '$BR_TMP/b' | grep -qx v1-copy"
st=$(http DELETE "/v2/$R/manifests/v1-copy")
expect_error "$st" 404 MANIFEST_UNKNOWN "DELETE a deleted tag again"

image_manifest "$F/d1" deleteme
d1_d=$(sha256d "$F/d1")
put_manifest $R del-a "$F/d1" $OCI_MANIFEST >/dev/null
put_manifest $R del-b "$F/d1" $OCI_MANIFEST >/dev/null
st=$(http DELETE "/v2/$R/manifests/$d1_d")
is "$st" 202 "DELETE by digest is 202"
st=$(http GET "/v2/$R/manifests/$d1_d")
expect_error "$st" 404 MANIFEST_UNKNOWN "GET a deleted manifest by digest"
st=$(http HEAD "/v2/$R/manifests/$d1_d" -I)
is "$st" 404 "HEAD a deleted manifest is 404"
for t in del-a del-b; do
    st=$(http GET "/v2/$R/manifests/$t")
    expect_error "$st" 404 MANIFEST_UNKNOWN "tag $t of the deleted manifest is gone"
done
st=$(http GET "/v2/$R/tags/list")
ok "tags of the deleted manifest gone from tags list" sh -c "! jq -r '.tags[]' '$BR_TMP/b' | grep -qx 'del-[ab]'"
st=$(http DELETE "/v2/$R/manifests/$d1_d")
expect_error "$st" 404 MANIFEST_UNKNOWN "DELETE a deleted manifest again"
st=$(http DELETE "/v2/mf/never/manifests/$d1_d")
expect_error "$st" 404 "MANIFEST_UNKNOWN|NAME_UNKNOWN" "DELETE in an unknown repository"
st=$(http DELETE "/v2/$R/manifests/$a2_d")
is "$st" 202 "DELETE a referrer by digest is 202"
st=$(http GET "/v2/$R/referrers/$m1_d")
ok "a deleted referrer leaves the referrers list" sh -c "! jq -r '.manifests[].digest' '$BR_TMP/b' | grep -qx '$a2_d'"
is "$(jq '.manifests | length' "$BR_TMP/b")" 4 "the other referrers remain"
st=$(http GET "/v2/$R/manifests/sig-tag")
is "$st" 404 "the deleted referrer's tag is gone"

ok "server exits cleanly" br_stop
diag "manifests.sh: $(($(ms) - t0)) ms"
done_testing
