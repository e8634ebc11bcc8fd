# cache/: the content-addressed image cache (issue 3)
noinst_LTLIBRARIES += cache/libdgcache.la
cache_libdgcache_la_SOURCES = cache/dg_cache.c cache/dg_cache.h
cache_libdgcache_la_CFLAGS = $(src_libdgcore_la_CFLAGS)
cache_libdgcache_la_LIBADD = src/libdgcore.la
