#!/bin/bash
# podman and buildah against the registry. Both use containers/image like
# skopeo, but push from containers-storage: layers are re-compressed on the
# way out, the config blob is kept, and the image ID (= config digest) must
# survive a push, an rmi and a pull.
#
# What it checks, and what that proves:
# - podman load of an OCI archive (scratch-built, random content), podman
#   push --tls-verify=false: the manifest digest podman records (--digestfile)
#   is the one the registry serves for the tag (skopeo inspect --raw) and by
#   digest.
# - podman rmi, podman pull by tag and by digest: same image ID, same config,
#   and podman's RepoDigests/Digest match the pushed digest (manifest GET by tag
#   and by digest, blob GET).
# - buildah from scratch + copy + commit (OCI and Docker formats), buildah push
#   --tls-verify=false: digest file matches the registry's manifest, the
#   config digest is the buildah image ID, the v2s2 push keeps its media type.
# - a second podman push of the same image to another repository reuses
#   (mounts) its blobs: podman reports no blob data uploaded.
# Storage is private: vfs driver, --root/--runroot under $BR_TMP, no
# container is ever run.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
need podman buildah skopeo umoci jq curl
. "$top_srcdir/tests/clients/images.sh"

registry_start || { echo "Bail out! registry did not start"; exit 1; }

pm() { private_ns podman --root "$CLIENTS_STORAGE_ROOT" --runroot "$CLIENTS_STORAGE_RUNROOT" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend none "$@"; }
bh() { private_ns buildah --root "$CLIENTS_STORAGE_ROOT" --runroot "$CLIENTS_STORAGE_RUNROOT" --storage-driver vfs "$@"; }

ok "build small OCI image" img_build_small
ok "export it as an OCI archive" sk copy -q "oci:$IMG_SMALL:v1" "oci-archive:$BR_TMP/small.tar:berth/small:v1"
cfg=$(jq -r .config.digest "$(layout_blob "$IMG_SMALL" "$(layout_digest "$IMG_SMALL" v1)")")
id=${cfg#sha256:}

# --- podman load / push / rmi / pull -------------------------------------
pm load -i "$BR_TMP/small.tar" >"$BR_TMP/load.out" 2>&1
ok "podman load of the OCI archive" test $? -eq 0
is "$(pm image inspect --format '{{.Id}}' "$id" 2>&1)" "$id" "loaded image ID is the config digest"

pm push --tls-verify=false --digestfile "$BR_TMP/podman.digest" "$id" "docker://$REG/podman/small:v1" >"$BR_TMP/push.out" 2>&1
ok "podman push" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/push.out"
pushed=$(cat "$BR_TMP/podman.digest" 2>/dev/null)
like "$pushed" '^sha256:[0-9a-f]{64}$' "podman wrote the pushed manifest digest"
sk inspect --raw --tls-verify=false "docker://$REG/podman/small:v1" >"$BR_TMP/raw" 2>"$BR_TMP/err"
is "$(digest_of "$BR_TMP/raw")" "$pushed" "registry serves the manifest podman pushed"
is "$(jq -r .config.digest "$BR_TMP/raw")" "$cfg" "pushed manifest references the same config"
ok "config blob GET matches" sh -c 'curl -sf "$1/v2/podman/small/blobs/$2" | sha256sum | grep -q "^${2#sha256:} "' sh "$BR_URL" "$cfg"

ok "podman rmi" quiet pm rmi -f "$id"
ok "image gone locally" fails pm image exists "$id"
pm pull --tls-verify=false "$REG/podman/small:v1" >"$BR_TMP/pull.out" 2>&1
ok "podman pull by tag" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pull.out"
is "$(pm image inspect --format '{{.Id}}' "$REG/podman/small:v1" 2>&1)" "$id" "pulled image has the same ID"
is "$(pm image inspect --format '{{.Digest}}' "$REG/podman/small:v1" 2>&1)" "$pushed" "pulled image digest is the pushed one"
ok "podman rmi again" quiet pm rmi -f "$id"
pm pull --tls-verify=false "$REG/podman/small@$pushed" >"$BR_TMP/pull.out" 2>&1
ok "podman pull by digest" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pull.out"
is "$(pm image inspect --format '{{.Id}}' "$REG/podman/small@$pushed" 2>&1)" "$id" "pulled-by-digest image has the same ID"
like "$(pm image inspect --format '{{join .RepoDigests " "}}' "$id" 2>&1)" "$REG/podman/small@$pushed" \
    "RepoDigests records registry/repo@digest"

# --- second repository: blobs reused --------------------------------------
pm --log-level debug push --tls-verify=false "$id" "docker://$REG/podman/small-copy:v1" >"$BR_TMP/push2.out" 2>&1
ok "podman push to a second repository" test $? -eq 0
is "$(grep -c '\.\.\. mount OK' "$BR_TMP/push2.out")" 2 "second repository: both layers mounted, not uploaded"

# --- buildah from scratch ---------------------------------------------------
head -c 300000 /dev/urandom >"$BR_TMP/payload"
echo "$IMG_STAMP" >"$BR_TMP/stamp"
ctr=$(bh from --name "berth-$$" scratch 2>"$BR_TMP/err")
ok "buildah from scratch" test -n "$ctr" || sed 's/^/#   /' "$BR_TMP/err"
ok "buildah copy" quiet bh copy "$ctr" "$BR_TMP/payload" "$BR_TMP/stamp" /data/
ok "buildah config" bh config --label "org.example.berth.stamp=$IMG_STAMP" --cmd /data/payload "$ctr"
bid=$(bh commit -q --format oci "$ctr" localhost/berth/bh:oci 2>"$BR_TMP/err")
like "$bid" '^[0-9a-f]{64}$' "buildah commit (OCI) gives an image ID"
bidd=$(bh commit -q --format docker "$ctr" localhost/berth/bh:docker 2>"$BR_TMP/err")
like "$bidd" '^[0-9a-f]{64}$' "buildah commit (Docker) gives an image ID"
bh rm "$ctr" >/dev/null 2>&1

for fmt in oci docker; do
    want_id=$bid
    [ $fmt = docker ] && want_id=$bidd
    bh push --tls-verify=false --digestfile "$BR_TMP/bh.digest" "localhost/berth/bh:$fmt" \
        "docker://$REG/podman/buildah:$fmt" >"$BR_TMP/bpush.out" 2>&1
    ok "buildah push ($fmt)" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/bpush.out"
    sk inspect --raw --tls-verify=false "docker://$REG/podman/buildah:$fmt" >"$BR_TMP/raw" 2>"$BR_TMP/err"
    is "$(digest_of "$BR_TMP/raw")" "$(cat "$BR_TMP/bh.digest")" "buildah push ($fmt): registry serves the pushed manifest"
    is "$(jq -r .config.digest "$BR_TMP/raw")" "sha256:$want_id" "buildah push ($fmt): config digest is the image ID"
    if [ $fmt = docker ]; then
        is "$(jq -r .mediaType "$BR_TMP/raw")" "application/vnd.docker.distribution.manifest.v2+json" "Docker format kept"
    else
        is "$(jq -r '.mediaType // "application/vnd.oci.image.manifest.v1+json"' "$BR_TMP/raw")" \
            "application/vnd.oci.image.manifest.v1+json" "OCI format kept"
    fi
    ok "buildah image ($fmt) copies back out intact" \
        sk copy -q --src-tls-verify=false "docker://$REG/podman/buildah:$fmt" "dir:$BR_TMP/out-bh-$fmt"
    ok "buildah image ($fmt) blobs match" same_blobs_in_dir "$BR_TMP/out-bh-$fmt/manifest.json" "$BR_TMP/out-bh-$fmt"
done
sk inspect --tls-verify=false "docker://$REG/podman/buildah:oci" >"$BR_TMP/insp" 2>"$BR_TMP/err"
is "$(jq -r '.Labels["org.example.berth.stamp"]' "$BR_TMP/insp")" "$IMG_STAMP" "buildah image label readable from the registry"

# podman pulls the buildah image into a fresh name and sees the same ID
ok "podman rmi buildah image" quiet pm rmi -f "$bid"
pm pull --tls-verify=false "$REG/podman/buildah:oci" >"$BR_TMP/pull.out" 2>&1
ok "podman pull of the buildah image" test $? -eq 0
is "$(pm image inspect --format '{{.Id}}' "$REG/podman/buildah:oci" 2>&1)" "$bid" "podman sees buildah's image ID"

done_testing
