# real-client tests (skopeo, podman, buildah, docker, ctr). Each skips itself
# when its client is not installed; BR_TEST_REGISTRY=distribution runs them
# against Debian's docker-registry instead of berth.
TESTS += tests/clients/skopeo.sh tests/clients/podman.sh tests/clients/docker.sh tests/clients/ctr.sh
EXTRA_DIST += tests/clients/clients.sh tests/clients/images.sh
