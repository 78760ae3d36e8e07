# tests for config/ (see tests/local.mk)
