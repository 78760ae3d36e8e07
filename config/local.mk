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
EXTRA_DIST += config/berth.example.yaml
