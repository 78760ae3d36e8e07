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
