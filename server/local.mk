noinst_LIBRARIES += libbrserver.a
libbrserver_a_SOURCES = \
	server/server.h \
	server/listen.c \
	server/router.c \
	server/accesslog.c \
	server/blobs.c \
	server/uploads.c \
	server/manifests.c \
	server/tags.c \
	server/referrers.c
libbrserver_a_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)

bin_PROGRAMS += berth
berth_SOURCES = server/main.c
berth_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)
berth_LDADD = $(BR_LIBS) $(BR_EXT_LIBS)
