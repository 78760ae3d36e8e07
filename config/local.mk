noinst_LIBRARIES += libbrconfig.a
libbrconfig_a_SOURCES = \
	config/config.h \
	config/config.c
libbrconfig_a_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS) $(OPENSSL_CFLAGS)
