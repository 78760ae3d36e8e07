# tests for storage/ (see tests/local.mk)
