# The container image (README, "Container image"): the Dockerfile and its
# .dockerignore at the top, and the HEALTHCHECK script it installs.
EXTRA_DIST += Dockerfile .dockerignore docker/healthcheck.sh
