# bench/: benchmarks (not part of make check)
EXTRA_DIST += bench/shadow

# --- swu / gzip reproducibility (issue 6): bench/swu/gzip-repro.sh
noinst_PROGRAMS += bench/swu/gzprobe
bench_swu_gzprobe_SOURCES = bench/swu/gzprobe.c
bench_swu_gzprobe_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_swu_gzprobe_LDADD = src/libdgcore.la
EXTRA_DIST += bench/swu/gzip-repro.sh
# delta engine (issue 6)
EXTRA_DIST += bench/delta
