# tests for server/ (see tests/local.mk)
