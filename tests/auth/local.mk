# tests for auth/ (see tests/local.mk)
check_PROGRAMS += tests/auth/auth_test
TESTS += tests/auth/auth_test
tests_auth_auth_test_SOURCES = tests/auth/auth_test.c
tests_auth_auth_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_auth_auth_test_LDADD = libbrauth.a libbrconfig.a libbrcommon.a $(BR_EXT_LIBS)

# Fuzz target for the Authorization / JWT / token-request parsers (tests/fuzz/README.md).
check_PROGRAMS += tests/fuzz/token_fuzz
TESTS += tests/fuzz/token_fuzz
tests_fuzz_token_fuzz_SOURCES = tests/fuzz/token_fuzz.c tests/fuzz/driver.c tests/fuzz/fuzz.h
tests_fuzz_token_fuzz_CFLAGS = $(BR_TEST_CFLAGS) -DBR_FUZZ_NAME='"token_fuzz"'
tests_fuzz_token_fuzz_LDADD = libbrauth.a libbrconfig.a libbrcommon.a $(BR_EXT_LIBS)
