noinst_LIBRARIES += libbrcommon.a
libbrcommon_a_SOURCES = \
	common/br.h \
	common/errors.c \
	common/digest.c \
	common/names.c \
	common/target.c \
	common/log.c
libbrcommon_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
