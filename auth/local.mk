noinst_LIBRARIES += libbrauth.a
libbrauth_a_SOURCES = \
	auth/auth.h \
	auth/internal.h \
	auth/auth.c \
	auth/acl.c \
	auth/basic.c \
	auth/jwt.c \
	auth/token.c
libbrauth_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
