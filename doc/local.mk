# berth(1). tests/pkg/docs.sh checks that it describes every command of
# `berth --help` and every row of config/keys.c; tests/pkg/install.sh that it
# renders without warnings.
EXTRA_DIST += doc/berth.1.in
CLEANFILES += doc/berth.1
nodist_man1_MANS = doc/berth.1
doc/berth.1: $(srcdir)/doc/berth.1.in Makefile
	$(br_subst_rule)
