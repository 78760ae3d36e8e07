# tests for storage/ (see tests/local.mk)
check_PROGRAMS += tests/storage/store_test tests/storage/crash_test
TESTS += tests/storage/store_test tests/storage/crash_test
tests_storage_store_test_SOURCES = tests/storage/store_test.c tests/storage/util.h
tests_storage_store_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_storage_store_test_LDADD = libbrstorage.a libbrcommon.a $(BR_EXT_LIBS)
tests_storage_crash_test_SOURCES = tests/storage/crash_test.c tests/storage/util.h
tests_storage_crash_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_storage_crash_test_LDADD = libbrstorage.a libbrcommon.a $(BR_EXT_LIBS)
check_PROGRAMS += tests/storage/gc_test
TESTS += tests/storage/gc_test
tests_storage_gc_test_SOURCES = tests/storage/gc_test.c tests/storage/util.h
tests_storage_gc_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_storage_gc_test_LDADD = libbrstorage.a libbrcommon.a $(BR_EXT_LIBS)
