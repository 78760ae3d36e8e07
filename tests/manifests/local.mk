# tests for manifests/ (see tests/local.mk)
