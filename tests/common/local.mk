# tests for common/
check_PROGRAMS += tests/common/common_test
TESTS += tests/common/common_test
tests_common_common_test_SOURCES = tests/common/common_test.c
tests_common_common_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_common_common_test_LDADD = libbrcommon.a $(BR_EXT_LIBS)
