noinst_LIBRARIES += libbrconfig.a
libbrconfig_a_SOURCES = \
	config/config.h \
	config/internal.h \
	config/config.c \
	config/keys.c \
	config/yaml.c \
	config/env.c
libbrconfig_a_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS) $(OPENSSL_CFLAGS)
# Every key at its default; tests/config/config_test loads it and compares.
# Installed as $(sysconfdir)/berth/berth.example.yaml, and copied to berth.yaml
# there (the file berth.service reads) unless one exists: an install must never
# overwrite an administrator's config. uninstall removes that copy only while it
# is still identical to the example.
berthconfdir = $(sysconfdir)/berth
dist_berthconf_DATA = config/berth.example.yaml

install-data-local:
	@$(NORMAL_INSTALL)
	$(MKDIR_P) '$(DESTDIR)$(berthconfdir)'
	test -e '$(DESTDIR)$(berthconfdir)/berth.yaml' || \
	  $(INSTALL_DATA) '$(srcdir)/config/berth.example.yaml' '$(DESTDIR)$(berthconfdir)/berth.yaml'

uninstall-local:
	@$(NORMAL_UNINSTALL)
	if cmp -s '$(srcdir)/config/berth.example.yaml' '$(DESTDIR)$(berthconfdir)/berth.yaml'; then \
	  rm -f '$(DESTDIR)$(berthconfdir)/berth.yaml'; fi
