#!/usr/bin/env bash
# The tarball is the source: every file git tracks is in it (except the
# .gitignore files), and nothing else is but what autotools generate. A
# forgotten EXTRA_DIST line thus fails here, in `make check`, naming the file,
# instead of only in `make distcheck` (which builds and tests the tarball but
# cannot see what is missing from it). Builds the distribution directory
# (`make distdir`, a copy without the tar step) in a temp dir.
#
# Needs a git checkout whose top is $top_srcdir; skips otherwise (an unpacked
# tarball, including the one distcheck tests, has no .git).
. "$top_srcdir/tests/lib.sh"

command -v git >/dev/null || skip_all "git is not installed"
top=$(git -C "$top_srcdir" rev-parse --show-toplevel 2>/dev/null) || skip_all "not a git checkout"
# distcheck unpacks the tarball inside the checkout: git would answer for the
# checkout around it.
[ "$(cd "$top" && pwd -P)" = "$(cd "$top_srcdir" && pwd -P)" ] ||
    skip_all "$top_srcdir is inside a git checkout but not its top"

dist=$BR_TMP/dist
ok "make distdir builds the distribution directory" br_make distdir distdir="$dist"

git -C "$top_srcdir" ls-files -z | tr '\0' '\n' | grep -v -E '(^|/)\.gitignore$' | sort >"$BR_TMP/tracked"
(cd "$dist" && find . -type f | sed 's|^\./||' | sort) >"$BR_TMP/shipped"
ok "git tracks files (the listing works)" test -s "$BR_TMP/tracked"

missing=$(comm -23 "$BR_TMP/tracked" "$BR_TMP/shipped")
is "$missing" "" "every tracked file is in the tarball (add the missing ones to EXTRA_DIST in their local.mk)"

# What autotools generate and ship; anything else untracked in the tarball is
# a stray file (a fuzz crash in a corpus directory, a build output).
extra=$(comm -13 "$BR_TMP/tracked" "$BR_TMP/shipped" |
    grep -v -x -E 'configure|Makefile\.in|aclocal\.m4|berth_config\.h\.in|build-aux/[^/]+|m4/[^/]+\.m4' || true)
is "$extra" "" "the tarball holds no untracked file but the generated build system"

done_testing
