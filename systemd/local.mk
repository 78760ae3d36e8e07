# berth.service, with the installed binary's path filled in (see the br_subst
# rule in Makefile.am); tests/pkg/install.sh runs systemd-analyze verify on it.
EXTRA_DIST += systemd/berth.service.in
CLEANFILES += systemd/berth.service
if SYSTEMD_UNIT
nodist_systemdsystemunit_DATA = systemd/berth.service
endif
systemd/berth.service: $(srcdir)/systemd/berth.service.in Makefile
	$(br_subst_rule)
