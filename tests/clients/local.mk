# real-client tests (skopeo, podman, buildah, docker, ctr, curl for artifacts).
# Each skips itself when its client is not installed; BR_TEST_REGISTRY=distribution
# runs them against Debian's docker-registry (distribution 2.8) instead of berth.
TESTS += tests/clients/skopeo.sh tests/clients/podman.sh tests/clients/docker.sh tests/clients/ctr.sh tests/clients/artifact.sh
EXTRA_DIST += tests/clients/clients.sh tests/clients/images.sh
TESTS += tests/clients/auth-clients.sh
# the container image: Dockerfile built on a private dockerd from a debootstrapped base
TESTS += tests/clients/image.sh
