# src/: the core library (libdgcore) and the command-line tools

noinst_LTLIBRARIES += src/libdgcore.la
src_libdgcore_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(SQLITE_CFLAGS) \
	$(OPENSSL_CFLAGS) $(ZSTD_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) \
	$(DIVSUFSORT_CFLAGS) $(ZLIB_CFLAGS) $(LZMA_CFLAGS) $(PAHO_CFLAGS) $(FIU_CFLAGS)
src_libdgcore_la_LIBADD = $(LIBEVENT_LIBS) $(SQLITE_LIBS) $(OPENSSL_LIBS) \
	$(ZSTD_LIBS) $(JANSSON_LIBS) $(CURL_LIBS) $(DIVSUFSORT_LIBS) $(ZLIB_LIBS) \
	$(LZMA_LIBS) $(PAHO_LIBS) $(SYSTEMD_LIBS) $(FIU_LIBS) -lpthread

# --- core: errors, logging, configuration, JSON, storage
src_libdgcore_la_SOURCES = \
	src/dg_err.c src/dg_err.h \
	src/dg_log.c src/dg_log.h \
	src/dg_util.c src/dg_util.h \
	src/dg_config.c src/dg_config.h \
	src/dg_json.c src/dg_json.h \
	src/dg_store.c src/dg_store.h \
	src/dg_fault.c src/dg_fault.h

# --- upstream: MQTT bridge, topics, daemon chores, shadow model (issue 2)
src_libdgcore_la_SOURCES += \
	src/dg_mqtt.c src/dg_mqtt.h \
	src/dg_topic.c src/dg_topic.h \
	src/dg_daemon.c src/dg_daemon.h \
	src/dg_shadow.c src/dg_shadow.h

# --- delta engine (issue 6)
src_libdgcore_la_SOURCES += \
	src/dg_delta.c src/dg_delta.h src/dg_delta_internal.h \
	src/dg_delta_format.c src/dg_delta_apply.c src/dg_delta_apply_archive.c \
	src/dg_bsdiff.c src/dg_bsdiff.h \
	src/dg_bcj.c src/dg_bcj.h \
	src/dg_mcu.c src/dg_mcu.h src/dg_bcj_thumb2.c src/dg_bcj_xtensa.c src/dg_bcj_riscv.c
# the generator, or in an apply-only build its refusal
if DELTA_GENERATION
src_libdgcore_la_SOURCES += src/dg_delta_gen.c src/dg_delta_gen_archive.c
else
src_libdgcore_la_SOURCES += src/dg_delta_nogen.c
endif
# .swu (cpio newc/crc), reproducible gzip, import manifest
src_libdgcore_la_SOURCES += \
	src/dg_swu.c src/dg_swu.h \
	src/dg_gzip.c src/dg_gzip.h \
	src/dg_recomp.c src/dg_recomp.h \
	src/dg_manifest.c src/dg_manifest.h
# --- operator tools and signed commands (issue 13)
src_libdgcore_la_SOURCES += \
	src/dg_sigv4.c src/dg_sigv4.h \
	src/dg_jws.c src/dg_jws.h \
	src/dg_command.c src/dg_command.h \
	src/dg_rollout.c src/dg_rollout.h \
	src/dg_s3.c src/dg_s3.h

# --- command-line tools: deltagate (one binary, subcommands in cli_*.c)
bin_PROGRAMS += src/deltagate
src_deltagate_SOURCES = src/deltagate.c src/dg_cli.h
# cli: shadow (issue 2)
src_deltagate_SOURCES += src/cli_shadow.c
# cli: cache (issue 3)
src_deltagate_SOURCES += src/cli_cache.c
# cli: diff, apply, inspect, manifest, diffgen (issue 6)
src_deltagate_SOURCES += src/cli_delta.c
src_deltagate_SOURCES += src/cli_manifest.c
# cli: presign, keygen (issue 13)
src_deltagate_SOURCES += src/cli_presign.c src/cli_deploy.c src/cli_status.c
src_deltagate_CFLAGS = $(src_libdgcore_la_CFLAGS) $(COAP_CFLAGS)

sbin_PROGRAMS += src/deltagate-shadowd
src_deltagate_shadowd_SOURCES = src/shadowd.c
src_deltagate_shadowd_CFLAGS = $(src_libdgcore_la_CFLAGS)
src_deltagate_shadowd_LDADD = src/libdgcore.la
src_deltagate_LDADD = cache/libdgcache.la src/libdgcore.la
