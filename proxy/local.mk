# proxy/: the gateway daemon deltagated (issue 4)

# --- fetch: HTTP(S) downloads on libcurl multi + libevent (issue 4)
noinst_LTLIBRARIES += proxy/libdgproxy.la
proxy_libdgproxy_la_CFLAGS = $(src_libdgcore_la_CFLAGS)
proxy_libdgproxy_la_LIBADD = src/libdgcore.la
proxy_libdgproxy_la_SOURCES = \
	proxy/dg_fetch.c proxy/dg_fetch.h

# --- the gateway's modules: outbox, mirror, jobs, drivers
proxy_libdgproxy_la_SOURCES += \
	proxy/dg_outbox.c proxy/dg_outbox.h \
	proxy/dg_mirror.c proxy/dg_mirror.h \
	proxy/dg_job.c proxy/dg_job.h \
	proxy/dg_driver.h proxy/dg_driver_exec.c
# --- coap driver (issue 5)
proxy_libdgproxy_la_SOURCES += proxy/dg_driver_coap.c proxy/dg_driver_coap.h \
	proxy/dg_coap_parse.c proxy/dg_coap_parse.h
proxy_libdgproxy_la_CFLAGS += $(COAP_CFLAGS)
proxy_libdgproxy_la_LIBADD += $(COAP_LIBS)
proxy_libdgproxy_la_LIBADD += cache/libdgcache.la

# --- serial A (issue 12): protocol engines, lines, the serial driver
proxy_libdgproxy_la_SOURCES += proxy/dg_sproto.h proxy/dg_sproto.c proxy/dg_ymodem.c \
	proxy/dg_serial_line.c proxy/dg_serial_line.h
# --- end serial A

sbin_PROGRAMS += proxy/deltagated
proxy_deltagated_SOURCES = proxy/deltagated.c
proxy_deltagated_CFLAGS = $(src_libdgcore_la_CFLAGS)
proxy_deltagated_LDADD = proxy/libdgproxy.la cache/libdgcache.la src/libdgcore.la
# --- serial B (issue 12): the STM32 ROM bootloader and SMP engines
proxy_libdgproxy_la_SOURCES += proxy/dg_stm32.c proxy/dg_smp.c \
	proxy/dg_smpframe.c proxy/dg_smpframe.h
proxy_libdgproxy_la_CFLAGS += $(CBOR_CFLAGS)
proxy_libdgproxy_la_LIBADD += $(CBOR_LIBS)
# --- end serial B
# --- serial driver (issue 12): chat scripts + engines inside deltagated
proxy_libdgproxy_la_SOURCES += proxy/dg_driver_serial.c proxy/dg_driver_serial.h
# --- end serial driver
