#!/bin/bash
# The docker CLI + dockerd (Debian's docker.io, moby 20.10) against the
# registry. dockerd is private to this test: vfs storage, no iptables, no
# bridge, its own data/exec roots, socket and (managed) containerd under
# $BR_TMP, in a private mount namespace. No container is ever run: load, tag,
# push, rmi and pull only. 127.0.0.0/8 is an insecure registry by default, so
# dockerd talks plain HTTP to the registry (after trying TLS first).
#
# What it checks, and what that proves:
# - docker load of a docker-archive (skopeo-made, from a scratch-built image
#   with a >= 64 MiB random layer), docker push: dockerd's v2 push path (blob
#   HEAD, POST + PATCH + PUT uploads of layers it compresses itself, manifest
#   PUT as application/vnd.docker.distribution.manifest.v2+json) is accepted, and
#   the digest docker prints is the one the registry serves for the tag.
# - docker rmi + docker pull by tag and by digest: same image ID (config
#   digest), docker reports the same Digest; RepoDigests recorded.
# - a second push: every layer "Layer already exists" (blob HEAD 200).
# - a push to another repository of the same registry: "Mounted from
#   docker/big" (cross-repository mount, POST ?mount=&from= answered 201).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
need dockerd skopeo umoci jq curl unshare
# Prefer the CLI that comes with Debian's dockerd.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker) || skip_all "docker CLI not installed"
. "$top_srcdir/tests/clients/images.sh"

registry_start || { echo "Bail out! registry did not start"; exit 1; }

# --- a private dockerd (dockerd_start/dockerd_stop in clients.sh) -----------
D="$BR_TMP/docker"
export DOCKER_HOST="unix://$D/docker.sock" DOCKER_CONFIG="$D/cli"

dk() { t "$DOCKER" "$@"; }

dockerd_start "$D" 600 || { echo "Bail out! dockerd did not start"; exit 1; }
ok "private dockerd is up (vfs)" sh -c '"$1" info --format "{{.Driver}}" | grep -qx vfs' sh "$DOCKER"

# --- image: scratch-built, as a docker-archive ------------------------------
ok "build multi-layer image with a 64 MiB random layer" img_build_big
ok "export as docker-archive" sk copy -q "oci:$IMG_BIG:v1" "docker-archive:$BR_TMP/big.tar:berth/big:v1"
cfg=$(jq -r .config.digest "$(layout_blob "$IMG_BIG" "$(layout_digest "$IMG_BIG" v1)")")

out=$(dk load -i "$BR_TMP/big.tar" 2>&1)
like "$out" 'Loaded image: berth/big:v1' "docker load"
is "$(dk image inspect --format '{{.Id}}' berth/big:v1 2>&1)" "$cfg" "loaded image ID is the config digest"

# --- push -------------------------------------------------------------------
ok "docker tag" dk tag berth/big:v1 "$REG/docker/big:v1"
dk push "$REG/docker/big:v1" >"$BR_TMP/push1.out" 2>&1
ok "docker push" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/push1.out"
pushed=$(sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\) size.*/\1/p' "$BR_TMP/push1.out")
like "$pushed" '^sha256:[0-9a-f]{64}$' "docker push prints the manifest digest"
is "$(grep -c ': Pushed' "$BR_TMP/push1.out")" 3 "three layers pushed"
curl -s -D "$BR_TMP/h" -o "$BR_TMP/raw" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$BR_URL/v2/docker/big/manifests/v1"
is "$(digest_of "$BR_TMP/raw")" "$pushed" "registry serves the pushed manifest for the tag"
is "$(jq -r .mediaType "$BR_TMP/raw")" "application/vnd.docker.distribution.manifest.v2+json" "docker pushed schema 2"
is "$(jq -r .config.digest "$BR_TMP/raw")" "$cfg" "manifest references the image's config"
is "$(grep -i '^docker-content-digest:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2)" "$pushed" "Docker-Content-Digest header"

# --- rmi, pull by tag and by digest ----------------------------------------
ok "docker rmi" quiet dk rmi "$REG/docker/big:v1" berth/big:v1
ok "image gone" fails dk image inspect "$cfg"
dk pull "$REG/docker/big:v1" >"$BR_TMP/pull.out" 2>&1
ok "docker pull by tag" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pull.out"
like "$(cat "$BR_TMP/pull.out")" "Digest: $pushed" "pull reports the pushed digest"
is "$(dk image inspect --format '{{.Id}}' "$REG/docker/big:v1" 2>&1)" "$cfg" "pulled image has the same ID"
like "$(dk image inspect --format '{{join .RepoDigests " "}}' "$cfg" 2>&1)" "$REG/docker/big@$pushed" "RepoDigests"
ok "docker rmi again" quiet dk rmi "$REG/docker/big:v1"
dk pull "$REG/docker/big@$pushed" >"$BR_TMP/pull.out" 2>&1
ok "docker pull by digest" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pull.out"
is "$(dk image inspect --format '{{.Id}}' "$REG/docker/big@$pushed" 2>&1)" "$cfg" "pulled-by-digest image has the same ID"

# --- second push: layers exist; other repository: mounted ------------------
# (if a pull above failed, load the archive again so these checks still run)
dk image inspect "$cfg" >/dev/null 2>&1 || { diag "image missing after pulls; loading it again"; dk load -i "$BR_TMP/big.tar" >/dev/null 2>&1; }
ok "docker tag for a second push" dk tag "$cfg" "$REG/docker/big:v2"
dk push "$REG/docker/big:v2" >"$BR_TMP/push2.out" 2>&1
ok "second docker push" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/push2.out"
is "$(grep -c 'Layer already exists' "$BR_TMP/push2.out")" 3 "second push: 'Layer already exists' for all 3 layers"
like "$(cat "$BR_TMP/push2.out")" "digest: $pushed" "second push: same manifest digest"

ok "docker tag into another repository" dk tag "$cfg" "$REG/docker/big-mounted:v1"
dk push "$REG/docker/big-mounted:v1" >"$BR_TMP/push3.out" 2>&1
ok "push to another repository" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/push3.out"
is "$(grep -c 'Mounted from docker/big' "$BR_TMP/push3.out")" 3 "other repository: all 3 layers 'Mounted from docker/big'"
like "$(cat "$BR_TMP/push3.out")" "digest: $pushed" "other repository: same manifest digest"
code=$(curl -s -o /dev/null -w '%{http_code}' -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$BR_URL/v2/docker/big-mounted/manifests/$pushed")
is "$code" 200 "other repository serves the manifest by digest"

done_testing
