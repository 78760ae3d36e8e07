# berth's patch series against Debian's h2o 2.2.5 (see server/h2o/build.sh). The
# patches and the script are distributed; the h2o source and build never are.
BR_H2O_PATCHES = \
	server/h2o/0001-picohttpparser-strict-chunk-size.patch
EXTRA_DIST += server/h2o/build.sh $(BR_H2O_PATCHES)

if BR_PATCHED_H2O
# h2o-patched is a symlink into the build cache; the stamp remakes it when the
# script or a patch changes, and everything that includes h2o.h or links it
# waits for it.
h2o-patched.stamp: server/h2o/build.sh $(BR_H2O_PATCHES)
	$(AM_V_GEN)$(SHELL) $(srcdir)/server/h2o/build.sh h2o-patched && touch $@
$(libbrserver_a_OBJECTS) $(berth_OBJECTS): h2o-patched.stamp
EXTRA_berth_DEPENDENCIES = h2o-patched.stamp
CLEANFILES += h2o-patched h2o-patched.stamp
endif
