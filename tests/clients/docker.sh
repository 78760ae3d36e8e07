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
# - notifications (berth only): a webhook receiver sees a push event for each
#   blob docker uploads and then one for the manifest (tag v1), and for the
#   pull a pull event for the manifest before those of its blobs.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
need dockerd skopeo umoci jq curl unshare
# Prefer the CLI that comes with Debian's dockerd.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker) || skip_all "docker CLI not installed"
. "$top_srcdir/tests/clients/images.sh"

# A webhook receiver for berth's notifications (see tests/server/events.sh).
EV="$BR_TMP/events.jsonl"
if [ "${BR_TEST_REGISTRY:-berth}" = berth ]; then
    python3 "$top_srcdir/tests/server/webhook_receiver.py" "$EV" "$BR_TMP/rport" &
    _rpid=$!
    at_exit "kill $_rpid"
    for i in $(seq 1 100); do [ -s "$BR_TMP/rport" ] && break; sleep 0.05; done
    events_config() {
        printf 'notifications:\n  endpoints:\n    - {name: test, url: "http://127.0.0.1:%s/events", backoff: 200ms}\n' \
            "$(cat "$BR_TMP/rport")" >"$BR_TMP/events.yaml"
        echo "$BR_TMP/events.yaml"
    }
    BR_START_CONFIG=events_config
fi
# events — "action repository digest tag" of each event received so far
events() { [ -f "$EV" ] && jq -r '.body.events[] | "\(.action) \(.target.repository) \(.target.digest) \(.target.tag // "-")"' "$EV"; }
# wait_events PATTERN N — until N events match PATTERN (60 s)
wait_events() {
    local i
    for i in $(seq 1 600); do
        [ "$(events | grep -c -- "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

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
if [ "$REG_KIND" = berth ]; then
    ok "events: the manifest push arrives" wait_events "^push docker/big $pushed v1\$" 1
    is "$(events | grep '^push ' | sed '$!d')" "push docker/big $pushed v1" "events: the manifest push comes last"
    is "$(events | grep '^push docker/big sha256:[0-9a-f]* -$' | cut -d' ' -f3 | sort | tr '\n' ' ')" \
        "$(blobs_of "$BR_TMP/raw" | sort | tr '\n' ' ')" "events: one push event for each blob (config and layers) before it"
    pushes=$(events | wc -l)
fi

# --- rmi, pull by tag and by digest ----------------------------------------
ok "docker rmi" quiet dk rmi "$REG/docker/big:v1" berth/big:v1
ok "image gone" fails dk image inspect "$cfg"
dk pull "$REG/docker/big:v1" >"$BR_TMP/pull.out" 2>&1
ok "docker pull by tag" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pull.out"
if [ "$REG_KIND" = berth ]; then
    ok "events: the pulls arrive" wait_events "^pull docker/big " 5
    # docker 20.10 resolves the tag with HEAD (no event), then GETs by digest
    is "$(events | sed -n "$((pushes + 1))p")" "pull docker/big $pushed -" "events: the manifest pull (by digest) comes first"
    is "$(events | sed -n "$((pushes + 2)),\$p" | grep '^pull docker/big sha256:[0-9a-f]* -$' | cut -d' ' -f3 | sort | tr '\n' ' ')" \
        "$(blobs_of "$BR_TMP/raw" | sort | tr '\n' ' ')" "events: then a pull event for each blob"
fi
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
