#!/usr/bin/env bash
# make install DESTDIR=...: the binary, the example config (and a berth.yaml
# copy of it that a later install never overwrites), berth(1) and berth.service;
# the unit passes `systemd-analyze verify` (its Documentation= finds the
# installed man page), the man page renders without a warning, and uninstall
# removes what install put there.
. "$top_srcdir/tests/lib.sh"

dest=$BR_TMP/dest
ok "make install DESTDIR=... succeeds" br_make install DESTDIR="$dest"

# The one installed file matching a path pattern, or nothing.
installed() {
    local f
    f=$(find "$dest" -type f -path "$1")
    [ "$(printf '%s\n' "$f" | grep -c .)" = 1 ] && printf '%s' "$f"
}
bin=$(installed '*/bin/berth')
example=$(installed '*/berth/berth.example.yaml')
yaml=$(installed '*/berth/berth.yaml')
man=$(installed '*/man1/berth.1')
unit=$(installed '*/systemd/system/berth.service')

ok "the binary is installed and runs" test -n "$bin" -a -x "$bin"
[ -n "$bin" ] && like "$("$bin" version)" '^berth [0-9]' "the installed binary prints its version"
ok "the example config is installed under sysconfdir/berth" cmp -s "$example" "$top_srcdir/config/berth.example.yaml"
ok "berth.yaml is installed beside it as a copy" cmp -s "$yaml" "$top_srcdir/config/berth.example.yaml"
ok "the man page is installed in man1" test -n "$man"

# configure --without-systemdsystemunitdir installs no unit.
unitdir=$(sed -n 's/^systemdsystemunitdir = //p' "${top_builddir:-$top_srcdir}/Makefile")
if [ "$unitdir" = no ]; then
    ok "# SKIP configured --without-systemdsystemunitdir" true
else
    ok "the systemd unit is installed" test -n "$unit"
fi
if [ "$unitdir" != no ] && [ -n "$unit" ]; then
    # The unit names the installed paths (DESTDIR is not part of them).
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    is "$exec_start" "${bin#"$dest"} serve -c ${yaml#"$dest"}" "ExecStart runs the installed binary with the installed config"
    for want in 'DynamicUser=yes' 'StateDirectory=berth' 'ProtectSystem=strict' 'NoNewPrivileges=yes' \
        'Restart=on-failure' 'ExecReload=/bin/kill -HUP $MAINPID'; do
        ok "the unit sets $want" grep -qxF "$want" "$unit"
    done
    ok "the unit sets LimitNOFILE" grep -qE '^LimitNOFILE=[0-9]+$' "$unit"

    # systemd-analyze verify needs the ExecStart binary to exist: check a copy
    # of the unit that points at the DESTDIR one. It prints problems (unknown
    # keys, bad values, a missing man page for Documentation=) as warnings and
    # still exits 0 for some of them, so any output at all fails.
    if command -v systemd-analyze >/dev/null; then
        mkdir -p "$BR_TMP/verify"
        sed "s|^ExecStart=${bin#"$dest"} |ExecStart=$bin |" "$unit" >"$BR_TMP/verify/berth.service"
        out=$(cd "$BR_TMP/verify" && MANPATH="${man%/man1/berth.1}" systemd-analyze verify ./berth.service 2>&1)
        rc=$?
        is "$rc: $out" "0: " "systemd-analyze verify accepts the unit, without a warning"
    else
        ok "# SKIP systemd-analyze is not installed" true
    fi
fi

# The man page, with every groff warning on; mandoc's linter otherwise.
if [ -z "$man" ]; then
    : # failed above
elif command -v groff >/dev/null; then
    out=$(groff -man -Tutf8 -ww -z "$man" 2>&1)
    is "$out" "" "groff renders berth(1) without a warning"
    out=$(MANWIDTH=80 man --warnings -l "$man" 2>&1 >/dev/null)
    is "$out" "" "man -l renders berth(1) without a warning"
elif command -v mandoc >/dev/null; then
    out=$(mandoc -T lint -W warning "$man" 2>&1)
    is "$out" "" "mandoc -T lint finds nothing in berth(1)"
else
    ok "# SKIP neither groff nor mandoc is installed" true
fi

# An administrator's config survives a reinstall and an uninstall.
[ -n "$yaml" ] || { done_testing; exit 1; }
echo "# edited" >>"$yaml"
ok "a second make install succeeds" br_make install DESTDIR="$dest"
like "$(tail -n1 "$yaml")" '^# edited$' "a reinstall keeps an edited berth.yaml"
ok "make uninstall succeeds" br_make uninstall DESTDIR="$dest"
is "$(cd "$dest" && find . -type f)" "./${yaml#"$dest/"}" "uninstall removes every file but the edited berth.yaml"

done_testing
