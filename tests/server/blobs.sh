#!/bin/bash
# Blob push and pull against the OCI Distribution Spec v1.1 ("Pull" / "Push" /
# "Content Management" workflows, endpoints end-2, end-4a/4b, end-5, end-6,
# end-10, end-11, end-13, end-14, and the error codes table), checked with
# curl the way the conformance suite checks them: every way the spec allows
# to push a blob, GET/HEAD with Range, cross-repository mounts, deletes,
# upload sessions, and the error responses (status + registered code).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

t0=$(ms)
br_start || { ok "berth starts" false; done_testing; exit 1; }
F=$BR_TMP/files
mkdir -p "$F"

# ---- starting an upload session (end-4a) ----------------------------------
st=$(http POST /v2/blobs/a/blobs/uploads/ --data-binary '' -H "$OCT")
is "$st" 202 "POST /blobs/uploads/ with Content-Length: 0 is 202"
loc=$(header Location)
like "$loc" '/v2/blobs/a/blobs/uploads/[^/?]+' "POST: Location names an upload session"
uuid=$(header Docker-Upload-UUID)
ok "POST: Docker-Upload-UUID is set" test -n "$uuid"
like "$loc" "$uuid" "POST: the Location contains the session id"
like "$(header OCI-Chunk-Min-Length)" '^[0-9]+$' "POST: OCI-Chunk-Min-Length is a byte count"
st2=$(http POST /v2/blobs/a/blobs/uploads/ --data-binary '' -H "$OCT")
ok "a second POST gets a different session" test "$st2" = 202 -a "$(header Docker-Upload-UUID)" != "$uuid"

# ---- monolithic: POST then PUT (end-4a + end-6) ------------------------------
randfile "$F/mono" 5000
d_mono=$(sha256d "$F/mono")
loc=$(start_upload blobs/a)
st=$(http PUT "$(with_query "$loc" "digest=$d_mono")" --data-binary @"$F/mono" -H "$OCT")
is "$st" 201 "POST+PUT: PUT ?digest= with the whole blob is 201"
is "$(header Location | loc_path)" "/v2/blobs/a/blobs/$d_mono" "POST+PUT: Location is the blob URL"
is "$(header Docker-Content-Digest)" "$d_mono" "POST+PUT: Docker-Content-Digest"
bloc=$(header Location | loc_path)
st=$(http GET "$bloc")
is "$st" 200 "POST+PUT: the Location is pullable"
ok "POST+PUT: pulled content is byte-identical" cmp -s "$BR_TMP/b" "$F/mono"
st=$(http GET "$loc")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "the session is gone after PUT"

# ---- monolithic: single POST ?digest= (end-4b) ----------------------------------
randfile "$F/single" 3333
d_single=$(sha256d "$F/single")
st=$(http POST "/v2/blobs/a/blobs/uploads/?digest=$d_single" --data-binary @"$F/single" -H "$OCT")
is "$st" 201 "single POST ?digest= is 201"
is "$(header Location | loc_path)" "/v2/blobs/a/blobs/$d_single" "single POST: Location is the blob URL"
is "$(header Docker-Content-Digest)" "$d_single" "single POST: Docker-Content-Digest"
st=$(http GET "/v2/blobs/a/blobs/$d_single")
ok "single POST: blob pulls back identical" test "$st" = 200 -a "$(sha256d "$BR_TMP/b")" = "$d_single"

# ---- chunked: POST, PATCH with Content-Range, PUT (end-5, end-6, end-13) -------
randfile "$F/chunked" 300000
d_chunked=$(sha256d "$F/chunked")
head -c 100000 "$F/chunked" >"$F/c1"
tail -c +100001 "$F/chunked" | head -c 150000 >"$F/c2"
tail -c +250001 "$F/chunked" >"$F/c3"
loc=$(start_upload blobs/a)
st=$(http PATCH "$loc" --data-binary @"$F/c1" -H "$OCT" -H "Content-Range: 0-99999")
is "$st" 202 "PATCH chunk 0-99999 is 202"
is "$(header Range)" "0-99999" "PATCH: Range is 0-<end of range>"
ok "PATCH: Location is set" test -n "$(header Location)"
ok "PATCH: Docker-Upload-UUID is set" test -n "$(header Docker-Upload-UUID)"
loc=$(header Location | loc_path)
st=$(http GET "$loc")
is "$st" 204 "GET upload status is 204"
is "$(header Range)" "0-99999" "GET upload status: Range"
ok "GET upload status: Location is set" test -n "$(header Location)"
ok "GET upload status: empty body" test ! -s "$BR_TMP/b"
st=$(http PATCH "$loc" --data-binary @"$F/c2" -H "$OCT" -H "Content-Range: 100000-249999")
is "$st" 202 "PATCH chunk 100000-249999 is 202"
is "$(header Range)" "0-249999" "second PATCH: Range covers both chunks"
loc=$(header Location | loc_path)
st=$(http PATCH "$loc" --data-binary @"$F/c3" -H "$OCT" -H "Content-Range: 250000-299999")
is "$st" 202 "PATCH final chunk is 202"
is "$(header Range)" "0-299999" "final PATCH: Range is 0-299999"
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_chunked")" --data-binary '' -H "$OCT")
is "$st" 201 "closing PUT ?digest= without a body is 201"
is "$(header Docker-Content-Digest)" "$d_chunked" "closing PUT: Docker-Content-Digest"
is "$(header Location | loc_path)" "/v2/blobs/a/blobs/$d_chunked" "closing PUT: Location is the blob URL"
st=$(http GET "/v2/blobs/a/blobs/$d_chunked")
ok "chunked: blob pulls back identical" test "$st" = 200 -a "$(sha256d "$BR_TMP/b")" = "$d_chunked"

# ---- chunked: PATCH without Content-Range (streamed, as docker does) -------------
randfile "$F/stream" 70000
d_stream=$(sha256d "$F/stream")
head -c 30000 "$F/stream" >"$F/s1"
tail -c +30001 "$F/stream" >"$F/s2"
loc=$(start_upload blobs/a)
st=$(http PATCH "$loc" --data-binary @"$F/s1" -H "$OCT")
is "$st" 202 "PATCH without Content-Range is 202"
is "$(header Range)" "0-29999" "PATCH without Content-Range: Range"
loc=$(header Location | loc_path)
st=$(http PATCH "$loc" --data-binary @"$F/s2" -H "$OCT")
is "$st" 202 "second PATCH without Content-Range is 202"
is "$(header Range)" "0-69999" "second PATCH without Content-Range: Range"
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_stream")" --data-binary '' -H "$OCT")
is "$st" 201 "streamed upload: closing PUT is 201"
st=$(http GET "/v2/blobs/a/blobs/$d_stream")
ok "streamed upload: blob pulls back identical" test "$st" = 200 -a "$(sha256d "$BR_TMP/b")" = "$d_stream"

# ---- chunked: final chunk in the closing PUT -----------------------------------
randfile "$F/final" 40000
d_final=$(sha256d "$F/final")
head -c 25000 "$F/final" >"$F/f1"
tail -c +25001 "$F/final" >"$F/f2"
loc=$(start_upload blobs/a)
st=$(http PATCH "$loc" --data-binary @"$F/f1" -H "$OCT" -H "Content-Range: 0-24999")
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_final")" --data-binary @"$F/f2" -H "$OCT" -H "Content-Range: 25000-39999")
is "$st" 201 "closing PUT carrying the final chunk (with Content-Range) is 201"
st=$(http GET "/v2/blobs/a/blobs/$d_final")
ok "final chunk in PUT: blob pulls back identical" test "$st" = 200 -a "$(sha256d "$BR_TMP/b")" = "$d_final"
randfile "$F/final2" 20000
d_final2=$(sha256d "$F/final2")
head -c 5000 "$F/final2" >"$F/g1"
tail -c +5001 "$F/final2" >"$F/g2"
loc=$(start_upload blobs/a)
http PATCH "$loc" --data-binary @"$F/g1" -H "$OCT" >/dev/null
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_final2")" --data-binary @"$F/g2" -H "$OCT")
is "$st" 201 "closing PUT carrying the final chunk (no Content-Range) is 201"
st=$(http GET "/v2/blobs/a/blobs/$d_final2")
ok "final chunk in PUT without Content-Range: content right" test "$st" = 200 -a "$(sha256d "$BR_TMP/b")" = "$d_final2"

# ---- zero-length blob ------------------------------------------------------------
: >"$F/empty"
d_empty=$(sha256d "$F/empty")
st=$(http POST "/v2/blobs/a/blobs/uploads/?digest=$d_empty" --data-binary '' -H "$OCT")
is "$st" 201 "zero-length blob by single POST is 201"
loc=$(start_upload blobs/z)
st=$(http PUT "$(with_query "$loc" "digest=$d_empty")" --data-binary '' -H "$OCT")
is "$st" 201 "zero-length blob by POST+PUT is 201"
st=$(http GET "/v2/blobs/z/blobs/$d_empty")
is "$st" 200 "GET zero-length blob is 200"
is "$(header Content-Length)" 0 "zero-length blob: Content-Length 0"
is "$(header Docker-Content-Digest)" "$d_empty" "zero-length blob: Docker-Content-Digest"
st=$(http HEAD "/v2/blobs/z/blobs/$d_empty" -I)
is "$st" 200 "HEAD zero-length blob is 200"

# ---- GET / HEAD (end-2) -------------------------------------------------------------
st=$(http GET "/v2/blobs/a/blobs/$d_mono")
is "$st" 200 "GET blob is 200"
is "$(header Content-Length)" 5000 "GET blob: Content-Length"
is "$(header Docker-Content-Digest)" "$d_mono" "GET blob: Docker-Content-Digest"
like "$(header ETag)" "^(W/)?\"?$d_mono\"?\$" "GET blob: ETag carries the digest"
ok "GET blob: Content-Type is set" test -n "$(header Content-Type)"
ok "GET blob: body is byte-identical" cmp -s "$BR_TMP/b" "$F/mono"
st=$(http HEAD "/v2/blobs/a/blobs/$d_mono" -I)
is "$st" 200 "HEAD blob is 200"
is "$(header Content-Length)" 5000 "HEAD blob: Content-Length is the blob size"
is "$(header Docker-Content-Digest)" "$d_mono" "HEAD blob: Docker-Content-Digest"
ok "HEAD blob: no body on the wire" head_is_clean "/v2/blobs/a/blobs/$d_mono"
ok "HEAD of a missing blob: no body on the wire" head_is_clean "/v2/blobs/a/blobs/sha256:$(str_sha256 nope)"
st=$(http HEAD "/v2/blobs/a/blobs/sha256:$(str_sha256 nope)" -I)
is "$st" 404 "HEAD of an unknown blob is 404"
st=$(http GET "/v2/blobs/a/blobs/sha256:$(str_sha256 nope)")
expect_error "$st" 404 BLOB_UNKNOWN "GET unknown blob"
st=$(http GET "/v2/blobs/never/blobs/$d_mono")
expect_error "$st" 404 "BLOB_UNKNOWN|NAME_UNKNOWN" "GET blob in an unknown repository"

# ---- Range ----------------------------------------------------------------------------
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=0-99')
is "$st" 206 "Range bytes=0-99 is 206"
is "$(header Content-Range)" "bytes 0-99/5000" "Range 0-99: Content-Range"
is "$(header Content-Length)" 100 "Range 0-99: Content-Length"
ok "Range 0-99: the right bytes" cmp -s "$BR_TMP/b" <(head -c 100 "$F/mono")
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=1000-1999')
is "$(header Content-Range)" "bytes 1000-1999/5000" "Range 1000-1999: Content-Range"
ok "Range 1000-1999: the right bytes" cmp -s "$BR_TMP/b" <(tail -c +1001 "$F/mono" | head -c 1000)
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=-100')
is "$st" 206 "suffix Range bytes=-100 is 206"
is "$(header Content-Range)" "bytes 4900-4999/5000" "suffix Range: Content-Range"
ok "suffix Range: the last 100 bytes" cmp -s "$BR_TMP/b" <(tail -c 100 "$F/mono")
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=4000-')
is "$st" 206 "open-ended Range bytes=4000- is 206"
is "$(header Content-Range)" "bytes 4000-4999/5000" "open-ended Range: Content-Range"
ok "open-ended Range: the right bytes" cmp -s "$BR_TMP/b" <(tail -c 1000 "$F/mono")
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=4990-99999')
is "$(header Content-Range)" "bytes 4990-4999/5000" "Range past the end is clamped"
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=5000-')
is "$st" 416 "Range starting at the size is 416"
is "$(header Content-Range)" "bytes */5000" "416: Content-Range bytes */size"
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=9000-9999')
is "$st" 416 "Range beyond the blob is 416"
st=$(http GET "/v2/blobs/a/blobs/$d_mono" -H 'Range: bytes=0-1,10-20')
is "$st" 200 "multiple ranges: the whole blob with 200"
ok "multiple ranges: body is the whole blob" cmp -s "$BR_TMP/b" "$F/mono"
st=$(http GET "/v2/blobs/a/blobs/$d_chunked" -H 'Range: bytes=200000-')
ok "Range on a multi-chunk blob: 206 and the right bytes" test "$st" = 206 -a "$(sha256_of "$BR_TMP/b")" = "$(tail -c 100000 "$F/chunked" | sha256sum | cut -d' ' -f1)"

# ---- a repository serves only the blobs linked to it -------------------------------
randfile "$F/other" 1000
push_blob blobs/b "$F/other"
st=$(http GET "/v2/blobs/b/blobs/$d_mono")
expect_error "$st" 404 BLOB_UNKNOWN "blob of repo a is not served by repo b"
st=$(http HEAD "/v2/blobs/b/blobs/$d_mono" -I)
is "$st" 404 "HEAD: blob of repo a is 404 in repo b"

# ---- cross-repository mount (end-11) --------------------------------------------------
st=$(http POST "/v2/blobs/b/blobs/uploads/?mount=$d_mono&from=blobs/a" --data-binary '' -H "$OCT")
is "$st" 201 "mount from a repository holding the blob is 201"
is "$(header Location | loc_path)" "/v2/blobs/b/blobs/$d_mono" "mount: Location is the blob in the target repo"
is "$(header Docker-Content-Digest)" "$d_mono" "mount: Docker-Content-Digest"
st=$(http GET "/v2/blobs/b/blobs/$d_mono")
ok "mount: blob now served by the target repo" got "$st" 200 "$F/mono"
st=$(http POST "/v2/blobs/c/blobs/uploads/?mount=$d_single&from=blobs/b" --data-binary '' -H "$OCT")
is "$st" 202 "mount from a repo lacking the blob falls back to an upload session (202)"
loc=$(header Location | loc_path)
like "$loc" '/v2/blobs/c/blobs/uploads/' "mount fallback: Location is an upload session"
st=$(http GET "/v2/blobs/c/blobs/$d_single")
is "$st" 404 "mount fallback: nothing was linked"
st=$(http PUT "$(with_query "$loc" "digest=$d_single")" --data-binary @"$F/single" -H "$OCT")
is "$st" 201 "mount fallback: the session takes the upload"
st=$(http POST "/v2/blobs/c/blobs/uploads/?mount=sha256:$(str_sha256 nowhere)&from=blobs/a" --data-binary '' -H "$OCT")
is "$st" 202 "mount of a digest unknown everywhere is 202"
st=$(http POST "/v2/blobs/c/blobs/uploads/?mount=$d_mono&from=blobs/never" --data-binary '' -H "$OCT")
is "$st" 202 "mount from an unknown repository is 202"
st=$(http POST "/v2/blobs/d/blobs/uploads/?mount=$d_chunked" --data-binary '' -H "$OCT")
is "$st" 201 "mount without from (automatic mount) is 201"
is "$(header Location | loc_path)" "/v2/blobs/d/blobs/$d_chunked" "automatic mount: Location"
st=$(http GET "/v2/blobs/d/blobs/$d_chunked")
ok "automatic mount: blob served by the target repo" test "$st" = 200 -a "$(sha256d "$BR_TMP/b")" = "$d_chunked"

# ---- DELETE blob (end-10) -----------------------------------------------------------------
st=$(http DELETE "/v2/blobs/a/blobs/$d_mono")
is "$st" 202 "DELETE blob is 202"
st=$(http GET "/v2/blobs/a/blobs/$d_mono")
expect_error "$st" 404 BLOB_UNKNOWN "GET after DELETE"
st=$(http HEAD "/v2/blobs/a/blobs/$d_mono" -I)
is "$st" 404 "HEAD after DELETE is 404"
st=$(http DELETE "/v2/blobs/a/blobs/$d_mono")
expect_error "$st" 404 BLOB_UNKNOWN "DELETE of a deleted blob"
st=$(http GET "/v2/blobs/b/blobs/$d_mono")
ok "DELETE in one repo leaves the mounted copy in another" got "$st" 200 "$F/mono"

# ---- upload sessions: cancel (end-14), unknown ones -------------------------------------
loc=$(start_upload blobs/a)
http PATCH "$loc" --data-binary @"$F/c1" -H "$OCT" -H "Content-Range: 0-99999" >/dev/null
loc=$(header Location | loc_path)
st=$(http DELETE "$loc")
is "$st" 204 "DELETE upload is 204"
st=$(http GET "$loc")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "GET status of a cancelled upload"
st=$(http PATCH "$loc" --data-binary @"$F/c2" -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PATCH a cancelled upload"
st=$(http PUT "$(with_query "$loc" "digest=$d_chunked")" --data-binary '' -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PUT a cancelled upload"
st=$(http DELETE "$loc")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "DELETE a cancelled upload again"

fake=$("$PY" -c 'import uuid; print(uuid.uuid4())')
st=$(http GET "/v2/blobs/a/blobs/uploads/$fake")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "GET status of an unknown upload uuid"
st=$(http PATCH "/v2/blobs/a/blobs/uploads/$fake" --data-binary @"$F/c1" -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PATCH an unknown upload uuid"
st=$(http PUT "/v2/blobs/a/blobs/uploads/$fake?digest=$d_final" --data-binary @"$F/final" -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PUT an unknown upload uuid"
st=$(http DELETE "/v2/blobs/a/blobs/uploads/$fake")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "DELETE an unknown upload uuid"
st=$(http GET "/v2/blobs/a/blobs/uploads/%2e%2e%2f%2e%2e%2fetc")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "malformed upload uuid (%2e%2e%2f%2e%2e%2fetc)"
st=$(http PATCH "/v2/blobs/a/blobs/uploads/..%2F..%2Fetc%2Fpasswd" --data-binary @"$F/c1" -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PATCH a malformed upload uuid (..%2F..%2Fetc%2Fpasswd)"
st=$(http GET "/v2/blobs/a/blobs/uploads/../../etc" --path-as-is)
expect_error "$st" "400|404" "BLOB_UPLOAD_UNKNOWN|NAME_INVALID|NAME_UNKNOWN|UNSUPPORTED" "malformed upload uuid (../../etc, path as is)"
loc=$(start_upload blobs/a)
id=${loc##*/}
id=${id%%\?*}
st=$(http GET "/v2/blobs/b/blobs/uploads/$id")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "a session of repo a is unknown under repo b"
st=$(http PUT "/v2/blobs/b/blobs/uploads/$id?digest=$d_final" --data-binary @"$F/final" -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PUT a session of repo a through repo b"
st=$(http GET "/v2/blobs/b/blobs/$d_final")
is "$st" 404 "and nothing was stored in repo b"
http DELETE "$loc" >/dev/null

# ---- out-of-order and overlapping chunks -> 416 ----------------------------------------------
loc=$(start_upload blobs/a)
st=$(http PATCH "$loc" --data-binary @"$F/c1" -H "$OCT" -H "Content-Range: 5-100004")
is "$st" 416 "first chunk not starting at 0 is 416"
st=$(http PATCH "$loc" --data-binary @"$F/c1" -H "$OCT" -H "Content-Range: 0-99999")
is "$st" 202 "then the chunk at 0 is accepted"
loc=$(header Location | loc_path)
st=$(http PATCH "$loc" --data-binary @"$F/c3" -H "$OCT" -H "Content-Range: 250000-299999")
is "$st" 416 "chunk leaving a gap is 416"
st=$(http PATCH "$loc" --data-binary @"$F/c1" -H "$OCT" -H "Content-Range: 50000-149999")
is "$st" 416 "overlapping chunk is 416"
st=$(http PATCH "$loc" --data-binary @"$F/c1" -H "$OCT" -H "Content-Range: 0-99999")
is "$st" 416 "repeated chunk is 416"
st=$(http GET "$loc")
ok "after 416s the upload still stands at 0-99999" test "$st" = 204 -a "$(header Range)" = 0-99999
st=$(http PATCH "$loc" --data-binary @"$F/c2" -H "$OCT" -H "Content-Range: 100000-249999")
is "$st" 202 "the right next chunk is still accepted"
loc=$(header Location | loc_path)
st=$(http PATCH "$loc" --data-binary @"$F/c3" -H "$OCT" -H "Content-Range: 250000-299999")
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_chunked")" --data-binary '' -H "$OCT")
is "$st" 201 "and the upload completes"

# ---- digest mismatch, bad digests -----------------------------------------------------------
randfile "$F/liar" 2000
randfile "$F/claimed" 2000
d_claimed=$(sha256d "$F/claimed")
d_liar=$(sha256d "$F/liar")
loc=$(start_upload blobs/a)
st=$(http PUT "$(with_query "$loc" "digest=$d_claimed")" --data-binary @"$F/liar" -H "$OCT")
expect_error "$st" 400 DIGEST_INVALID "PUT whose digest does not match the content"
st=$(http GET "/v2/blobs/a/blobs/$d_claimed")
is "$st" 404 "digest mismatch: nothing stored under the claimed digest"
st=$(http GET "/v2/blobs/a/blobs/$d_liar")
is "$st" 404 "digest mismatch: nothing stored under the real digest"
st=$(http POST "/v2/blobs/a/blobs/uploads/?digest=$d_claimed" --data-binary @"$F/liar" -H "$OCT")
expect_error "$st" 400 DIGEST_INVALID "single POST whose digest does not match"
st=$(http GET "/v2/blobs/a/blobs/$d_claimed")
is "$st" 404 "single POST mismatch: nothing stored"
loc=$(start_upload blobs/a)
http PATCH "$loc" --data-binary @"$F/liar" -H "$OCT" >/dev/null
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_claimed")" --data-binary '' -H "$OCT")
expect_error "$st" 400 DIGEST_INVALID "chunked upload closed with the wrong digest"
st=$(http GET "/v2/blobs/a/blobs/$d_liar")
is "$st" 404 "chunked mismatch: nothing stored"

hex=$(str_sha256 x)
for bad in "sha256:xyz" "sha256:$(echo "$hex" | tr a-f A-F)" "md5:d41d8cd98f00b204e9800998ecf8427e" "sha256:${hex}00" "sha256" "$hex" "sha256:"; do
    loc=$(start_upload blobs/a)
    st=$(http PUT "$(with_query "$loc" "digest=$bad")" --data-binary @"$F/claimed" -H "$OCT")
    expect_error "$st" 400 DIGEST_INVALID "PUT ?digest=$bad"
    http DELETE "$loc" >/dev/null
done
loc=$(start_upload blobs/a)
st=$(http PUT "$loc" --data-binary @"$F/claimed" -H "$OCT")
expect_error "$st" 400 DIGEST_INVALID "PUT without ?digest="
st=$(http POST "/v2/blobs/a/blobs/uploads/?digest=sha256:xyz" --data-binary @"$F/claimed" -H "$OCT")
expect_error "$st" 400 DIGEST_INVALID "single POST ?digest=sha256:xyz"
for bad in "sha256:xyz" "sha256:$(echo "$hex" | tr a-f A-F)" "md5:d41d8cd98f00b204e9800998ecf8427e"; do
    st=$(http GET "/v2/blobs/a/blobs/$bad")
    expect_error "$st" "400|404" "DIGEST_INVALID|BLOB_UNKNOWN" "GET blob $bad"
done

# ---- bad repository names -------------------------------------------------------------------
long=$(printf 'a%.0s' $(seq 300))
for bad in UPPER "a..b" "%2e%2e" "a%2fb" "$long" "blobs/a/" "-a" "a/../b" "a//b"; do
    st=$(http POST "/v2/$bad/blobs/uploads/" --data-binary '' -H "$OCT" --path-as-is)
    expect_error "$st" "400|404" "NAME_INVALID|NAME_UNKNOWN" "POST upload to bad name '${bad:0:24}'"
    st=$(http GET "/v2/$bad/blobs/$d_single" --path-as-is)
    expect_error "$st" "400|404" "NAME_INVALID|NAME_UNKNOWN|BLOB_UNKNOWN" "GET blob from bad name '${bad:0:24}'"
done
st=$(http GET /v2/_catalog)
is "$(jq -r '.repositories[]' "$BR_TMP/b" | grep -c -v -E '^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$')" 0 \
    "no repository was created for a bad name"

# ---- sha512 -----------------------------------------------------------------------------------
randfile "$F/s512" 12345
d512=$(sha512d "$F/s512")
st=$(http POST "/v2/blobs/a/blobs/uploads/?digest=$d512" --data-binary @"$F/s512" -H "$OCT")
is "$st" 201 "sha512 blob by single POST is 201"
is "$(header Docker-Content-Digest)" "$d512" "sha512: Docker-Content-Digest is the sha512 digest"
st=$(http GET "/v2/blobs/a/blobs/$d512")
ok "sha512: GET by sha512 digest returns the content" got "$st" 200 "$F/s512"
is "$(header Docker-Content-Digest)" "$d512" "sha512: GET Docker-Content-Digest"
randfile "$F/s512b" 50000
d512b=$(sha512d "$F/s512b")
loc=$(start_upload blobs/a)
http PATCH "$loc" --data-binary @"$F/s512b" -H "$OCT" -H "Content-Range: 0-49999" >/dev/null
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d512b")" --data-binary '' -H "$OCT")
is "$st" 201 "sha512 chunked upload closes with 201"
st=$(http GET "/v2/blobs/a/blobs/$d512b")
ok "sha512 chunked: content right" got "$st" 200 "$F/s512b"
loc=$(start_upload blobs/a)
st=$(http PUT "$(with_query "$loc" "digest=sha512:$(sha512sum "$F/claimed" | cut -d' ' -f1)")" --data-binary @"$F/liar" -H "$OCT")
expect_error "$st" 400 DIGEST_INVALID "sha512 digest mismatch"

# ---- a 64 MiB blob in one PATCH -------------------------------------------------------------
randfile "$F/big" $((64 * 1024 * 1024))
d_big=$(sha256d "$F/big")
t1=$(ms)
loc=$(start_upload blobs/big)
st=$(http PATCH "$loc" --data-binary @"$F/big" -H "$OCT" -H "Content-Range: 0-$((64 * 1024 * 1024 - 1))")
is "$st" 202 "64 MiB in one PATCH is 202"
is "$(header Range)" "0-$((64 * 1024 * 1024 - 1))" "64 MiB PATCH: Range"
loc=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc" "digest=$d_big")" --data-binary '' -H "$OCT")
is "$st" 201 "64 MiB upload closes with 201"
st=$(http GET "/v2/blobs/big/blobs/$d_big")
is "$st" 200 "GET 64 MiB blob is 200"
is "$(header Content-Length)" $((64 * 1024 * 1024)) "64 MiB blob: Content-Length"
is "$(sha256d "$BR_TMP/b")" "$d_big" "64 MiB blob: sha256 of the body is the digest"
st=$(http GET "/v2/blobs/big/blobs/$d_big" -H "Range: bytes=$((64 * 1024 * 1024 - 10))-")
ok "64 MiB blob: Range on its tail" got "$st" 206 <(tail -c 10 "$F/big")
diag "64 MiB push + pull: $(($(ms) - t1)) ms"
rm -f "$F/big" "$BR_TMP/b"

ok "server exits cleanly" br_stop
diag "blobs.sh: $(($(ms) - t0)) ms"
done_testing
