#!/bin/bash
# The spec's conformance workflows (base.sh, blobs.sh, manifests.sh) against a
# berth with Basic auth on (htpasswd, bcrypt): every request carries the
# credentials of a user who may pull, push and delete everywhere.
BR_AUTH_MODE=basic
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/server/conformance-lib.sh"
