# proxy/: the gateway daemon deltagated (issue 4)

# --- fetch: HTTP(S) downloads on libcurl multi + libevent (issue 4)
noinst_LTLIBRARIES += proxy/libdgproxy.la
proxy_libdgproxy_la_CFLAGS = $(src_libdgcore_la_CFLAGS)
proxy_libdgproxy_la_LIBADD = src/libdgcore.la
proxy_libdgproxy_la_SOURCES = \
	proxy/dg_fetch.c proxy/dg_fetch.h
