# Packaging: the tarball holds every tracked file (dist.sh).
TESTS += tests/pkg/dist.sh
