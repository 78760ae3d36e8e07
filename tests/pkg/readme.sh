#!/usr/bin/env bash
# README names as tested only the clients the suite drives. A sentence of
# README that names a registry client together with pushing or pulling must
# either be backed by a client test that runs that client (a non-comment line
# of tests/clients/*.sh invoking it) or say that no test runs it.
. "$top_srcdir/tests/lib.sh"

readme=$top_srcdir/README.md
[ -f "$readme" ] || skip_all "no README.md"

# README as one sentence per line (prose only: fenced code blocks dropped).
sentences=$(awk '/^```/ { code = !code; next } !code' "$readme" | tr '\n' ' ' |
    sed -E 's/([.;:!?]) +/\1\n/g')
ok "README splits into sentences" test "$(printf '%s\n' "$sentences" | grep -c .)" -gt 20

# Lines of the client tests that run something (comments dropped).
drives=$(cat "$top_srcdir"/tests/clients/*.sh | sed -E 's/^[[:space:]]*#.*//')

for c in docker podman buildah skopeo ctr crane oras helm cosign regctl nerdctl; do
    claims=$(printf '%s\n' "$sentences" | grep -Ei "(^|[^a-z])$c([^a-z]|$)" | grep -Ei 'push|pull' |
        grep -viE 'no test|not tested|untested' || true)
    [ -n "$claims" ] || continue
    if printf '%s\n' "$drives" | grep -Eq "(^|[[:space:]\"'(|;&]|\\\$\\()$c([[:space:]]|$)"; then
        ok "README's push/pull claim for $c is backed by tests/clients" true
    else
        ok "README's push/pull claim for $c is backed by tests/clients" false
        printf '%s\n' "$claims" | head -n 3 | sed 's/^/#   README: /'
    fi
done
done_testing
