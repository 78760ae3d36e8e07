# tests for config/ (see tests/local.mk)
check_PROGRAMS += tests/config/config_test
TESTS += tests/config/config_test
tests_config_config_test_SOURCES = tests/config/config_test.c
tests_config_config_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_config_config_test_LDADD = libbrconfig.a libbrcommon.a $(BR_EXT_LIBS)
