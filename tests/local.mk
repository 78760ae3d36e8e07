# Tests: how to add one (read this before editing any tests/*/local.mk).
#
#   Shell test:   TESTS += tests/<dir>/<name>.sh
#                 That is all: every test script in TESTS (every entry that is
#                 not a check_PROGRAMS program) is put in the tarball by the
#                 EXTRA_DIST line at the end of this file, so `make distcheck`
#                 has it. Do not list it in EXTRA_DIST as well.
#   Helper file a test sources or runs but that is not a test itself (a lib.sh,
#   a .py, a data file or directory):
#                 EXTRA_DIST += tests/<dir>/<file>
#   C test:       check_PROGRAMS += ...; TESTS += ...; <prog>_SOURCES = ...
#                 (sources listed in _SOURCES are distributed by automake).
#
# tests/pkg/dist.sh (run by `make check` in a git checkout) fails when a tracked
# file is missing from the tarball, naming it, so a forgotten EXTRA_DIST line
# shows up at once instead of in CI's `make distcheck`.
#
# Test programs link the module libraries they need plus the external ones.
BR_TEST_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(LMDB_CFLAGS) $(JANSSON_CFLAGS) $(YAML_CFLAGS)
EXTRA_DIST += tests/tap.h tests/lib.sh

include tests/common/local.mk
include tests/config/local.mk
include tests/storage/local.mk
include tests/manifests/local.mk
include tests/auth/local.mk
include tests/server/local.mk
include tests/clients/local.mk
include tests/pkg/local.mk

# Every test script in TESTS goes into the tarball (see the top of this file).
# GNU make expands this when `make dist` runs, after every local.mk has added
# to TESTS. (Do not run `make dist TESTS=...`: a TESTS given on the command
# line would shrink this list too; to run fewer tests use TEST_LOGS, as
# .ci/run does for distcheck.)
EXTRA_DIST += $(filter-out $(check_PROGRAMS),$(TESTS))

# The test list, for scripts that pick some of it (.ci/run, for distcheck).
print-tests:
	@echo $(TESTS)
.PHONY: print-tests
