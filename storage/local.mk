noinst_LIBRARIES += libbrstorage.a
libbrstorage_a_SOURCES = \
	storage/storage.h
libbrstorage_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS) $(OPENSSL_CFLAGS)
