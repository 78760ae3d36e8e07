#!/bin/bash
# State across restarts on the same store: an upload session begun before a
# clean stop is resumed after it (the spec's "Resumable Push" use case: GET the
# session for its Range, PATCH the rest, PUT), committed blobs, manifests,
# tags, referrers and deletes persist, and abandoned uploads are purged
# (storage.upload_purge_age; berth's purge runs at start-up and then at most
# once a minute, so the test ages a session and restarts).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

t0=$(ms)
unset BERTH_STORAGE_UPLOAD_PURGE_AGE
br_start || { ok "berth starts" false; done_testing; exit 1; }
F=$BR_TMP/files
mkdir -p "$F"
R=rs/app

# ---- before the restart ---------------------------------------------------------------
randfile "$F/blob" 10000
b_d=$(sha256d "$F/blob")
ok "push a blob" push_blob $R "$F/blob"
randfile "$F/gone" 500
g_d=$(sha256d "$F/gone")
push_blob $R "$F/gone"
st=$(http DELETE "/v2/$R/blobs/$g_d")
is "$st" 202 "delete a blob before the restart"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$F/config"
push_blob $R "$F/config"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}\n' \
    $OCI_MANIFEST $OCI_CONFIG "$(sha256d "$F/config")" "$(fsize "$F/config")" $OCI_LAYER "$b_d" 10000 >"$F/m"
m_d=$(sha256d "$F/m")
st=$(put_manifest $R v1 "$F/m" $OCI_MANIFEST)
is "$st" 201 "push a manifest by tag"
printf '{}' >"$F/empty"
push_blob $R "$F/empty"
e_d=$(sha256d "$F/empty")
printf '{"schemaVersion":2,"mediaType":"%s","artifactType":"application/vnd.example.sig","config":{"mediaType":"%s","digest":"%s","size":2},"layers":[{"mediaType":"%s","digest":"%s","size":2}],"subject":{"mediaType":"%s","digest":"%s","size":%s}}' \
    $OCI_MANIFEST $OCI_EMPTY "$e_d" $OCI_EMPTY "$e_d" $OCI_MANIFEST "$m_d" "$(fsize "$F/m")" >"$F/sig"
sig_d=$(sha256d "$F/sig")
st=$(put_manifest $R "$sig_d" "$F/sig" $OCI_MANIFEST)
is "$st" 201 "push a referrer"

# upload 1: chunked with Content-Range, half done
randfile "$F/up1" 200000
u1_d=$(sha256d "$F/up1")
head -c 80000 "$F/up1" >"$F/up1.a"
tail -c +80001 "$F/up1" >"$F/up1.b"
loc1=$(start_upload $R)
st=$(http PATCH "$loc1" --data-binary @"$F/up1.a" -H "$OCT" -H "Content-Range: 0-79999")
is "$st" 202 "upload 1: first chunk before the restart"
loc1=$(header Location | loc_path)
# upload 2: streamed PATCH without Content-Range, final chunk to go in the PUT
randfile "$F/up2" 50000
u2_d=$(sha256d "$F/up2")
head -c 20000 "$F/up2" >"$F/up2.a"
tail -c +20001 "$F/up2" >"$F/up2.b"
loc2=$(start_upload $R)
st=$(http PATCH "$loc2" --data-binary @"$F/up2.a" -H "$OCT")
is "$st" 202 "upload 2: first chunk before the restart"
loc2=$(header Location | loc_path)
# upload 3: cancelled before the restart
loc3=$(start_upload $R)
http PATCH "$loc3" --data-binary @"$F/up2.a" -H "$OCT" >/dev/null
loc3=$(header Location | loc_path)
st=$(http DELETE "$loc3")
is "$st" 204 "upload 3: cancelled before the restart"

ok "server exits cleanly (first run)" br_stop

# ---- after the restart -------------------------------------------------------------------
br_start || { ok "berth restarts on the same store" false; done_testing; exit 1; }
st=$(http GET "$loc1")
is "$st" 204 "upload 1 survives the restart"
is "$(header Range)" "0-79999" "upload 1: Range after the restart"
st=$(http PATCH "$loc1" --data-binary @"$F/up1.b" -H "$OCT" -H "Content-Range: 80000-199999")
is "$st" 202 "upload 1: PATCH the rest after the restart"
is "$(header Range)" "0-199999" "upload 1: Range covers the whole blob"
loc1=$(header Location | loc_path)
st=$(http PUT "$(with_query "$loc1" "digest=$u1_d")" --data-binary '' -H "$OCT")
is "$st" 201 "upload 1: PUT after the restart is 201"
st=$(http GET "/v2/$R/blobs/$u1_d")
ok "upload 1: content right" got "$st" 200 "$F/up1"

st=$(http GET "$loc2")
ok "upload 2 survives the restart at 0-19999" test "$st" = 204 -a "$(header Range)" = 0-19999
st=$(http PUT "$(with_query "$loc2" "digest=$u2_d")" --data-binary @"$F/up2.b" -H "$OCT")
is "$st" 201 "upload 2: PUT with the final chunk after the restart is 201"
st=$(http GET "/v2/$R/blobs/$u2_d")
ok "upload 2: content right (hash state carried over)" got "$st" 200 "$F/up2"

st=$(http GET "$loc3")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "the cancelled upload stays gone"

st=$(http GET "/v2/$R/blobs/$b_d")
ok "committed blob survives" got "$st" 200 "$F/blob"
is "$(header Docker-Content-Digest)" "$b_d" "committed blob: Docker-Content-Digest"
st=$(http GET "/v2/$R/blobs/$g_d")
expect_error "$st" 404 BLOB_UNKNOWN "blob deleted before the restart stays deleted"
st=$(http GET "/v2/$R/manifests/v1" -H "Accept: $OCI_MANIFEST")
ok "manifest by tag survives, byte-identical" got "$st" 200 "$F/m"
is "$(header Content-Type)" "$OCI_MANIFEST" "manifest media type survives"
st=$(http GET "/v2/$R/manifests/$m_d")
ok "manifest by digest survives" got "$st" 200 "$F/m"
st=$(http GET "/v2/$R/tags/list")
is "$(jq -c .tags "$BR_TMP/b")" '["v1"]' "tags list survives"
st=$(http GET "/v2/_catalog")
ok "catalog lists the repository" sh -c "jq -r '.repositories[]' '$BR_TMP/b' | grep -qx '$R'"
st=$(http GET "/v2/$R/referrers/$m_d")
is "$(jq -c '[.manifests[] | [.digest, .artifactType]]' "$BR_TMP/b")" "[[\"$sig_d\",\"application/vnd.example.sig\"]]" "referrers survive"

ok "server exits cleanly (second run)" br_stop

# ---- abandoned upload purge ------------------------------------------------------------------
export BERTH_STORAGE_UPLOAD_PURGE_AGE=1s
br_start || { ok "berth starts with upload_purge_age=1s" false; done_testing; exit 1; }
loc4=$(start_upload $R)
st=$(http PATCH "$loc4" --data-binary @"$F/up2.a" -H "$OCT")
is "$st" 202 "an upload to abandon"
loc4=$(header Location | loc_path)
u4=${loc4##*/}
u4=${u4%%\?*}
ls "$BR_ROOT/uploads" 2>/dev/null | grep -q "$u4"
have_file=$?
sleep 3
st=$(http GET "$loc4")
is "$st" 204 "the purge runs at start-up and then at most once a minute: the session is still there"
ok "server exits cleanly (third run)" br_stop
br_start || { ok "berth restarts with upload_purge_age=1s" false; done_testing; exit 1; }
# The start-up purge runs on the first loop iteration; allow it a moment.
for i in $(seq 1 50); do
    st=$(http GET "$loc4")
    [ "$st" = 404 ] && break
    sleep 0.1
done
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "the aged upload is purged at start-up"
st=$(http PATCH "$loc4" --data-binary @"$F/up2.b" -H "$OCT")
expect_error "$st" 404 BLOB_UPLOAD_UNKNOWN "PATCH the purged upload"
if [ $have_file = 0 ]; then
    ok "the purged upload's file is removed from <root>/uploads" sh -c "! ls '$BR_ROOT/uploads' | grep -q '$u4'"
fi
st=$(http GET "/v2/$R/blobs/$b_d")
ok "the purge leaves committed blobs alone" got "$st" 200 "$F/blob"
st=$(http GET "/v2/$R/manifests/v1")
ok "the purge leaves manifests alone" got "$st" 200 "$F/m"
loc5=$(start_upload $R)
u5_d=$(sha256d "$F/up2")
st=$(http PUT "$(with_query "$loc5" "digest=$u5_d")" --data-binary @"$F/up2" -H "$OCT")
is "$st" 201 "a new upload still works after the purge"

ok "server exits cleanly" br_stop
diag "restart.sh: $(($(ms) - t0)) ms"
done_testing
