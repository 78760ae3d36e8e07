# tests for manifests/
check_PROGRAMS += tests/manifests/manifest_test
TESTS += tests/manifests/manifest_test
tests_manifests_manifest_test_SOURCES = tests/manifests/manifest_test.c
tests_manifests_manifest_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_manifests_manifest_test_LDADD = libbrmanifests.a libbrcommon.a $(BR_EXT_LIBS)

# Fuzz targets (tests/fuzz/README.md), built here with driver.c so that
# `make check` replays each seed corpus through them with the normal compiler.
check_PROGRAMS += tests/fuzz/manifest_fuzz tests/fuzz/digest_fuzz
TESTS += tests/fuzz/manifest_fuzz tests/fuzz/digest_fuzz
tests_fuzz_manifest_fuzz_SOURCES = tests/fuzz/manifest_fuzz.c tests/fuzz/driver.c tests/fuzz/fuzz.h
tests_fuzz_manifest_fuzz_CFLAGS = $(BR_TEST_CFLAGS) -DBR_FUZZ_NAME='"manifest"'
tests_fuzz_manifest_fuzz_LDADD = libbrmanifests.a libbrcommon.a $(BR_EXT_LIBS)
tests_fuzz_digest_fuzz_SOURCES = tests/fuzz/digest_fuzz.c tests/fuzz/driver.c tests/fuzz/fuzz.h
tests_fuzz_digest_fuzz_CFLAGS = $(BR_TEST_CFLAGS) -DBR_FUZZ_NAME='"digest"'
tests_fuzz_digest_fuzz_LDADD = libbrcommon.a $(BR_EXT_LIBS)
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/manifest.dict tests/fuzz/corpus
