#!/bin/bash
# Retention (config 'retention') through the real binary: `berth gc` against a
# running server's store, then the server's own periodic collection.
#   - the most specific rule decides ("ci/app" over "ci/**"); keep_last keeps
#     the newest tags by push time; protect globs and immutable tags stay;
#     re-pushing a tag (the same manifest) makes it the newest again;
#     keep_days keeps what was pushed within it; a repository without a rule
#     keeps everything;
#   - `berth gc --dry-run` lists exactly the tags the real run deletes, one
#     line each, and its figures (the manifests those tags alone held, with
#     untagged: delete) equal the real run's;
#   - tags/list afterwards; the deleted tags' manifests 404; fsck clean;
#   - a rule with neither keep_last nor keep_days is refused by check-config;
#   - gc.interval (after a reload): the server deletes by itself, logs it and
#     counts it in /metrics.
# Ages in days are not waited for here: push times are real and a rule keeps
# by keep_last; deletion by age is covered by tests/storage/gc_test.c, which
# runs the collection with a later clock (br_gc_options_t.now_s).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

BR_ROOT=$BR_TMP/store
CONF=$BR_TMP/ret.yaml
write_conf() { # write_conf INTERVAL
    cat >"$CONF" <<YAML
listen: 127.0.0.1:$BR_PORT
metrics: {listen: 127.0.0.1:$METRICS_PORT}
storage: {root: $BR_ROOT}
gc: {interval: $1, grace: 0, untagged: delete}
immutable:
  - {repository: "ci/app", tags: ["rel-*"]}
retention:
  - {repository: "ci/**", keep_last: 2, protect: ["latest", "v*"]}
  - {repository: "ci/app", keep_last: 3}
  - {repository: "ci/days/*", keep_last: 1, keep_days: 1}
YAML
}
BR_PORT=$(free_port)
METRICS_PORT=$(free_port)
BR_URL="http://127.0.0.1:$BR_PORT"
write_conf 0
br_serve "$CONF" || { echo "Bail out! berth did not start"; exit 1; }
at_exit br_stop

# tag REPO TAG SEED — pushes a manifest of its own (config blob from SEED, one
# shared layer per repository) under TAG.
tag() {
    local repo=$1 t=$2 seed=$3
    printf 'shared layer of %s' "$repo" >"$BR_TMP/layer"
    printf '{"seed":"%s"}' "$seed" >"$BR_TMP/cfg"
    push_blob "$repo" "$BR_TMP/layer" && push_blob "$repo" "$BR_TMP/cfg" || return 1
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' \
        "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha256d "$BR_TMP/cfg")" "$(fsize "$BR_TMP/cfg")" \
        "$OCI_LAYER" "$(sha256d "$BR_TMP/layer")" "$(fsize "$BR_TMP/layer")" >"$BR_TMP/man-$seed"
    [ "$(put_manifest "$repo" "$t" "$BR_TMP/man-$seed" "$OCI_MANIFEST")" = 201 ]
}
tags_of() { http GET "/v2/$1/tags/list" >/dev/null; python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["tags"] or [])))' "$BR_TMP/b"; }
bgc() { "$BERTH" gc -c "$CONF" "$@" 2>"$BR_TMP/gc.err"; }
# Report lines without their push time, which varies.
lines() { grep '^retention: ' | sed 's/ (pushed [0-9T:-]*Z, / (/'; }

# ci/lib (rule "ci/**": newest 2, protect latest and v*): pushed in this order,
# then b2 again (same manifest): newest first b2 b5 b4 latest b3 v1 b1.
fail=0
for t in b1 v1 b2 b3 latest b4 b5; do tag ci/lib "$t" "lib-$t" || fail=1; done
[ "$(put_manifest ci/lib b2 "$BR_TMP/man-lib-b2" "$OCI_MANIFEST")" = 201 ] || fail=1
# ci/app (rule "ci/app": newest 3, no protect; rel-* immutable)
for t in rel-1 a1 a2 a3 a4 a5; do tag ci/app "$t" "app-$t" || fail=1; done
# ci/days/x (newest 1, but everything pushed within a day stays)
for t in d1 d2 d3; do tag ci/days/x "$t" "days-$t" || fail=1; done
# other/repo: no rule
for t in o1 o2 o3; do tag other/repo "$t" "other-$t" || fail=1; done
is "$fail" 0 "every push answered 201"
lib_b3=$(sha256d "$BR_TMP/man-lib-b3")

expected='retention: would delete ci/app:a1 (rule "ci/app")
retention: would delete ci/app:a2 (rule "ci/app")
retention: would delete ci/lib:b1 (rule "ci/**")
retention: would delete ci/lib:b3 (rule "ci/**")
retention: would delete ci/lib:b4 (rule "ci/**")'
dry=$(bgc --dry-run)
is "$(echo "$dry" | lines)" "$expected" "dry run lists exactly the tags the rules delete"
like "$(echo "$dry" | grep -m1 '^retention: ')" \
    'retention: would delete ci/app:a1 \(pushed 20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z, rule "ci/app"\)' \
    "a line names the push time (UTC) and the rule"
dry_last=$(echo "$dry" | tail -n 1)
# 5 manifests only these tags held go: each its body and its config blob.
like "$dry_last" '^gc \(dry run\): 10 blobs, 5 manifests, [0-9]+ bytes would be reclaimed$' "dry run: the 5 manifests they held, 10 blobs"
is "$(tags_of ci/lib)" "b1 b2 b3 b4 b5 latest v1" "the dry run deletes nothing"

real=$(bgc)
is "$(echo "$real" | lines)" "${expected//would delete/deleted}" "the real run deletes exactly those"
dry_fig=${dry_last#gc (dry run): }
is "$(echo "$real" | tail -n 1)" "gc: ${dry_fig% would be reclaimed} reclaimed" "... reclaiming what the dry run said"
is "$(tags_of ci/lib)" "b2 b5 latest v1" "ci/lib: the newest 2 (b2 re-pushed) and the protected tags stay"
is "$(tags_of ci/app)" "a3 a4 a5 rel-1" "ci/app: its own rule (newest 3), the immutable tag stays"
is "$(tags_of ci/days/x)" "d1 d2 d3" "ci/days/x: keep_days keeps what is younger than a day"
is "$(tags_of other/repo)" "o1 o2 o3" "a repository without a rule keeps every tag"
is "$(http GET "/v2/ci/lib/manifests/$lib_b3" -H "Accept: $OCI_MANIFEST")" 404 "a deleted tag's manifest was collected (untagged: delete)"
is "$(http GET "/v2/ci/lib/manifests/b2" -H "Accept: $OCI_MANIFEST")" 200 "a kept tag still serves"
is "$(bgc --dry-run | tail -n 1)" "gc (dry run): 0 blobs, 0 manifests, 0 bytes would be reclaimed" "a second dry run finds nothing"
ok "fsck calls the store clean" sh -c '"$1" fsck --root "$2" >/dev/null 2>&1' sh "$BERTH" "$BR_ROOT"

# ---- check-config ------------------------------------------------------------------
printf 'retention:\n  - {repository: "x/**", protect: [latest]}\n' >"$BR_TMP/bad.yaml"
out=$("$BERTH" check-config -c "$BR_TMP/bad.yaml" 2>&1)
is "$?" 1 "a rule with neither keep_last nor keep_days: check-config fails"
like "$out" "needs 'keep_last' or 'keep_days'" "... saying what it needs"
printf 'retention:\n  - {repository: "x/**", keep_last: -1}\n' >"$BR_TMP/bad.yaml"
like "$("$BERTH" check-config -c "$BR_TMP/bad.yaml" 2>&1)" "'keep_last' must be a whole number" "a negative keep_last is refused"

# ---- the server's periodic collection ----------------------------------------------
for t in b6 b7; do tag ci/lib "$t" "lib-$t" || fail=1; done
write_conf 1s
kill -HUP "$BR_PID"
deleted_metric() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | sed -n 's/^berth_gc_retention_deleted_tags_total //p'; }
# The counter moves once the run that logged the lines has finished.
for i in $(seq 1 300); do
    [ "$(tags_of ci/lib)" = "b6 b7 latest v1" ] && [ "$(deleted_metric)" = 2 ] && break
    sleep 0.1
done
is "$(tags_of ci/lib)" "b6 b7 latest v1" "gc.interval: the server applies the rule by itself"
like "$(grep 'retention: deleted ci/lib:b2' "$BR_TMP/server.log")" 'rule "ci/\*\*"' "... and logs each tag it deletes"
is "$(deleted_metric)" 2 \
    "berth_gc_retention_deleted_tags_total counts them (2: berth gc's are not the server's)"

br_stop
is "$?" 0 "berth exits cleanly"
no_sanitizer_report "$BR_TMP/server.log"
done_testing
