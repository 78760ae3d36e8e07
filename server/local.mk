noinst_LIBRARIES += libbrserver.a
libbrserver_a_SOURCES = \
	server/server.h \
	server/listen.c \
	server/router.c \
	server/h2oerrors.c \
	server/accesslog.c \
	server/blobs.c \
	server/uploads.c \
	server/manifests.c \
	server/tags.c \
	server/referrers.c \
	server/metrics.c \
	server/gc.c \
	server/events.c \
	server/fsck.c \
	server/du.c \
	server/immutable.c \
	server/quota.c \
	server/scrub.c \
	server/worker.c \
	server/iopool.c
libbrserver_a_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)

bin_PROGRAMS += berth
berth_SOURCES = server/main.c
# The strict chunk-size decoder that replaces the one inside Debian's
# libh2o-evloop (system-library build only; see server/h1chunk.h). It is a
# source of the program itself, not of libbrserver.a: nothing in berth calls it,
# so an archive member would never be pulled in and h2o would keep its own.
# With --with-patched-h2o the fix is inside the library (server/h2o/0001) and
# this file must stay out: the symbols would be defined twice.
if BR_SYSTEM_H2O
berth_SOURCES += server/h1chunk.c server/h1chunk.h
endif
berth_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)
berth_LDADD = $(BR_LIBS) $(BR_EXT_LIBS)
