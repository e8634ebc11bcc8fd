# bench/: benchmarks (not part of make check)
EXTRA_DIST += bench/shadow scripts/sanitizer-tests
noinst_PROGRAMS += bench/shadow_bench
bench_shadow_bench_SOURCES = bench/shadow_bench.c
bench_shadow_bench_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_shadow_bench_LDADD = src/libdgcore.la
# fetch (issue 4)
EXTRA_DIST += bench/fetch
