# tests for server/ (see tests/local.mk)
TESTS += tests/server/blobs.sh
EXTRA_DIST += tests/server/oci-lib.sh
TESTS += tests/server/base.sh
TESTS += tests/server/manifests.sh
TESTS += tests/server/restart.sh
TESTS += tests/server/hostile.sh tests/server/slow.sh
EXTRA_DIST += tests/server/robust_lib.sh tests/server/robust_lib.py
TESTS += tests/server/http2.sh
TESTS += tests/server/bigbody.sh
TESTS += tests/server/stream.sh
TESTS += tests/server/crash.sh
TESTS += tests/server/soak.sh tests/server/listen.sh
EXTRA_DIST += tests/server/soak.py
TESTS += tests/server/auth.sh
TESTS += tests/server/tls_reload.sh
TESTS += tests/server/tls.sh
TESTS += tests/server/smuggle.sh tests/server/absolute.sh
# base.sh, blobs.sh and manifests.sh again, with Basic auth and with tokens
TESTS += tests/server/conformance-basic.sh tests/server/conformance-token.sh
EXTRA_DIST += tests/server/conformance-lib.sh
# the chunked decoder berth's HTTP/1 connections run: patched h2o's (server/h2o/0001)
if BR_PATCHED_H2O
check_PROGRAMS += tests/server/h2o_chunked_test
TESTS += tests/server/h2o_chunked_test
$(tests_server_h2o_chunked_test_OBJECTS): h2o-patched.stamp
endif
tests_server_h2o_chunked_test_SOURCES = tests/server/h2o_chunked_test.c
tests_server_h2o_chunked_test_CFLAGS = $(BR_TEST_CFLAGS) $(H2O_CFLAGS)
tests_server_h2o_chunked_test_LDADD = $(BR_EXT_LIBS)
TESTS += tests/server/startup.sh
TESTS += tests/server/accesslog.sh
# The strict chunk-size decoder of the system-h2o build (server/h1chunk.c):
# unit test, and its fuzz target replayed over tests/fuzz/corpus/h1chunk.
check_PROGRAMS += tests/server/h1chunk_test tests/fuzz/h1chunk_fuzz
TESTS += tests/server/h1chunk_test tests/fuzz/h1chunk_fuzz
tests_server_h1chunk_test_SOURCES = tests/server/h1chunk_test.c
tests_server_h1chunk_test_CFLAGS = $(BR_TEST_CFLAGS)
tests_fuzz_h1chunk_fuzz_SOURCES = tests/fuzz/h1chunk_fuzz.c tests/fuzz/driver.c tests/fuzz/fuzz.h
tests_fuzz_h1chunk_fuzz_CFLAGS = $(BR_TEST_CFLAGS) -DBR_FUZZ_NAME='"h1chunk"'
tests_fuzz_h1chunk_fuzz_LDADD = libbrcommon.a $(BR_EXT_LIBS)
TESTS += tests/server/gc.sh
TESTS += tests/server/reload.sh
TESTS += tests/server/immutable.sh
TESTS += tests/server/retention.sh
TESTS += tests/server/quota.sh
TESTS += tests/server/metrics.sh tests/server/prometheus.sh
TESTS += tests/server/events.sh
EXTRA_DIST += tests/server/webhook_receiver.py
TESTS += tests/server/scrub.sh
TESTS += tests/server/drain.sh
TESTS += tests/server/iopool.sh
TESTS += tests/server/bodies.sh
