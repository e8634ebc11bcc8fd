# bench/: benchmarks (not part of make check)
EXTRA_DIST += bench/shadow bench/gateway
noinst_PROGRAMS += bench/shadow_bench
bench_shadow_bench_SOURCES = bench/shadow_bench.c
bench_shadow_bench_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_shadow_bench_LDADD = src/libdgcore.la
# cache (issue 3): bench/cache drives bench/cache_bench
EXTRA_DIST += bench/cache
noinst_PROGRAMS += bench/cache_bench
bench_cache_bench_SOURCES = bench/cache_bench.c
bench_cache_bench_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_cache_bench_LDADD = cache/libdgcache.la src/libdgcore.la
# fetch (issue 4)
EXTRA_DIST += bench/fetch

# --- swu / gzip reproducibility (issue 6): bench/swu/gzip-repro.sh
noinst_PROGRAMS += bench/swu/gzprobe
bench_swu_gzprobe_SOURCES = bench/swu/gzprobe.c
bench_swu_gzprobe_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_swu_gzprobe_LDADD = src/libdgcore.la
EXTRA_DIST += bench/swu/gzip-repro.sh
# delta engine (issue 6)
EXTRA_DIST += bench/delta/run.sh bench/delta/genprog.py bench/delta/mktree.py bench/delta/apply-speed.sh
# coap (issue 5): bench/coap, bench/udp_relay (a lossy UDP link)
EXTRA_DIST += bench/coap
# operator tools (issue 13)
EXTRA_DIST += bench/deploy
noinst_PROGRAMS += bench/udp_relay
bench_udp_relay_SOURCES = bench/udp_relay.c
bench_udp_relay_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_udp_relay_LDADD = src/libdgcore.la
noinst_PROGRAMS += bench/delta/apply_bench
bench_delta_apply_bench_SOURCES = bench/delta/apply_bench.c
bench_delta_apply_bench_CFLAGS = $(src_libdgcore_la_CFLAGS)
bench_delta_apply_bench_LDADD = src/libdgcore.la
# --- reliability (issue 11): the long form of tests/reliability, soak
EXTRA_DIST += bench/reliability/run.sh bench/reliability/soak.sh bench/reliability/valgrind-deltagated bench/reliability/repeat.sh
# install (issue 14): sizes per small-flash configuration
EXTRA_DIST += bench/install
# --- serial A (issue 12)
EXTRA_DIST += bench/serial docs/serial.md docs/serial-stm32-smp.md
