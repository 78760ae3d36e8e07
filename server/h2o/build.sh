#!/usr/bin/env bash
# Builds berth's patched h2o: Debian's h2o 2.2.5 source package with the numbered
# patches in this folder applied, compiled as the static libh2o-evloop only.
#
#   server/h2o/build.sh LINK
#
# LINK becomes a symlink to the finished build: LINK/include (h2o.h, h2o/*.h,
# picohttpparser.h), LINK/lib/libh2o-evloop.a, LINK/VERSION (the Debian source
# version and the series key). configure --with-patched-h2o compiles against
# LINK/include and links LINK/lib/libh2o-evloop.a.
#
# The third-party source never enters the repository: it comes from Debian at build
# time (`apt-get source h2o`, which needs a deb-src entry and dpkg-dev; quickstart.sh
# sets both up) and is unpacked, patched and built in a cache directory:
#   $BR_H2O_CACHE, else $XDG_CACHE_HOME/berth, else ~/.cache/berth.
# Each build lives in h2o-<key>, where key hashes this script and every patch (name
# and content), so changing the series builds anew and an unchanged series costs one
# sha256sum. BR_H2O_DSC=/path/h2o_2.2.5*.dsc uses an already downloaded source
# package instead of apt (offline machines). BR_H2O_CFLAGS adds compiler flags
# (configure --enable-sanitizers passes its own, so h2o's code, patches included,
# is checked too); they are part of the key.
set -euo pipefail

link=${1:?usage: build.sh LINK}
here=$(cd "$(dirname "$0")" && pwd)
cache=${BR_H2O_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}

die() {
    echo "server/h2o/build.sh: $*" >&2
    exit 1
}

# The key covers everything that decides the output; the patches are applied in
# file-name order, which the numbering fixes.
patches=("$here"/[0-9][0-9][0-9][0-9]-*.patch)
[ -e "${patches[0]}" ] || patches=()
cflags=${BR_H2O_CFLAGS:-}
key=$( (
    echo "$cflags"
    cat "$here/build.sh"
    for p in "${patches[@]}"; do
        basename "$p"
        cat "$p"
    done
) | sha256sum | cut -c1-16)
out=$cache/h2o-$key

mkdir -p "$cache"
# Two builds (say the in-tree one and build-san) may ask at once: one builds, the
# other waits and reuses it.
exec 9>"$cache/lock"
flock 9

if [ ! -f "$out/lib/libh2o-evloop.a" ]; then
    for tool in cmake patch dpkg-source; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install cmake patch dpkg-dev zlib1g-dev)"
    done
    work=$(mktemp -d "$cache/work.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "server/h2o/build.sh: building patched h2o in $out (series key $key)" >&2
    (
        cd "$work"
        if [ -n "${BR_H2O_DSC:-}" ]; then
            dpkg-source --no-check -x "$BR_H2O_DSC" >&2
        else
            # apt-get source unpacks and applies Debian's own patches (its CVE fixes
            # and system-library links); ours go on top.
            apt-get -q source h2o >&2 ||
                die "apt-get source h2o failed: enable deb-src (quickstart.sh writes /etc/apt/sources.list.d/berth-src.list) and apt-get update"
        fi
    )
    src=$(echo "$work"/h2o-2.2.5*/)
    [ -f "$src/CMakeLists.txt" ] || die "the source package is not h2o 2.2.5 (found: $(ls "$work"))"
    for p in "${patches[@]}"; do
        patch -d "$src" -p1 --batch --forward --silent <"$p" >&2 || die "$(basename "$p") does not apply"
    done
    # Only the evloop library, static and position independent (berth is a PIE),
    # against the system OpenSSL; no mruby, no libuv, no bundled libressl.
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
        -DWITH_MRUBY=OFF -DWITH_BUNDLED_SSL=OFF -DDISABLE_LIBUV=ON \
        -DCMAKE_C_FLAGS="-fstack-protector-strong -D_FORTIFY_SOURCE=2 $cflags" >"$work/cmake.log" 2>&1 ||
        die "cmake failed: $(tail -n 20 "$work/cmake.log")"
    make -C "$work/build" -j"$(nproc)" libh2o-evloop >"$work/make.log" 2>&1 ||
        die "make failed: $(tail -n 40 "$work/make.log")"
    stage=$work/out
    mkdir -p "$stage/lib" "$stage/include"
    cp "$work/build/libh2o-evloop.a" "$stage/lib/"
    cp -R "$src/include/." "$stage/include/"
    cp "$src/deps/picohttpparser/picohttpparser.h" "$stage/include/"
    printf 'source %s\nseries %s\ncflags %s\n' "$(basename "$src")" "$key" "$cflags" >"$stage/VERSION"
    rm -rf "$out"
    mv "$stage" "$out"
fi

ln -sfn "$out" "$link"
