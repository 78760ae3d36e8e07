#!/usr/bin/env bash
# berth quickstart for a fresh Debian 12 machine.
#
#   ./quickstart.sh          install build dependencies, build, start berth with its
#                            embedded defaults (listen :5000, store ./berth-data)
#   ./quickstart.sh test     install build and test dependencies (real registry clients),
#                            build, and run every test (make check)
#   ./quickstart.sh deps     install the build dependencies only
#   ./quickstart.sh build    install the build dependencies and build (the Dockerfile's
#                            build stage runs deps, then build)
#   ./quickstart.sh mirror   print the Debian mirror apt uses here (tests/clients/image.sh
#                            debootstraps the image's base from it)
#
# CONFIGURE_FLAGS is passed to ./configure (CI uses --enable-werror; --with-system-h2o
# links Debian's unpatched libh2o-evloop instead of berth's patched h2o build, see
# server/h2o/build.sh).
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-start}

BUILD_DEPS="build-essential autoconf automake libtool pkg-config ca-certificates
  libh2o-evloop-dev libssl-dev libyaml-dev liblmdb-dev libjansson-dev libcrypt-dev
  cmake zlib1g-dev dpkg-dev"
TEST_DEPS="curl jq python3 openssl bc nghttp2-client iproute2 procps util-linux
  skopeo podman buildah umoci docker.io containerd uidmap fuse-overlayfs
  git systemd groff-base man-db prometheus debootstrap"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_deps() {
    local pkgs=$BUILD_DEPS
    [ "$mode" = test ] && pkgs="$pkgs $TEST_DEPS"
    # shellcheck disable=SC2086
    if ! dpkg -s $pkgs >/dev/null 2>&1; then
        as_root apt-get update
        # shellcheck disable=SC2086
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs
    fi
    enable_deb_src
}

# The Debian mirror this machine's apt uses (deb822 or one-line sources; the
# security archive is not a mirror), else deb.debian.org.
debian_mirror() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
        tr ' ' '\n' | grep -v -e security -e '^$' | head -n 1 || true)
    [ -n "$uri" ] || uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\)[[:space:]]\+bookworm[[:space:]].*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# The build makes h2o from Debian's source package (server/h2o/build.sh runs
# `apt-get source h2o`), which needs a deb-src entry. Add one for the mirror this
# machine already uses, unless apt can find the source.
enable_deb_src() {
    apt-get source --print-uris h2o >/dev/null 2>&1 && return 0
    echo "deb-src $(debian_mirror) bookworm main" | as_root tee /etc/apt/sources.list.d/berth-src.list >/dev/null
    as_root apt-get update
}

build() {
    ./autogen.sh
    # shellcheck disable=SC2086
    ./configure ${CONFIGURE_FLAGS:-}
    make -j"$(nproc)"
}

case "$mode" in
deps)
    install_deps
    ;;
build)
    install_deps
    build
    ;;
mirror)
    debian_mirror
    ;;
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
    echo "usage: $0 [start|test|deps|build|mirror]" >&2
    exit 2
    ;;
esac
