# berth's patch series against Debian's h2o 2.2.5 (see server/h2o/build.sh). The
# patches and the script are distributed; the h2o source and build never are.
BR_H2O_PATCHES = \
	server/h2o/0001-picohttpparser-strict-chunk-size.patch \
	server/h2o/0002-http1-streamed-request-bodies.patch \
	server/h2o/0003-evloop-bounded-read-burst.patch \
	server/h2o/0004-http2-streamed-request-bodies.patch \
	server/h2o/0005-http1-upgrade-requests-stream-bodies.patch \
	server/h2o/0006-http2-no-reset-after-a-whole-body.patch
EXTRA_DIST += server/h2o/build.sh $(BR_H2O_PATCHES)

# Every object that includes h2o.h waits for the patched h2o (its headers) and
# is rebuilt when configure switches between the patched and the system h2o
# (berth_config.h's BR_PATCHED_H2O changes; its timestamp moves only when its
# content does): the two h2o.h lay out h2o_req_t differently. One rule: automake
# keeps only the first of two for the same targets.
BR_H2O_STAMP =
$(libbrserver_a_OBJECTS) $(berth_OBJECTS): $(top_builddir)/berth_config.h $(BR_H2O_STAMP)

if BR_PATCHED_H2O
# h2o-patched is a symlink into the build cache; the stamp remakes it when the
# script or a patch changes, and everything that includes h2o.h or links it
# waits for it.
# With --enable-sanitizers h2o is built with AddressSanitizer (not UBSan: that
# would judge h2o's own code, not ours).
BR_H2O_STAMP += h2o-patched.stamp
h2o-patched.stamp: server/h2o/build.sh $(BR_H2O_PATCHES) $(top_builddir)/config.status
	$(AM_V_GEN)BR_H2O_CFLAGS='$(BR_H2O_SAN_CFLAGS)' $(SHELL) $(srcdir)/server/h2o/build.sh h2o-patched && touch $@
EXTRA_berth_DEPENDENCIES = h2o-patched.stamp
CLEANFILES += h2o-patched h2o-patched.stamp
endif
