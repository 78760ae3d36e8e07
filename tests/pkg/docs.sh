#!/usr/bin/env bash
# The documentation keeps up with the code: the first line of `berth --help`
# names every command the help text describes (and each one runs), and berth(1)
# has an entry for each of those commands and for every row of the config key
# table (config/keys.c, the source of truth), plus the sections an operator
# looks for.
. "$top_srcdir/tests/lib.sh"

man=${top_builddir:-$top_srcdir}/doc/berth.1
[ -f "$man" ] || skip_all "doc/berth.1 is not built"

help=$("$BERTH" --help)
ok "berth --help exits 0" test $? = 0
first=$(printf '%s\n' "$help" | head -n1)
like "$first" '^usage: berth \[[a-z-]+( \| [a-z-]+)*\] \[options\]$' "the first line is 'usage: berth [CMD | CMD ...] [options]'"
usage_cmds=$(printf '%s\n' "$first" | sed -E 's/^usage: berth \[([^]]*)\].*/\1/; s/ \| /\n/g' | sort)
described=$(printf '%s\n' "$help" | sed -nE 's/^  berth ([a-z][a-z-]*).*/\1/p' | sort -u)
ok "the help text describes some commands" test -n "$described"
is "$usage_cmds" "$described" "the first line names exactly the commands the help text describes"

for cmd in $usage_cmds; do
    out=$("$BERTH" "$cmd" --help 2>&1)
    is "$?" 0 "berth $cmd --help exits 0"
    ok "berth(1) has an entry for berth $cmd" grep -qxF ".B berth ${cmd//-/\\-}" "$man"
done
out=$("$BERTH" no-such-command 2>&1)
is "$?" 2 "an unknown command exits 2"
like "$out" "^berth: unknown command 'no-such-command'" "and says so"

# Rows of the key table: {"section", "name", BR_CK_...} or {NULL, "name", ...}.
keys=$(sed -nE 's/^ *\{(NULL|"([a-z_.]+)"), "([a-z0-9_]+)", BR_CK_.*/\2.\3/p' "$top_srcdir/config/keys.c" | sed 's/^\.//')
rows=$(grep -cE '^ *\{(NULL|"[a-z_.]+"), "[a-z0-9_]+", BR_CK_' "$top_srcdir/config/keys.c")
ok "the key table parses (found $rows rows)" test "$rows" -gt 30 -a "$(printf '%s\n' "$keys" | grep -c .)" = "$rows"
missing=""
for k in $keys; do
    grep -qxF ".B $k" "$man" || missing="$missing $k"
done
is "$missing" "" "berth(1) has a '.B key' entry for every config key"

for section in SYNOPSIS COMMANDS CONFIGURATION ENVIRONMENT SIGNALS FILES "EXIT STATUS"; do
    ok "berth(1) has a $section section" grep -qE "^\\.SH \"?$section\"?\$" "$man"
done
for word in BERTH_CONFIG SIGHUP SIGTERM SIGINT berth.example.yaml berth.service; do
    ok "berth(1) mentions $word" grep -qF "$word" "$man"
done

done_testing
