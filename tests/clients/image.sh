#!/bin/bash
# berth's container image (Dockerfile, .dockerignore, docker/healthcheck.sh),
# built and run on a private dockerd (clients.sh's dockerd_start: Debian's
# docker.io, vfs storage, no iptables, no bridge).
#
# No registry is reachable from here, so the base image is made locally:
# `debootstrap --variant=minbase bookworm` from the mirror apt uses
# (quickstart.sh mirror), imported with `docker import` as berth-base:bookworm
# and passed as both stages' base (--build-arg BUILD_BASE/RUN_BASE). The rootfs
# tarball is cached (debootstrap takes minutes) in $BR_IMAGE_CACHE, else
# $XDG_CACHE_HOME/berth or ~/.cache/berth, as bookworm-minbase-ARCH.tar; delete
# it to make a fresh one. The build runs with BuildKit (the legacy builder
# copies the whole root for every step on vfs) and --network=host, so its RUN
# steps reach the mirror.
#
# What it checks, and what that proves:
# - the build context (.dockerignore) holds every file git tracks and none git
#   ignores: an in-tree build's objects never reach the image (git checkouts
#   only);
# - the image builds from this tree; its config: a numeric non-root user, the
#   /var/lib/berth volume, port 5000, the HEALTHCHECK, BERTH_STORAGE_ROOT; its
#   filesystem holds berth (this tree's version) but no compiler or headers;
# - the container runs as that user, becomes healthy (the image's
#   HEALTHCHECK, GET /readyz, with health.on_main set by the image), serves a
#   docker push of the berth image itself and a push + rmi + pull round trip,
#   and stops cleanly (exit 0) on docker stop;
# - a second container on the same volume, configured by a file mounted at
#   /etc/berth/berth.yaml and BERTH_* variables, serves what the first stored
#   (store files owned by the image's user) with the file's settings, and its
#   health check follows BERTH_METRICS_LISTEN to the metrics listener.
# Every server listens on 127.0.0.1 (host network, BERTH_LISTEN).
#
# Environment:
#   BR_IMAGE_CACHE            where the base rootfs tarball is kept (see above)
#   BR_IMAGE_CONFIGURE_FLAGS  the image's CONFIGURE_FLAGS build argument
#                             (e.g. --with-system-h2o; default: none)
#   BR_IMAGE_TEST=skip        skip this test (.ci/run runs it once: the image
#                             builds its own berth, whatever this tree's build)
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
[ "${BR_IMAGE_TEST:-}" != skip ] || skip_all "BR_IMAGE_TEST=skip (the image builds its own berth; it was tested once already)"
need dockerd debootstrap jq curl unshare tar
[ "$(id -u)" -eq 0 ] || skip_all "debootstrap and dockerd need root"
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker) || skip_all "docker CLI not installed"

# Before _clients_setup_env points HOME and XDG_* into $BR_TMP.
CACHE=${BR_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
BASE_TAR="$CACHE/bookworm-minbase-$(dpkg --print-architecture).tar"
MIRROR=$("$top_srcdir/quickstart.sh" mirror)
curl -s -f -o /dev/null --max-time 30 "$MIRROR/dists/bookworm/Release" ||
    skip_all "the Debian mirror $MIRROR is not reachable (the image build installs packages from it)"
_clients_setup_env

# Building takes minutes on a loaded machine: a longer bound than other steps.
tl() { timeout -k 10 1800 "$@"; }
dk() { t "$DOCKER" "$@"; }
# dkb ARGS... — a BuildKit build.
dkb() { DOCKER_BUILDKIT=1 tl "$DOCKER" build --progress=plain "$@"; }
show_build() { tail -n 30 "$BR_TMP/build.out" | sed 's/^/#   /'; }
# ran NAME LOG CMD... — a test that passes when CMD exits 0; CMD's output goes
# to LOG, shown when it fails. Returns CMD's status (ok does not).
ran() {
    local name=$1 log=$2 rc=0
    shift 2
    "$@" >"$log" 2>&1 || rc=$?
    ok "$name" test $rc -eq 0
    [ $rc -eq 0 ] || tail -n 30 "$log" | sed 's/^/#   /'
    return $rc
}

D="$BR_TMP/docker"
export DOCKER_HOST="unix://$D/docker.sock" DOCKER_CONFIG="$D/cli"
dockerd_start "$D" 600 || { echo "Bail out! dockerd did not start"; exit 1; }
# Containers go before dockerd stops (at_exit runs in reverse).
at_exit 'dk rm -f -v berth-a berth-b'

# --- the base image ----------------------------------------------------------
if [ ! -s "$BASE_TAR" ]; then
    diag "debootstrap bookworm from $MIRROR into the cache $BASE_TAR (minutes, once)"
    mkdir -p "$CACHE"
    if ! tl debootstrap --variant=minbase bookworm "$BR_TMP/rootfs" "$MIRROR" >"$BR_TMP/debootstrap.log" 2>&1; then
        tail -n 20 "$BR_TMP/debootstrap.log" | sed 's/^/#   /'
        echo "Bail out! debootstrap failed"
        exit 1
    fi
    # Written aside and renamed, so a concurrent or killed run never sees half.
    tar -C "$BR_TMP/rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$BASE_TAR.$$" . && mv "$BASE_TAR.$$" "$BASE_TAR"
    rm -rf "$BR_TMP/rootfs" "$BASE_TAR.$$"
fi
t "$DOCKER" import - berth-base:bookworm <"$BASE_TAR" >/dev/null ||
    { echo "Bail out! docker import of $BASE_TAR failed"; exit 1; }

# Can this dockerd run build containers at all (runc, namespaces)?
if ! printf 'FROM berth-base:bookworm\nRUN true\n' | dkb --network=host -t berth-probe - >"$BR_TMP/build.out" 2>&1; then
    skip_all "the private dockerd cannot run a build's RUN step here: $(grep -i -m1 error "$BR_TMP/build.out")"
fi

# --- the build context -------------------------------------------------------
if top=$(git -C "$top_srcdir" rev-parse --show-toplevel 2>/dev/null) &&
    [ "$(cd "$top" && pwd -P)" = "$(cd "$top_srcdir" && pwd -P)" ]; then
    printf 'FROM scratch\nCOPY . /ctx/\nCMD ["none"]\n' >"$BR_TMP/Dockerfile.ctx"
    ran "a build copies the context" "$BR_TMP/ctx.out" dkb -f "$BR_TMP/Dockerfile.ctx" -t berth-ctx "$top_srcdir"
    cid=$(dk create berth-ctx)
    dk export "$cid" | tar -t | sed -n 's|^ctx/||p' | grep -v '/$' | sort >"$BR_TMP/context"
    dk rm "$cid" >/dev/null
    git -C "$top_srcdir" ls-files | sort >"$BR_TMP/tracked"
    ok "the context lists files" test -s "$BR_TMP/context"
    is "$(comm -23 "$BR_TMP/tracked" "$BR_TMP/context")" "" "every tracked file is in the build context"
    is "$(git -C "$top_srcdir" check-ignore --no-index --stdin <"$BR_TMP/context")" "" \
        "no file git ignores is in the build context (.dockerignore)"
else
    diag "not a git checkout: build context not compared with git"
fi

# --- build and inspect -------------------------------------------------------
if ! dkb --network=host --build-arg BUILD_BASE=berth-base:bookworm --build-arg RUN_BASE=berth-base:bookworm \
    --build-arg CONFIGURE_FLAGS="${BR_IMAGE_CONFIGURE_FLAGS:-}" \
    -t berth:test "$top_srcdir" >"$BR_TMP/build.out" 2>&1; then
    show_build
    echo "Bail out! the image did not build"
    exit 1
fi
ok "docker build" true

cfg() { dk image inspect --format "{{json .Config.$1}}" berth:test; }
user=$(cfg User | jq -r .)
like "$user" '^[0-9]+(:[0-9]+)?$' "USER is numeric ($user)"
uid=${user%%:*}
ok "USER is not root" test -n "$uid" -a "$uid" != 0 -a "$uid" != root
is "$(cfg Volumes | jq -c 'keys')" '["/var/lib/berth"]' "VOLUME /var/lib/berth"
is "$(cfg ExposedPorts | jq -c 'keys')" '["5000/tcp"]' "EXPOSE 5000"
is "$(cfg Healthcheck | jq -c .Test)" '["CMD","/usr/local/bin/berth-healthcheck"]' "HEALTHCHECK runs berth-healthcheck"
ok "the store is in the volume (BERTH_STORAGE_ROOT)" grep -qx 'BERTH_STORAGE_ROOT=/var/lib/berth' <(cfg Env | jq -r '.[]')
is "$(cfg Entrypoint | jq -c .)$(cfg Cmd | jq -c .)" '["/usr/local/bin/berth"]["serve"]' "ENTRYPOINT berth, CMD serve"

cid=$(dk create berth:test)
dk export "$cid" | tar -t >"$BR_TMP/files"
ok "the image holds usr/local/bin/berth" grep -qx 'usr/local/bin/berth' "$BR_TMP/files"
ok "the image holds a trust store (https:// webhooks)" grep -qx 'etc/ssl/certs/ca-certificates.crt' "$BR_TMP/files"
ok "no compiler and no headers in the run stage" fails grep -E -m1 '^usr/(bin/(gcc|cc|make)$|include/openssl/)' "$BR_TMP/files"
ok "docker cp the binary out" dk cp "$cid:/usr/local/bin/berth" "$BR_TMP/berth-image"
dk rm "$cid" >/dev/null
if [ -x "$BERTH" ]; then
    v=$("$BR_TMP/berth-image" version 2>&1)
    diag "the image's berth: $v"
    # (name and version only: this build may link another h2o than the image's)
    is "$(echo "$v" | cut -d' ' -f1-2)" "$("$BERTH" version 2>&1 | cut -d' ' -f1-2)" "the image's berth is this tree's version"
fi

# --- run it, push to it ------------------------------------------------------
port=$(free_port)
REG="127.0.0.1:$port"
URL="http://$REG"
# healthy NAME — wait (60 s) until docker reports the container healthy.
healthy() {
    local i s
    for i in $(seq 1 120); do
        s=$(dk inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null)
        [ "$s" = healthy ] && return 0
        [ "$(dk inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || break
        sleep 0.5
    done
    diag "$1: health '$s'; log:"
    dk logs "$1" 2>&1 | tail -n 20 | sed 's/^/#   /'
    return 1
}

ok "docker run (host network, BERTH_LISTEN on loopback, a named volume)" \
    quiet dk run -d --name berth-a --network host --health-interval 1s \
    -e BERTH_LISTEN="$REG" -e BERTH_THREADS=2 -v berth-store:/var/lib/berth berth:test
ok "the container becomes healthy (its HEALTHCHECK: /readyz on the main listener)" healthy berth-a
is "$(curl -s "$URL/readyz")" "ready" "GET /readyz without credentials"
# The probe itself, run here: it must fail when berth is not there or not ready.
ok "docker cp berth-healthcheck out" dk cp berth-a:/usr/local/bin/berth-healthcheck "$BR_TMP/healthcheck"
ok "berth-healthcheck passes against the running berth" env BERTH_LISTEN="$REG" "$BR_TMP/healthcheck"
ok "berth-healthcheck fails where nothing listens" fails env BERTH_LISTEN="127.0.0.1:$(free_port)" "$BR_TMP/healthcheck"
pid=$(dk inspect --format '{{.State.Pid}}' berth-a)
is "$(stat -c %u "/proc/$pid" 2>&1)" "$uid" "berth runs as the image's user"

ok "tag the berth image for it" dk tag berth:test "$REG/berth/berth:test"
ran "docker push of the berth image to the containerized berth" "$BR_TMP/push.out" dk push "$REG/berth/berth:test"
curl -s -o "$BR_TMP/m" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$URL/v2/berth/berth/manifests/test"
is "$(jq -r .config.digest "$BR_TMP/m")" "$(dk image inspect --format '{{.Id}}' berth:test)" \
    "it serves the pushed manifest (config = image ID)"

# A small image to round-trip: pulled back only after the local copy is gone.
mkdir -p "$BR_TMP/small"
head -c 1048576 /dev/urandom >"$BR_TMP/small/random"
small=$(tar -C "$BR_TMP/small" -c . | t "$DOCKER" import - "$REG/small:v1")
ran "docker push of a second image" "$BR_TMP/push.out" dk push "$REG/small:v1"
ok "docker rmi it" quiet dk rmi "$REG/small:v1"
ran "docker pull it back" "$BR_TMP/pull.out" dk pull "$REG/small:v1"
is "$(dk image inspect --format '{{.Id}}' "$REG/small:v1" 2>&1)" "$small" "pulled image has the pushed ID"

dk stop -t 60 berth-a >/dev/null
is "$(dk inspect --format '{{.State.ExitCode}}' berth-a)" 0 "docker stop: berth (PID 1) drains and exits 0"

# --- a second container: same volume, a mounted config file -------------------
mport=$(free_port)
cat >"$BR_TMP/berth.yaml" <<'EOF'
storage:
  delete: false
log:
  format: json
EOF
chmod 0644 "$BR_TMP/berth.yaml"
ok "docker run with /etc/berth/berth.yaml mounted, health on the metrics listener" \
    quiet dk run -d --name berth-b --network host --health-interval 1s \
    -e BERTH_LISTEN="$REG" -e BERTH_METRICS_LISTEN="127.0.0.1:$mport" -e BERTH_HEALTH_ON_MAIN=false \
    -v "$BR_TMP/berth.yaml:/etc/berth/berth.yaml:ro" -v berth-store:/var/lib/berth berth:test
ok "it becomes healthy (the HEALTHCHECK probes BERTH_METRICS_LISTEN)" healthy berth-b
is "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" 404 "health.on_main off: no /readyz on the main listener"
ok "berth-healthcheck fails on that 404" fails env BERTH_LISTEN="$REG" "$BR_TMP/healthcheck"
ok "docker rmi the small image again" quiet dk rmi "$REG/small:v1"
ran "docker pull from the second container: the store outlived the first" "$BR_TMP/pull.out" \
    dk pull "$REG/small:v1"
is "$(curl -s "$URL/v2/_catalog" | jq -c .repositories)" '["berth/berth","small"]' "catalog"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/v2/small/manifests/v1")
is "$code" 405 "the mounted file's storage.delete: false holds"
like "$(dk logs berth-b 2>&1 | tail -n 1)" '^\{.*\}$' "the mounted file's log.format: json holds"
mp=$(dk volume inspect --format '{{.Mountpoint}}' berth-store)
is "$(stat -c %u "$mp/index" 2>&1)" "$uid" "store files belong to the image's user"

done_testing
