#!/bin/bash
# skopeo against the registry (containers/image, the library under skopeo,
# podman, buildah and CRI-O).
#
# What it checks, and what that proves:
# - skopeo copy oci: -> docker:// of a 3-layer OCI image with a >= 64 MiB
#   random (incompressible) layer, then docker:// -> dir:, and the manifest
#   bytes and every config/layer blob come back with the digests they went in
#   with: chunked/monolithic blob upload (POST/PATCH/PUT), blob GET, manifest
#   PUT/GET keep content byte for byte (spec: "content-addressable").
# - a Docker v2 schema 2 image (application/vnd.docker.distribution.manifest.v2+json)
#   goes in and out unchanged, with its media type served back.
# - skopeo copy --all of a two-platform OCI image index: the index and both
#   child manifests arrive, are served by digest, round-trip byte for byte, and
#   platform selection (--override-arch) picks the right child.
# - skopeo inspect (--raw and the normal, config-reading form).
# - skopeo list-tags: tags/list.
# - skopeo delete: DELETE of a manifest by digest; afterwards the tag is gone
#   from tags/list and the manifest is 404, while other tags stay.
# - pushing to the same repository again: every blob "skipped: already exists"
#   (blob HEAD), and pushing to a second repository: skopeo mounts the blobs
#   (POST /blobs/uploads/?mount=&from= answered 201) and uploads none of them
#   (no PATCH/PUT of blob data for that repository in skopeo's debug log).
#
# Run against the reference registry: BR_TEST_REGISTRY=distribution bash tests/clients/skopeo.sh
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
need skopeo umoci jq curl
. "$top_srcdir/tests/clients/images.sh"

registry_start || { echo "Bail out! registry did not start"; exit 1; }

ok "build multi-layer OCI image with a 64 MiB random layer" img_build_big
ok "build two-platform OCI index" img_build_index
ok "build Docker v2s2 image" img_build_docker

big_size=$(jq '[.layers[].size] | max' "$(layout_blob "$IMG_BIG" "$(layout_digest "$IMG_BIG" v1)")")
ok "big image has a layer >= 64 MiB ($big_size bytes)" test "$big_size" -ge $((64 * 1024 * 1024))

# --- 1. multi-layer OCI image in and out ---------------------------------
want=$(layout_digest "$IMG_BIG" v1)
big_layer=$(jq -r '.layers | max_by(.size) | .digest' "$(layout_blob "$IMG_BIG" "$want")")
ok "copy OCI image in" sk copy -q --dest-tls-verify=false "oci:$IMG_BIG:v1" "docker://$REG/clients/big:v1"
sk inspect --raw --tls-verify=false "docker://$REG/clients/big:v1" >"$BR_TMP/raw" 2>"$BR_TMP/err"
is "$(digest_of "$BR_TMP/raw")" "$want" "inspect --raw: manifest bytes are the ones pushed"
ctype=$(curl -s -o /dev/null -w "%{content_type}" -H "Accept: application/vnd.oci.image.manifest.v1+json" "$BR_URL/v2/clients/big/manifests/v1")
is "$ctype" "application/vnd.oci.image.manifest.v1+json" "GET serves the OCI manifest Content-Type"
ok "copy OCI image out to dir:" sk copy -q --src-tls-verify=false "docker://$REG/clients/big:v1" "dir:$BR_TMP/out-big"
is "$(digest_of "$BR_TMP/out-big/manifest.json")" "$want" "dir: manifest digest matches"
ok "dir: config and all 3 layers match byte for byte" same_blobs_in_dir "$BR_TMP/out-big/manifest.json" "$BR_TMP/out-big"
is "$(jq '.layers | length' "$BR_TMP/out-big/manifest.json")" 3 "three layers"

# by digest, too
ok "copy out by digest" sk copy -q --src-tls-verify=false "docker://$REG/clients/big@$want" "dir:$BR_TMP/out-big-d"
is "$(digest_of "$BR_TMP/out-big-d/manifest.json")" "$want" "by-digest manifest matches"

# --- 2. inspect (normal: reads the config blob) --------------------------
sk inspect --tls-verify=false "docker://$REG/clients/big:v1" >"$BR_TMP/insp" 2>"$BR_TMP/err"
is "$(jq -r .Digest "$BR_TMP/insp")" "$want" "inspect: Digest"
is "$(jq -r .Architecture "$BR_TMP/insp")/$(jq -r .Os "$BR_TMP/insp")" "amd64/linux" "inspect: platform from config"
is "$(jq -r '.Labels["org.example.berth.stamp"]' "$BR_TMP/insp")" "$IMG_STAMP" "inspect: label from config blob"
is "$(jq -r '.Layers | length' "$BR_TMP/insp")" 3 "inspect: 3 layers"

# --- 3. Docker v2 schema 2 ------------------------------------------------
want_d=$(digest_of "$IMG_DOCKER/manifest.json")
ok "copy Docker v2s2 image in" sk copy -q --dest-tls-verify=false "dir:$IMG_DOCKER" "docker://$REG/clients/docker:v1"
sk inspect --raw --tls-verify=false "docker://$REG/clients/docker:v1" >"$BR_TMP/raw" 2>"$BR_TMP/err"
is "$(digest_of "$BR_TMP/raw")" "$want_d" "v2s2 manifest bytes kept"
is "$(jq -r .mediaType "$BR_TMP/raw")" "application/vnd.docker.distribution.manifest.v2+json" "v2s2 media type kept"
ok "copy v2s2 out" sk copy -q --src-tls-verify=false "docker://$REG/clients/docker:v1" "dir:$BR_TMP/out-docker"
is "$(digest_of "$BR_TMP/out-docker/manifest.json")" "$want_d" "v2s2 dir: manifest digest matches"
ok "v2s2 blobs match" same_blobs_in_dir "$BR_TMP/out-docker/manifest.json" "$BR_TMP/out-docker"
ctype=$(curl -s -o /dev/null -w '%{content_type}' -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$BR_URL/v2/clients/docker/manifests/v1")
is "$ctype" "application/vnd.docker.distribution.manifest.v2+json" "GET serves v2s2 Content-Type"
# containers/image sends one Accept header line per media type (OCI first); the
# registry must read them all as one list (RFC 9110 5.3), not just the first.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$BR_URL/v2/clients/docker/manifests/v1")
is "$code" 200 "GET v2s2 with Accept split over two header lines (OCI, then v2s2)"

# --- 4. image index with --all -------------------------------------------
want_i=$(layout_digest "$IMG_IDX" multi)
ok "copy --all index in" sk copy -q --all --dest-tls-verify=false "oci:$IMG_IDX:multi" "docker://$REG/clients/multi:v1"
sk inspect --raw --tls-verify=false "docker://$REG/clients/multi:v1" >"$BR_TMP/raw" 2>"$BR_TMP/err"
is "$(digest_of "$BR_TMP/raw")" "$want_i" "index bytes kept"
is "$(jq -r .mediaType "$BR_TMP/raw")" "application/vnd.oci.image.index.v1+json" "index media type"
for arch in amd64 arm64; do
    child=$(layout_digest "$IMG_IDX" "$arch")
    sk inspect --raw --tls-verify=false "docker://$REG/clients/multi@$child" >"$BR_TMP/raw-$arch" 2>"$BR_TMP/err"
    is "$(digest_of "$BR_TMP/raw-$arch")" "$child" "child manifest $arch arrived and is served by digest"
    sk inspect --override-arch "$arch" --override-os linux --tls-verify=false "docker://$REG/clients/multi:v1" \
        >"$BR_TMP/insp-$arch" 2>"$BR_TMP/err"
    is "$(jq -r .Architecture "$BR_TMP/insp-$arch")" "$arch" "inspect --override-arch $arch picks the $arch child"
done
ok "copy --all index out to dir:" sk copy -q --all --src-tls-verify=false "docker://$REG/clients/multi:v1" "dir:$BR_TMP/out-multi"
is "$(digest_of "$BR_TMP/out-multi/manifest.json")" "$want_i" "dir: index digest matches"
for arch in amd64 arm64; do
    child=$(layout_digest "$IMG_IDX" "$arch")
    f="$BR_TMP/out-multi/${child#sha256:}.manifest.json"
    ok "dir: child $arch manifest present and intact" test -f "$f" -a "$(digest_of "$f")" = "$child"
    ok "dir: child $arch blobs intact" same_blobs_in_dir "$f" "$BR_TMP/out-multi"
done

# --- 5. list-tags and delete ------------------------------------------------
ok "push small OCI image as clients/tags:keep" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_SMALL:v1" "docker://$REG/clients/tags:keep"
ok "push v2s2 image as clients/tags:gone" \
    sk copy -q --dest-tls-verify=false "dir:$IMG_DOCKER" "docker://$REG/clients/tags:gone"
ok "push small OCI image as clients/tags:keep2 too" \
    sk copy -q --dest-tls-verify=false "oci:$IMG_SMALL:v1" "docker://$REG/clients/tags:keep2"
tags=$(sk list-tags --tls-verify=false "docker://$REG/clients/tags" 2>"$BR_TMP/err" | jq -r '.Tags | sort | join(",")')
is "$tags" "gone,keep,keep2" "list-tags shows the three tags"
is "$(sk list-tags --tls-verify=false "docker://$REG/clients/big" 2>/dev/null | jq -r '.Repository')" "$REG/clients/big" \
    "list-tags names the repository"
ok "skopeo delete clients/tags:gone" sk delete --tls-verify=false "docker://$REG/clients/tags:gone"
tags=$(sk list-tags --tls-verify=false "docker://$REG/clients/tags" 2>"$BR_TMP/err" | jq -r '.Tags | sort | join(",")')
is "$tags" "keep,keep2" "deleted tag is gone from tags/list, others stay"
ok "inspect of the deleted tag fails" \
    fails sk inspect --raw --tls-verify=false "docker://$REG/clients/tags:gone" 2>/dev/null
is "$(curl -s -o /dev/null -w '%{http_code}' "$BR_URL/v2/clients/tags/manifests/$want_d")" 404 \
    "deleted manifest is 404 by digest"
sk inspect --raw --tls-verify=false "docker://$REG/clients/tags:keep" >"$BR_TMP/raw" 2>"$BR_TMP/err"
is "$(digest_of "$BR_TMP/raw")" "$(layout_digest "$IMG_SMALL" v1)" "the other tag still resolves"

# --- 6. existing blobs are not uploaded again; cross-repository mount ------
sk copy --debug --dest-tls-verify=false "oci:$IMG_BIG:v1" "docker://$REG/clients/big:again" >"$BR_TMP/again.log" 2>&1
ok "push same image to same repository again" test $? -eq 0
is "$(grep -c '\.\.\. already exists' "$BR_TMP/again.log")" 4 \
    "same repository: config and 3 layers found by blob HEAD ('already exists')"
ok "same repository: no blob upload started" \
    fails grep -Eq "(POST|PATCH|PUT) [^ ]*/v2/clients/big/blobs/uploads" "$BR_TMP/again.log"

# containers/image remembers (blob-info cache) that the layers live in
# clients/big on this registry, so for clients/big-mounted it tries
# POST /v2/clients/big-mounted/blobs/uploads/?from=clients/big&mount=<digest>.
# The config blob is never mounted by skopeo 1.9: it is small and uploaded.
sk copy --debug --dest-tls-verify=false "oci:$IMG_BIG:v1" "docker://$REG/clients/big-mounted:v1" >"$BR_TMP/mount.log" 2>&1
ok "push same image to a second repository" test $? -eq 0
like "$(grep -F 'POST ' "$BR_TMP/mount.log" | grep -F "${big_layer#sha256:}")" \
    'POST [^ ]*/v2/clients/big-mounted/blobs/uploads/\?from=clients%2Fbig&mount=sha256%3A' \
    "second repository: skopeo asks to mount the 64 MiB layer (POST ?from=&mount=)"
is "$(grep -c '\.\.\. mount OK' "$BR_TMP/mount.log")" 3 "second repository: all 3 layers mounted (201 to the mount POST)"
is "$(grep -c 'Skipping blob .*already present' "$BR_TMP/mount.log")" 3 "second repository: no layer uploaded"
is "$(grep -Ec 'PUT [^ ]*/v2/clients/big-mounted/blobs/uploads/' "$BR_TMP/mount.log")" 1 \
    "second repository: exactly one blob upload (the config)"
sk inspect --raw --tls-verify=false "docker://$REG/clients/big-mounted:v1" >"$BR_TMP/raw" 2>"$BR_TMP/err"
is "$(digest_of "$BR_TMP/raw")" "$want" "second repository serves the manifest"
code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$BR_URL/v2/clients/big-mounted/blobs/$big_layer")
is "$code" "200 $big_size" "second repository serves the mounted 64 MiB blob"

done_testing
