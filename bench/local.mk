# The benchmark is not built or run by make (bench/README.md); it ships in the
# tarball so that a release can be measured too.
EXTRA_DIST += bench/README.md bench/run bench/big_blob.sh bench/lib/agg.py bench/lib/bb.py bench/results/README.md \
	bench/gc.sh bench/gc_store.c bench/lib/gcload.py bench/metrics.sh
