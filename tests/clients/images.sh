# Test images for the real-client tests, built locally from scratch with umoci
# (no base image, no network) and filled with random data so that every run
# pushes blobs the registry has never seen. Source after clients.sh.
#
#   img_build_big      → OCI layout $IMG_BIG, tag "v1": 3 gzip layers, one of
#                        them >= 64 MiB of incompressible random data
#   img_build_index    → OCI layout $IMG_IDX, tag "multi": an image index with a
#                        linux/amd64 and a linux/arm64 image (tags amd64, arm64)
#   img_build_small    → OCI layout $IMG_SMALL, tag "v1": 2 small layers
#   img_build_docker   → skopeo dir: $IMG_DOCKER holding the small image
#                        converted to Docker v2 schema 2 (application/vnd.docker.*)
#
# Helpers: layout_digest LAYOUT TAG (manifest digest from index.json),
# layout_blob LAYOUT DIGEST (path of a blob), img_random_layer_tar OUT KIB.

IMG_DIR="$BR_TMP/images"
IMG_BIG="$IMG_DIR/big"
IMG_IDX="$IMG_DIR/index"
IMG_SMALL="$IMG_DIR/small"
IMG_DOCKER="$IMG_DIR/docker-v2s2"

# A unique word for this run, put into every image (labels and a file).
IMG_STAMP="berth-$(date +%s)-$$-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

# img_random_layer_tar OUT KIB [NAME] — an uncompressed layer tar holding
# KIB KiB of random data in /data/NAME plus a stamp file.
img_random_layer_tar() {
    local out=$1 kib=$2 name=${3:-blob} root
    root=$(mktemp -d "$IMG_DIR/rootfs.XXXXXX")
    mkdir -p "$root/data" "$root/etc"
    head -c $((kib * 1024)) /dev/urandom >"$root/data/$name"
    printf '%s %s\n' "$IMG_STAMP" "$name" >"$root/etc/berth-stamp-$name"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out" data etc
    rm -rf "$root"
}

# _img_new LAYOUT TAG ARCH — an empty image with a config for linux/ARCH.
_img_new() {
    [ -f "$1/index.json" ] || umoci init --layout "$1" || return 1
    umoci new --image "$1:$2" || return 1
    umoci config --image "$1:$2" --os linux --architecture "$3" \
        --config.cmd /data/run --config.label "org.example.berth.stamp=$IMG_STAMP" \
        --config.env "BERTH_STAMP=$IMG_STAMP"
}

# _img_add LAYOUT TAG KIB NAME — append a random layer.
_img_add() {
    local tar="$IMG_DIR/layer-$$-$4.tar"
    img_random_layer_tar "$tar" "$3" "$4" || return 1
    umoci raw add-layer --image "$1:$2" "$tar" || return 1
    rm -f "$tar"
}

img_build_big() {
    mkdir -p "$IMG_DIR"
    rm -rf "$IMG_BIG"
    _img_new "$IMG_BIG" v1 amd64 &&
        _img_add "$IMG_BIG" v1 64 small &&
        _img_add "$IMG_BIG" v1 $((64 * 1024 + 512)) big &&
        _img_add "$IMG_BIG" v1 300 medium &&
        umoci gc --layout "$IMG_BIG"
}

img_build_small() {
    mkdir -p "$IMG_DIR"
    rm -rf "$IMG_SMALL"
    _img_new "$IMG_SMALL" v1 amd64 &&
        _img_add "$IMG_SMALL" v1 16 one &&
        _img_add "$IMG_SMALL" v1 200 two &&
        umoci gc --layout "$IMG_SMALL"
}

# The index is written by hand (umoci has no index command): an
# application/vnd.oci.image.index.v1+json blob whose two descriptors carry
# platforms, then referenced from the layout's index.json as tag "multi".
img_build_index() {
    mkdir -p "$IMG_DIR"
    rm -rf "$IMG_IDX"
    _img_new "$IMG_IDX" amd64 amd64 && _img_add "$IMG_IDX" amd64 40 amd64-a && _img_add "$IMG_IDX" amd64 8 amd64-b &&
        _img_new "$IMG_IDX" arm64 arm64 && _img_add "$IMG_IDX" arm64 40 arm64-a &&
        umoci gc --layout "$IMG_IDX" || return 1
    local idx tmp d
    idx=$(jq -c '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
            manifests: [.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "amd64" or
                                              .annotations["org.opencontainers.image.ref.name"] == "arm64")
                        | {mediaType, digest, size,
                           platform: {architecture: .annotations["org.opencontainers.image.ref.name"], os: "linux"}}]
                        | sort_by(.platform.architecture),
            annotations: {"org.example.berth.stamp": $stamp}}' --arg stamp "$IMG_STAMP" "$IMG_IDX/index.json") || return 1
    tmp="$IMG_DIR/index.$$.json"
    printf '%s' "$idx" >"$tmp"
    d=$(sha256sum "$tmp" | cut -d' ' -f1)
    mv "$tmp" "$IMG_IDX/blobs/sha256/$d"
    jq --arg d "sha256:$d" --argjson size "${#idx}" \
        '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $size,
                          annotations: {"org.opencontainers.image.ref.name": "multi"}}]' \
        "$IMG_IDX/index.json" >"$tmp" && mv "$tmp" "$IMG_IDX/index.json"
}

# Docker v2 schema 2: skopeo converts the small OCI image (manifest, config and
# layer media types) into a dir: copy. Builds the small image first if needed.
img_build_docker() {
    [ -f "$IMG_SMALL/index.json" ] || img_build_small || return 1
    rm -rf "$IMG_DOCKER"
    sk copy -q --format v2s2 "oci:$IMG_SMALL:v1" "dir:$IMG_DOCKER"
}

# layout_digest LAYOUT TAG — digest of the manifest tagged TAG in an OCI layout.
layout_digest() {
    jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
        "$1/index.json"
}

# layout_blob LAYOUT DIGEST — path of a blob in an OCI layout.
layout_blob() { echo "$1/blobs/${2%%:*}/${2#*:}"; }
