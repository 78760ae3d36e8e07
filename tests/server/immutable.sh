#!/bin/bash
# Immutable tags (config 'immutable'): a tag matching a rule's tag globs can be
# pushed, pushed again with the same manifest, but not moved or deleted (403
# DENIED naming the rule), neither by tag nor by deleting its manifest; the
# most specific repository glob decides; other tags and repositories are free.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

CONF=$BR_TMP/immutable.yaml
cat >"$CONF" <<'YAML'
immutable:
  - {repository: "**", tags: ["v*"]}
  - {repository: "scratch/**", tags: []}
  - {repository: "team/*", tags: ["release-*", "stable"]}
YAML
conf() { echo "$CONF"; }
BR_START_CONFIG=conf
br_start || { ok "berth starts" false; done_testing; exit 1; }
at_exit br_stop

# image REPO SEED — pushes config + layer, writes the manifest to $BR_TMP/m.SEED
image() {
    printf '{"seed":"%s"}' "$2" >"$BR_TMP/c.$2"
    printf 'layer %s' "$2" >"$BR_TMP/l.$2"
    push_blob "$1" "$BR_TMP/c.$2" && push_blob "$1" "$BR_TMP/l.$2" || return 1
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' \
        "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha256d "$BR_TMP/c.$2")" "$(fsize "$BR_TMP/c.$2")" "$OCI_LAYER" "$(sha256d "$BR_TMP/l.$2")" \
        "$(fsize "$BR_TMP/l.$2")" >"$BR_TMP/m.$2"
}

image app/a one && image app/a two
is "$(put_manifest app/a v1 "$BR_TMP/m.one" "$OCI_MANIFEST")" 201 "push v1"
is "$(put_manifest app/a v1 "$BR_TMP/m.one" "$OCI_MANIFEST")" 201 "push the same manifest to v1 again (a client retrying)"
is "$(put_manifest app/a v1 "$BR_TMP/m.two" "$OCI_MANIFEST")" 403 "push another manifest to v1: 403"
is "$(oci_error_check)" "DENIED 1" "... DENIED, an OCI error body"
like "$(body)" "tag 'v1' is immutable \\(immutable rule: repository '\\*\\*', tags 'v\\*'\\)" "... naming the rule"
is "$(http GET "/v2/app/a/manifests/v1" -H "Accept: $OCI_MANIFEST")" 200 "v1 still resolves"
is "$(sha256_of "$BR_TMP/b")" "$(sha256_of "$BR_TMP/m.one")" "... to the first manifest"
is "$(http DELETE /v2/app/a/manifests/v1)" 403 "delete tag v1: 403"
like "$(body)" "DENIED.*tag 'v1' is immutable" "... DENIED naming the tag"
is "$(http DELETE "/v2/app/a/manifests/$(sha256d "$BR_TMP/m.one")")" 403 "delete v1's manifest by digest: 403 (it would take v1)"
like "$(body)" "tag 'v1' is immutable.*deleting the manifest it names" "... naming the tag and why"
is "$(http GET "/v2/app/a/manifests/v1" -H "Accept: $OCI_MANIFEST")" 200 "v1 survives both"

is "$(put_manifest app/a latest "$BR_TMP/m.one" "$OCI_MANIFEST")" 201 "latest (no rule for it) on the first"
is "$(put_manifest app/a latest "$BR_TMP/m.two" "$OCI_MANIFEST")" 201 "latest moves freely"
is "$(http DELETE /v2/app/a/manifests/latest)" 202 "and is deleted freely"
is "$(put_manifest app/a "$(sha256d "$BR_TMP/m.two")" "$BR_TMP/m.two" "$OCI_MANIFEST")" 201 "push by digest is never refused"
is "$(http DELETE "/v2/app/a/manifests/$(sha256d "$BR_TMP/m.two")")" 202 "a manifest no immutable tag names is deleted"

image scratch/x one && image scratch/x two
is "$(put_manifest scratch/x v1 "$BR_TMP/m.one" "$OCI_MANIFEST")" 201 "scratch/x: push v1"
is "$(put_manifest scratch/x v1 "$BR_TMP/m.two" "$OCI_MANIFEST")" 201 "scratch/** has no immutable tags (more specific than **): v1 moves"
is "$(http DELETE /v2/scratch/x/manifests/v1)" 202 "and is deleted"

image team/t one && image team/t two
is "$(put_manifest team/t release-1 "$BR_TMP/m.one" "$OCI_MANIFEST")" 201 "team/t: push release-1"
is "$(put_manifest team/t release-1 "$BR_TMP/m.two" "$OCI_MANIFEST")" 403 "release-1 is immutable under team/*"
like "$(body)" "repository 'team/\\*', tags 'release-\\*'" "... naming team/*'s rule"
is "$(put_manifest team/t v1 "$BR_TMP/m.one" "$OCI_MANIFEST")" 201 "team/t: push v1"
is "$(put_manifest team/t v1 "$BR_TMP/m.two" "$OCI_MANIFEST")" 201 "v1 is free under team/* (its rule replaces **'s)"

# Racing pushes of one immutable tag: exactly one manifest wins.
image app/race one && image app/race two
for i in 1 2; do
    m=$([ $i = 1 ] && echo one || echo two)
    curl -s -o /dev/null -w '%{http_code}\n' -X PUT --data-binary @"$BR_TMP/m.$m" -H "Content-Type: $OCI_MANIFEST" \
        "$BR_URL/v2/app/race/manifests/v9" >"$BR_TMP/r$i" &
    pids="${pids:-} $!"
done
wait $pids
is "$(sort "$BR_TMP/r1" "$BR_TMP/r2" | tr '\n' ' ')" "201 403 " "two racing pushes of v9: one 201, one 403"
no_sanitizer_report "$BR_TMP/server.log"
done_testing
