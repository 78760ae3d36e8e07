# real-client tests (skopeo, podman, buildah, docker, ctr)
