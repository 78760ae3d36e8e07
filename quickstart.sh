#!/usr/bin/env bash
# berth quickstart for a fresh Debian 12 machine.
#
#   ./quickstart.sh          install build dependencies, build, start berth with its
#                            embedded defaults (listen :5000, store ./berth-data)
#   ./quickstart.sh test     install build and test dependencies (real registry clients),
#                            build, and run every test (make check)
#
# CONFIGURE_FLAGS is passed to ./configure (CI uses --enable-werror).
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-start}

BUILD_DEPS="build-essential autoconf automake libtool pkg-config ca-certificates
  libh2o-evloop-dev libssl-dev libyaml-dev liblmdb-dev libjansson-dev libcrypt-dev"
TEST_DEPS="curl jq python3 openssl bc nghttp2-client iproute2 procps util-linux
  skopeo podman buildah umoci docker.io containerd uidmap fuse-overlayfs"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_deps() {
    local pkgs=$BUILD_DEPS
    [ "$mode" = test ] && pkgs="$pkgs $TEST_DEPS"
    # shellcheck disable=SC2086
    if dpkg -s $pkgs >/dev/null 2>&1; then
        return 0 # all installed already
    fi
    as_root apt-get update
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs
}

build() {
    ./autogen.sh
    # shellcheck disable=SC2086
    ./configure ${CONFIGURE_FLAGS:-}
    make -j"$(nproc)"
}

case "$mode" in
start)
    install_deps
    build
    exec ./berth
    ;;
test)
    install_deps
    build
    make check
    ;;
*)
    echo "usage: $0 [start|test]" >&2
    exit 2
    ;;
esac
