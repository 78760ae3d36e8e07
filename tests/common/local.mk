# tests for common/ (see tests/local.mk)
