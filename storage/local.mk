noinst_LIBRARIES += libbrstorage.a
libbrstorage_a_SOURCES = \
	storage/storage.h \
	storage/internal.h \
	storage/store.c \
	storage/blobs.c \
	storage/uploads.c \
	storage/manifests.c \
	storage/verify.c \
	storage/gc.c \
	storage/usage.c \
	storage/quota.c \
	storage/events.c \
	storage/scrub.c
libbrstorage_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS) $(OPENSSL_CFLAGS)
