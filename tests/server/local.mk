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
TESTS += tests/server/crash.sh
TESTS += tests/server/auth.sh
TESTS += tests/server/tls_reload.sh
EXTRA_DIST += tests/server/tls_reload.sh
TESTS += tests/server/tls.sh
# base.sh, blobs.sh and manifests.sh again, with Basic auth and with tokens
TESTS += tests/server/conformance-basic.sh tests/server/conformance-token.sh
EXTRA_DIST += tests/server/conformance-lib.sh
