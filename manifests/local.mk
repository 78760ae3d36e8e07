noinst_LIBRARIES += libbrmanifests.a
libbrmanifests_a_SOURCES = \
	manifests/manifest.h \
	manifests/manifest.c \
	manifests/accept.c
libbrmanifests_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
