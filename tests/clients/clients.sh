# Shared library for the real-client tests in tests/clients/. Source it after
# tests/lib.sh:
#
#   . "$top_srcdir/tests/lib.sh"
#   . "$top_srcdir/tests/clients/clients.sh"
#   need skopeo jq
#   registry_start                # sets BR_URL, BR_PORT, REG (host:port)
#
# registry_start runs berth (br_start) unless BR_TEST_REGISTRY=distribution,
# in which case it runs Debian's reference registry (docker-registry, i.e.
# distribution 2.8) on 127.0.0.1 with a filesystem store under $BR_TMP and
# deletes enabled, so each script can be developed against a known-good
# registry and then run unchanged against berth.
#
# Client configuration never touches the machine's own: HOME, XDG_* and the
# containers-* config variables point at private files under $BR_TMP (an
# insecure-free registries.conf, an accept-anything policy.json, a vfs
# storage.conf). Every client step goes through `t` (timeout) so nothing hangs.
#
# Debian packages these scripts use (make check installs nothing; a script
# whose client is missing skips itself): skopeo podman buildah umoci docker.io
# containerd jq curl docker-registry, plus util-linux (unshare, mount) and
# python3 (free_port in tests/lib.sh). No machine setup is needed: all client
# configuration is private to the test (see _clients_setup_env and
# private_ns), and the docker/ctr scripts start their own dockerd/containerd.
#
# Environment:
#   BR_TEST_REGISTRY   "distribution" to test against docker-registry
#   BR_CLIENT_TIMEOUT  seconds per client step (default 300)
#   DOCKER_REGISTRY    path of the reference registry (default /usr/bin/docker-registry)

: "${BR_CLIENT_TIMEOUT:=300}"
: "${DOCKER_REGISTRY:=/usr/bin/docker-registry}"
REG=""
REG_KIND=berth
_reg_pid=""

# need BIN... — skip the whole script unless every client binary is installed.
need() {
    local b
    for b in "$@"; do
        command -v "$b" >/dev/null 2>&1 || skip_all "$b not installed"
    done
}

# t CMD... — run a client step with a bounded runtime (SIGTERM, then SIGKILL
# 10 s later). Exit status 124 means it timed out.
t() { timeout -k 10 "$BR_CLIENT_TIMEOUT" "$@"; }

# distribution_is_target — true when the tests run against docker-registry.
distribution_is_target() { [ "$REG_KIND" = distribution ]; }

# Private configuration for the containers/* tools (skopeo, podman, buildah).
_clients_setup_env() {
    # All traffic is to 127.0.0.1: no proxy may sit in between.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
    export HOME="$BR_TMP/home"
    export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
    export XDG_RUNTIME_DIR="$BR_TMP/run"
    mkdir -p "$XDG_CONFIG_HOME/containers" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
    chmod 700 "$XDG_RUNTIME_DIR"
    CLIENTS_POLICY="$XDG_CONFIG_HOME/containers/policy.json"
    cat >"$CLIENTS_POLICY" <<'EOF'
{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}
EOF
    # No search registries, no mirrors: only fully qualified names, only loopback.
    export CONTAINERS_REGISTRIES_CONF="$XDG_CONFIG_HOME/containers/registries.conf"
    printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' >"$CONTAINERS_REGISTRIES_CONF"
    export REGISTRY_AUTH_FILE="$XDG_CONFIG_HOME/containers/auth.json"
    echo '{"auths":{}}' >"$REGISTRY_AUTH_FILE"
    # podman/buildah storage: private root, vfs, no overlay mounts.
    CLIENTS_STORAGE_ROOT="$BR_TMP/storage"
    CLIENTS_STORAGE_RUNROOT="$BR_TMP/storage-run"
    export CONTAINERS_STORAGE_CONF="$XDG_CONFIG_HOME/containers/storage.conf"
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$CLIENTS_STORAGE_ROOT"
runroot = "$CLIENTS_STORAGE_RUNROOT"
EOF
    export CONTAINERS_CONF="$XDG_CONFIG_HOME/containers/containers.conf"
    cat >"$CONTAINERS_CONF" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$BR_TMP/podman-tmp"
volume_path = "$BR_TMP/volumes"
static_dir = "$CLIENTS_STORAGE_ROOT/libpod"
image_copy_tmp_dir = "$BR_TMP/tmp"
[network]
network_config_dir = "$BR_TMP/networks"
EOF
    export TMPDIR="$BR_TMP/tmp"
    mkdir -p "$TMPDIR"
}

# containers/image keeps a blob-info cache (where each blob was last seen: this
# is what lets skopeo/podman mount a blob from another repository instead of
# uploading it). As root its default is /var/lib/containers/cache, and podman
# also creates /run/containers/. So skopeo, podman and buildah run in a private
# mount namespace with a tmpfs over /var/lib/containers, /run/containers and /var/tmp (or
# over their parent when they don't exist, so nothing is created on the
# machine), the cache symlinked to $BR_TMP so it lasts across commands. Falls
# back to running them plainly when mount namespaces are not allowed.
CLIENTS_BIC="$BR_TMP/blob-info-cache"
_ns_script='
set -e
bic=$1; shift
for d in /var/lib/containers /run/containers /var/tmp; do
    if [ -d "$d" ]; then mount -n -t tmpfs none "$d"; else mount -n -t tmpfs none "${d%/*}"; mkdir "$d"; fi
done
ln -s "$bic" /var/lib/containers/cache
exec "$@"'

# private_ns CMD... — run a containers/* tool as described above, bounded by t.
private_ns() {
    mkdir -p "$CLIENTS_BIC"
    if [ -z "${_clients_unshare:-}" ]; then
        if unshare -m true 2>/dev/null; then _clients_unshare=yes; else _clients_unshare=no; fi
    fi
    if [ "$_clients_unshare" = yes ]; then
        t unshare -m sh -c "$_ns_script" sh "$CLIENTS_BIC" "$@"
    else
        t "$@"
    fi
}

sk() { private_ns skopeo "$@"; }

# registry_start — start the registry under test (see top of file) and wait
# until GET /v2/ answers. Sets BR_URL, BR_PORT and REG=127.0.0.1:PORT.
registry_start() {
    _clients_setup_env
    if [ "${BR_TEST_REGISTRY:-berth}" = distribution ]; then
        REG_KIND=distribution
        [ -x "$DOCKER_REGISTRY" ] || skip_all "docker-registry not installed"
        BR_PORT=$(free_port)
        BR_URL="http://127.0.0.1:$BR_PORT"
        mkdir -p "$BR_TMP/dist-store"
        cat >"$BR_TMP/registry.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $BR_TMP/dist-store
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$BR_PORT
EOF
        # distribution reads REGISTRY_* variables as config overrides (our
        # REGISTRY_AUTH_FILE would become auth.file): give it none of them.
        env -u REGISTRY_AUTH_FILE "$DOCKER_REGISTRY" serve "$BR_TMP/registry.yml" >>"$BR_TMP/server.log" 2>&1 &
        _reg_pid=$!
        at_exit _registry_stop
        local i
        for i in $(seq 1 200); do
            if curl -s -o /dev/null "$BR_URL/v2/" 2>/dev/null; then
                break
            fi
            if ! kill -0 "$_reg_pid" 2>/dev/null; then
                diag "docker-registry exited during start-up; log:"
                sed 's/^/#   /' "$BR_TMP/server.log"
                _reg_pid=""
                return 1
            fi
            sleep 0.05
        done
    else
        REG_KIND=berth
        [ -x "$BERTH" ] || skip_all "berth not built ($BERTH)"
        br_start || return 1
    fi
    REG="127.0.0.1:$BR_PORT"
    diag "registry under test: $REG_KIND at $REG"
    curl -s -o /dev/null "$BR_URL/v2/"
}

_registry_stop() {
    [ -n "$_reg_pid" ] || return 0
    kill -TERM "$_reg_pid" 2>/dev/null || true
    wait "$_reg_pid" 2>/dev/null || true
    _reg_pid=""
}

# server_log — the registry's log so far (access log lines included).
server_log() { cat "$BR_TMP/server.log" 2>/dev/null; }

# Digest helpers. sha256 of a file as "sha256:<hex>".
digest_of() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# layers_of MANIFEST_FILE — config and layer digests of an image manifest, one a line.
blobs_of() { jq -r '.config.digest, .layers[].digest' "$1"; }

# blob_file DIR DIGEST — a blob's file in a skopeo dir: copy (named by hex).
dir_blob() {
    local hex=${2#sha256:}
    if [ -f "$1/$hex" ]; then echo "$1/$hex"; else echo "$1/$hex.tar"; fi
}

# same_blobs_in_dir MANIFEST DIR — every config/layer blob of MANIFEST is in the
# skopeo dir: DIR with the right sha256.
same_blobs_in_dir() {
    local d f rc=0
    for d in $(blobs_of "$1"); do
        f=$(dir_blob "$2" "$d")
        if [ ! -f "$f" ] || [ "$(digest_of "$f")" != "$d" ]; then
            diag "blob $d missing or corrupt in $2"
            rc=1
        fi
    done
    return $rc
}

# wait_pid PID SECONDS — wait for a process we started to exit, bounded.
wait_pid() {
    local pid=$1 n=$(($2 * 10))
    while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
        n=$((n - 1))
    done
    ! kill -0 "$pid" 2>/dev/null
}

# fails CMD... — true when CMD fails (for `ok "..." fails cmd`).
fails() { ! "$@" >/dev/null 2>&1; }

# quiet CMD... — run CMD with its output kept out of the TAP stream. If it
# fails, diagnostics: the output's first 10 and last 30 lines (a client's
# error comes last, after its progress lines), the free disk space, and the
# registry's log lines that tell of trouble (warnings, errors, answers >= 400
# other than a HEAD's 404, which clients send to ask whether a blob exists).
quiet() {
    local rc=0 n
    "$@" >"$BR_TMP/quiet.out" 2>&1 || rc=$?
    [ $rc -eq 0 ] && return 0
    n=$(wc -l <"$BR_TMP/quiet.out")
    if [ "$n" -le 40 ]; then
        sed 's/^/#   /' "$BR_TMP/quiet.out"
    else
        head -n 10 "$BR_TMP/quiet.out" | sed 's/^/#   /'
        echo "#   [... $((n - 40)) lines ...]"
        tail -n 30 "$BR_TMP/quiet.out" | sed 's/^/#   /'
    fi
    diag "exit status $rc; free space: $(df -h --output=avail "$BR_TMP" | tail -n 1 | tr -d ' ')"
    diag "registry log, trouble only (last 20):"
    server_log | grep -Ev '"HEAD [^"]*" 404 ' | grep -E '" [45][0-9][0-9] |warn|error|fatal' | tail -n 20 | sed 's/^/#   /'
    return $rc
}

# --- a private dockerd -------------------------------------------------------
# _daemon_wait NAME PID LOG TRIES CMD... — poll CMD (output discarded) every
# 0.1 s, at most TRIES times, while PID lives; on failure show LOG's tail.
_daemon_wait() {
    local name=$1 pid=$2 log=$3 tries=$4 i
    shift 4
    for i in $(seq 1 "$tries"); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    diag "$name did not come up; log:"
    tail -n 30 "$log" | sed 's/^/#   /'
    return 1
}

# dockerd_start DIR TRIES — start a private dockerd (Debian's docker.io, moby
# 20.10) with everything under DIR: vfs storage, no iptables, no bridge, its
# own data/exec roots, socket DIR/docker.sock, CLI config dir DIR/cli,
# daemon.json, log and (managed) containerd; stopped at exit (dockerd_stop).
# Waits up to TRIES x 0.1 s for `$DOCKER version` against DIR/docker.sock (the
# caller sets DOCKER, and DOCKER_CONFIG if it wants one).
# dockerd 20.10 also writes /run/docker/plugins and (without
# deprecated-key-path in daemon.json) /etc/docker/key.json: a tmpfs over /run/docker (or
# /run when it doesn't exist) in a private mount namespace keeps the first off
# the machine, the flag the second.
_dockerd_pid=""
_dockerd_dir=""
dockerd_start() {
    local D=$1 tries=$2
    _dockerd_dir=$D
    mkdir -p "$D/data" "$D/exec" "$D/cli"
    # (deprecated-key-path has no command-line flag in 20.10, only this key)
    printf '{"deprecated-key-path": "%s"}\n' "$D/key.json" >"$D/daemon.json"
    local ns='if [ -d /run/docker ]; then mount -n -t tmpfs none /run/docker; else mount -n -t tmpfs none /run; fi && exec "$@"'
    local pre="unshare -m sh -c"
    unshare -m true 2>/dev/null || { ns='exec "$@"'; pre="sh -c"; }
    env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy -u NO_PROXY -u no_proxy \
        $pre "$ns" sh dockerd --config-file "$D/daemon.json" \
        --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
        --storage-driver=vfs --exec-opt native.cgroupdriver=cgroupfs \
        --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
        -H "unix://$D/docker.sock" >"$D/dockerd.log" 2>&1 &
    _dockerd_pid=$!
    at_exit dockerd_stop
    _daemon_wait dockerd "$_dockerd_pid" "$D/dockerd.log" "$tries" _dockerd_up
}
_dockerd_up() { DOCKER_HOST="unix://$_dockerd_dir/docker.sock" t "$DOCKER" version; }

# dockerd_stop — stop dockerd (it stops its own containerd); SIGKILL after
# 30 s, then make sure the managed containerd is gone too.
dockerd_stop() {
    [ -n "$_dockerd_pid" ] || return 0
    local cpid
    cpid=$(cat "$_dockerd_dir/exec/containerd/containerd.pid" 2>/dev/null)
    kill -TERM "$_dockerd_pid" 2>/dev/null
    wait_pid "$_dockerd_pid" 30 || kill -KILL "$_dockerd_pid" 2>/dev/null
    wait "$_dockerd_pid" 2>/dev/null
    if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
        kill -TERM "$cpid" 2>/dev/null
        wait_pid "$cpid" 10 || kill -KILL "$cpid" 2>/dev/null
    fi
    _dockerd_pid=""
}

# --- a private containerd ----------------------------------------------------
# containerd_start DIR — start a private containerd (1.6) with its config,
# root, state, gRPC socket DIR/containerd.sock, opt dir and log under DIR, CRI
# plugin off, only the native snapshotter, in a private mount namespace when
# allowed; stopped at exit (containerd_stop). Waits up to 30 s for the socket
# and `cr version` (the caller defines cr: ctr against DIR/containerd.sock).
_containerd_pid=""
containerd_start() {
    local C=$1
    mkdir -p "$C/root" "$C/state" "$C/opt"
    cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"
EOF
    local ns='exec "$@"' pre="sh -c"
    unshare -m true 2>/dev/null && pre="unshare -m sh -c"
    env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy $pre "$ns" sh \
        containerd --config "$C/config.toml" >"$C/containerd.log" 2>&1 &
    _containerd_pid=$!
    at_exit containerd_stop
    _daemon_wait containerd "$_containerd_pid" "$C/containerd.log" 300 _containerd_up "$C/containerd.sock"
}
_containerd_up() { [ -S "$1" ] && cr version; }

# containerd_stop — stop containerd; SIGKILL after 30 s.
containerd_stop() {
    [ -n "$_containerd_pid" ] || return 0
    kill -TERM "$_containerd_pid" 2>/dev/null
    wait_pid "$_containerd_pid" 30 || kill -KILL "$_containerd_pid" 2>/dev/null
    wait "$_containerd_pid" 2>/dev/null
    _containerd_pid=""
}
