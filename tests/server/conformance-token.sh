#!/bin/bash
# The spec's conformance workflows (base.sh, blobs.sh, manifests.sh) against a
# berth with its token issuer on: the client answers each Bearer challenge
# with a token for exactly the challenged scope(s), fetched from the realm
# with Basic credentials of a user who may pull, push and delete everywhere.
BR_AUTH_MODE=token
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/server/conformance-lib.sh"
