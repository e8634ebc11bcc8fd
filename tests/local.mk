# tests/: unit tests (cmocka, TAP), integration tests (shell, TAP), fuzz replays
# Every test speaks TAP so that each case is counted by the harness.

LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
TEST_EXTENSIONS = .sh
SH_LOG_DRIVER = $(LOG_DRIVER)
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	CMOCKA_MESSAGE_OUTPUT=TAP; export CMOCKA_MESSAGE_OUTPUT;

EXTRA_DIST += tests/lib.sh

UNITCFLAGS = $(src_libdgcore_la_CFLAGS) $(CMOCKA_CFLAGS)
UNITLDADD = src/libdgcore.la $(CMOCKA_LIBS)

if HAVE_CMOCKA
# --- core unit tests
UNIT_TESTS = \
	tests/unit/test_err \
	tests/unit/test_util \
	tests/unit/test_config \
	tests/unit/test_json \
	tests/unit/test_store

# --- upstream unit tests (issue 2)
UNIT_TESTS += tests/unit/test_shadow tests/unit/test_log tests/unit/test_mqtt
tests_unit_test_log_CFLAGS = $(UNITCFLAGS)
tests_unit_test_log_LDADD = $(UNITLDADD)
tests_unit_test_mqtt_CFLAGS = $(UNITCFLAGS)
tests_unit_test_mqtt_LDADD = $(UNITLDADD)

# --- cache unit tests (issue 3)
UNIT_TESTS += tests/unit/test_cache tests/unit/test_cache_crash

# --- delta unit tests (issue 6)
UNIT_TESTS += tests/unit/test_delta
tests_unit_test_delta_CFLAGS = $(UNITCFLAGS)
tests_unit_test_delta_LDADD = $(UNITLDADD)
# --- MCU prediction unit tests (issue 15)
UNIT_TESTS += tests/unit/test_mcu
tests_unit_test_mcu_CFLAGS = $(UNITCFLAGS)
tests_unit_test_mcu_LDADD = $(UNITLDADD)
# .swu, gzip, manifest
UNIT_TESTS += tests/unit/test_swu tests/unit/test_gzip tests/unit/test_manifest
tests_unit_test_manifest_CFLAGS = $(UNITCFLAGS)
tests_unit_test_manifest_LDADD = $(UNITLDADD)
tests_unit_test_swu_CFLAGS = $(UNITCFLAGS)
tests_unit_test_swu_LDADD = $(UNITLDADD)
tests_unit_test_gzip_CFLAGS = $(UNITCFLAGS)
tests_unit_test_gzip_LDADD = $(UNITLDADD)

# --- fetch unit tests (issue 4)
UNIT_TESTS += \
	tests/unit/test_fetch
tests_unit_test_fetch_CFLAGS = $(UNITCFLAGS)
tests_unit_test_fetch_LDADD = proxy/libdgproxy.la $(UNITLDADD)

# --- coap driver parsers (issue 5)
UNIT_TESTS += tests/unit/test_coap_parse
tests_unit_test_coap_parse_SOURCES = tests/unit/test_coap_parse.c proxy/dg_coap_parse.c
tests_unit_test_coap_parse_CFLAGS = $(UNITCFLAGS)
tests_unit_test_coap_parse_LDADD = $(UNITLDADD)

# --- operator tools (issue 13)
UNIT_TESTS += tests/unit/test_sigv4
tests_unit_test_sigv4_CFLAGS = $(UNITCFLAGS)
tests_unit_test_sigv4_LDADD = $(UNITLDADD)
EXTRA_DIST += tests/sigv4_ref.py

# --- serial A (issue 12): the YMODEM engine
UNIT_TESTS += tests/unit/test_ymodem
tests_unit_test_ymodem_SOURCES = tests/unit/test_ymodem.c
tests_unit_test_ymodem_CFLAGS = $(UNITCFLAGS) -I$(top_srcdir)/proxy
tests_unit_test_ymodem_LDADD = proxy/libdgproxy.la $(UNITLDADD)
# --- end serial A (unit)

# the exec driver with real child processes
UNIT_TESTS += tests/unit/test_driver_exec
tests_unit_test_driver_exec_SOURCES = tests/unit/test_driver_exec.c
tests_unit_test_driver_exec_CFLAGS = $(UNITCFLAGS) -I$(top_srcdir)/proxy
tests_unit_test_driver_exec_LDADD = proxy/libdgproxy.la $(UNITLDADD)

check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
tests_unit_test_err_CFLAGS = $(UNITCFLAGS)
tests_unit_test_err_LDADD = $(UNITLDADD)
tests_unit_test_util_CFLAGS = $(UNITCFLAGS)
tests_unit_test_util_LDADD = $(UNITLDADD)
tests_unit_test_config_CFLAGS = $(UNITCFLAGS)
tests_unit_test_config_LDADD = $(UNITLDADD)
tests_unit_test_json_CFLAGS = $(UNITCFLAGS)
tests_unit_test_json_LDADD = $(UNITLDADD)
tests_unit_test_store_CFLAGS = $(UNITCFLAGS)
tests_unit_test_store_LDADD = $(UNITLDADD)
tests_unit_test_cache_CFLAGS = $(UNITCFLAGS)
tests_unit_test_cache_LDADD = cache/libdgcache.la $(UNITLDADD)
tests_unit_test_cache_crash_CFLAGS = $(UNITCFLAGS)
tests_unit_test_cache_crash_LDADD = cache/libdgcache.la $(UNITLDADD)
tests_unit_test_shadow_CFLAGS = $(UNITCFLAGS)
tests_unit_test_shadow_LDADD = $(UNITLDADD)
endif

# --- integration tests: start real daemons and peers on loopback
SHADOW_TESTS = \
	tests/integration/10-shadow-pattern.sh \
	tests/integration/11-shadow-rejections.sh \
	tests/integration/12-shadow-persistence.sh \
	tests/integration/13-shadow-broker-restart.sh \
	tests/integration/14-shadow-flood.sh \
	tests/integration/15-shadow-aws-root.sh \
	tests/integration/16-shadow-tls.sh
INTEGRATION_TESTS = $(SHADOW_TESTS)
# --- fault points and the crash campaign, short form (issue 11; the long
# form is bench/reliability)
INTEGRATION_TESTS += tests/integration/05-fault-points.sh \
	tests/reliability/10-crash-points.sh \
	tests/reliability/20-random-kills.sh \
	tests/reliability/30-disk-full.sh \
	tests/reliability/40-shadowd-kill.sh \
	tests/reliability/50-broker-faults.sh \
	tests/reliability/60-storage-faults.sh
EXTRA_DIST += tests/reliability/lib-campaign.sh tests/reliability/mqtt-drop-proxy.py
# --- integration: cache (issue 3)
# --- integration: delta (issue 6)
# cache (issue 3)
INTEGRATION_TESTS += tests/integration/30-cache-cli.sh
# delta CLI (issue 6)
INTEGRATION_TESTS += tests/integration/40-delta-cli.sh \
	tests/integration/41-delta-recompress.sh \
	tests/integration/42-delta-ext4.sh \
	tests/integration/44-delta-mcu-gateway.sh
# 44: MCU firmware deltas through the gateway and its synthetic images (issue 15)
EXTRA_DIST += tests/mcu-fw.py

# --- integration: gateway (issue 4)
INTEGRATION_TESTS += \
	tests/integration/50-gateway-outcomes.sh \
	tests/integration/51-gateway-config.sh \
	tests/integration/52-gateway-broker-outage.sh \
	tests/integration/53-gateway-kill9.sh \
	tests/integration/54-gateway-limits.sh \
	tests/integration/55-gateway-fair.sh
EXTRA_DIST += tests/lib-gateway.sh
# --- integration: fetch (issue 4)
INTEGRATION_TESTS += tests/integration/20-fetch-https.sh
EXTRA_DIST += tests/lib-nginx.sh
check_PROGRAMS += tests/fetch_driver
tests_fetch_driver_SOURCES = tests/fetch_driver.c
tests_fetch_driver_CFLAGS = $(src_libdgcore_la_CFLAGS)
tests_fetch_driver_LDADD = proxy/libdgproxy.la src/libdgcore.la
# delta CLI (issue 6)
# --- delta (issue 6)
INTEGRATION_TESTS += tests/integration/45-manifest-cli.sh

# --- integration: coap (issue 5)
INTEGRATION_TESTS += \
	tests/integration/60-coap-pull.sh \
	tests/integration/61-coap-interop.sh \
	tests/integration/62-coap-security.sh \
	tests/integration/63-coap-push-lossy.sh \
	tests/integration/64-coap-push-relay.sh \
	tests/integration/65-coap-push-dtls.sh
# 64 uses bench/udp_relay (noinst_PROGRAMS: built by "make", thus by "make check")
EXTRA_DIST += tests/lib-coap.sh
EXTRA_DIST += tests/lib-delta.sh

# --- operator tools (issue 13)
INTEGRATION_TESTS += tests/integration/80-deploy-presign.sh \
	tests/integration/81-deploy-signed-commands.sh \
	tests/integration/82-deploy-rollout.sh \
	tests/integration/83-deploy-status.sh \
	tests/integration/84-deploy-s3.sh \
	tests/integration/85-deploy-gateway.sh
EXTRA_DIST += tests/lib-s3.sh

TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS)

# --- fuzz targets: replayed over their committed corpora by make check
# A target is tests/fuzz/<name>_fuzz.c defining LLVMFuzzerTestOneInput; its
# corpus (and any crash reproducers) live in tests/fuzz/corpus/<name>/.
# make check links each with tests/fuzz/replay.c as tests/fuzz/<name>_replay;
# --enable-fuzzing (CC=clang) also builds tests/fuzz/<name>_fuzz for libFuzzer.
EXTRA_DIST += tests/fuzz/corpus
FUZZ_REPLAYS =
FUZZ_ENGINES =
FUZZCFLAGS = $(src_libdgcore_la_CFLAGS)
FUZZLDADD = src/libdgcore.la

# --- fuzz: shadow (issue 2)
FUZZ_REPLAYS += tests/fuzz/shadow_replay
tests_fuzz_shadow_replay_SOURCES = tests/fuzz/shadow_fuzz.c tests/fuzz/replay.c
tests_fuzz_shadow_replay_CFLAGS = $(FUZZCFLAGS) -DFUZZ_NAME='"shadow"'
tests_fuzz_shadow_replay_LDADD = $(FUZZLDADD)
FUZZ_ENGINES += tests/fuzz/shadow_fuzz
tests_fuzz_shadow_fuzz_SOURCES = tests/fuzz/shadow_fuzz.c
tests_fuzz_shadow_fuzz_CFLAGS = $(FUZZCFLAGS) $(FUZZ_FLAGS)
tests_fuzz_shadow_fuzz_LDFLAGS = $(FUZZ_FLAGS)
tests_fuzz_shadow_fuzz_LDADD = $(FUZZLDADD)

# --- fuzz: cache (issue 3)

# --- fuzz: delta, cpio, gzip (issue 6)
FUZZ_REPLAYS += tests/fuzz/delta_replay
tests_fuzz_delta_replay_SOURCES = tests/fuzz/delta_fuzz.c tests/fuzz/replay.c
tests_fuzz_delta_replay_CFLAGS = $(FUZZCFLAGS) -DFUZZ_NAME='"delta"'
tests_fuzz_delta_replay_LDADD = $(FUZZLDADD)
FUZZ_ENGINES += tests/fuzz/delta_fuzz
tests_fuzz_delta_fuzz_SOURCES = tests/fuzz/delta_fuzz.c
tests_fuzz_delta_fuzz_CFLAGS = $(FUZZCFLAGS) $(FUZZ_FLAGS)
tests_fuzz_delta_fuzz_LDFLAGS = $(FUZZ_FLAGS)
tests_fuzz_delta_fuzz_LDADD = $(FUZZLDADD)
FUZZ_REPLAYS += tests/fuzz/cpio_replay
tests_fuzz_cpio_replay_SOURCES = tests/fuzz/cpio_fuzz.c tests/fuzz/replay.c
tests_fuzz_cpio_replay_CFLAGS = $(FUZZCFLAGS) -DFUZZ_NAME='"cpio"'
tests_fuzz_cpio_replay_LDADD = $(FUZZLDADD)
FUZZ_ENGINES += tests/fuzz/cpio_fuzz
tests_fuzz_cpio_fuzz_SOURCES = tests/fuzz/cpio_fuzz.c
tests_fuzz_cpio_fuzz_CFLAGS = $(FUZZCFLAGS) $(FUZZ_FLAGS)
tests_fuzz_cpio_fuzz_LDFLAGS = $(FUZZ_FLAGS)
tests_fuzz_cpio_fuzz_LDADD = $(FUZZLDADD)
FUZZ_REPLAYS += tests/fuzz/gzip_replay
tests_fuzz_gzip_replay_SOURCES = tests/fuzz/gzip_fuzz.c tests/fuzz/replay.c
tests_fuzz_gzip_replay_CFLAGS = $(FUZZCFLAGS) -DFUZZ_NAME='"gzip"'
tests_fuzz_gzip_replay_LDADD = $(FUZZLDADD)
FUZZ_ENGINES += tests/fuzz/gzip_fuzz
tests_fuzz_gzip_fuzz_SOURCES = tests/fuzz/gzip_fuzz.c
tests_fuzz_gzip_fuzz_CFLAGS = $(FUZZCFLAGS) $(FUZZ_FLAGS)
tests_fuzz_gzip_fuzz_LDFLAGS = $(FUZZ_FLAGS)
tests_fuzz_gzip_fuzz_LDADD = $(FUZZLDADD)

# --- fuzz: coap driver parsers (issue 5)
FUZZ_REPLAYS += tests/fuzz/coap_replay
tests_fuzz_coap_replay_SOURCES = tests/fuzz/coap_fuzz.c tests/fuzz/replay.c proxy/dg_coap_parse.c
tests_fuzz_coap_replay_CFLAGS = $(FUZZCFLAGS) -DFUZZ_NAME='"coap"'
tests_fuzz_coap_replay_LDADD = $(FUZZLDADD)
FUZZ_ENGINES += tests/fuzz/coap_fuzz
tests_fuzz_coap_fuzz_SOURCES = tests/fuzz/coap_fuzz.c proxy/dg_coap_parse.c
tests_fuzz_coap_fuzz_CFLAGS = $(FUZZCFLAGS) $(FUZZ_FLAGS)
tests_fuzz_coap_fuzz_LDFLAGS = $(FUZZ_FLAGS)
tests_fuzz_coap_fuzz_LDADD = $(FUZZLDADD)

check_PROGRAMS += $(FUZZ_REPLAYS)
TESTS += $(FUZZ_REPLAYS)

# what the sanitizer build of .ci/run runs: make check TESTS='$(SANITIZER_TESTS)'
SANITIZER_TESTS = $(UNIT_TESTS) $(FUZZ_REPLAYS) $(SHADOW_TESTS) \
	tests/integration/05-fault-points.sh tests/integration/44-delta-mcu-gateway.sh \
	tests/integration/50-gateway-outcomes.sh tests/integration/51-gateway-config.sh \
	tests/integration/52-gateway-broker-outage.sh tests/integration/53-gateway-kill9.sh \
	tests/integration/54-gateway-limits.sh tests/integration/55-gateway-fair.sh \
	tests/integration/60-coap-pull.sh tests/integration/61-coap-interop.sh \
	tests/integration/62-coap-security.sh tests/integration/63-coap-push-lossy.sh \
	tests/integration/64-coap-push-relay.sh tests/integration/65-coap-push-dtls.sh \
	tests/reliability/10-crash-points.sh tests/reliability/20-random-kills.sh \
	tests/reliability/30-disk-full.sh tests/reliability/40-shadowd-kill.sh \
	tests/reliability/50-broker-faults.sh tests/reliability/60-storage-faults.sh
if ENABLE_FUZZING
noinst_PROGRAMS += $(FUZZ_ENGINES)
endif

# --- install and packaging (issue 14)
INSTALL_TESTS = tests/integration/90-install-config.sh \
	tests/integration/91-install-layout.sh \
	tests/integration/92-install-watchdog.sh \
	tests/integration/93-install-openwrt.sh \
	tests/integration/94-install-privileges.sh
# where make install puts things, for 91 (make's own expansion of the dirs)
AM_TESTS_ENVIRONMENT += DG_SBINDIR='$(sbindir)' DG_BINDIR='$(bindir)' \
	DG_MANDIR='$(mandir)' DG_DOCDIR='$(docdir)' DG_SYSCONFDIR='$(sysconfdir)' \
	DG_LOCALSTATEDIR='$(localstatedir)' DG_SYSTEMDUNITDIR='$(systemdsystemunitdir)' \
	DG_SYSUSERSDIR='$(sysusersdir)'; export DG_SBINDIR DG_BINDIR DG_MANDIR \
	DG_DOCDIR DG_SYSCONFDIR DG_LOCALSTATEDIR DG_SYSTEMDUNITDIR DG_SYSUSERSDIR;
TESTS += $(INSTALL_TESTS)
EXTRA_DIST += $(INSTALL_TESTS) tests/notify-listen.py tests/openwrt-functions.sh

# --- the README's first command, on the suite's build
TESTS += tests/integration/95-demo.sh
EXTRA_DIST += tests/integration/95-demo.sh

# --- serial A (issue 12): YMODEM against lrzsz over socat pty pairs
INTEGRATION_TESTS += tests/integration/70-serial-ymodem-lrzsz.sh
check_PROGRAMS += tests/serial_send
tests_serial_send_SOURCES = tests/serial_send.c
tests_serial_send_CFLAGS = $(src_libdgcore_la_CFLAGS) -I$(top_srcdir)/proxy
tests_serial_send_LDADD = proxy/libdgproxy.la src/libdgcore.la
# --- end serial A
# --- serial B (issue 12): STM32 ROM bootloader and SMP engines, their
# simulator personalities; sim-harness is a temporary host for the
# personalities until the real simulator (examples/serial-device/main.c)
SERIALB_SIM = examples/serial-device/sim.h examples/serial-device/sim_stm32.c \
	examples/serial-device/sim_smp.c
if HAVE_CMOCKA
UNIT_TESTS += tests/unit/test_stm32 tests/unit/test_smp
tests_unit_test_stm32_SOURCES = tests/unit/test_stm32.c tests/unit/sproto_loop.c \
	tests/unit/sproto_loop.h $(SERIALB_SIM)
tests_unit_test_stm32_CFLAGS = $(UNITCFLAGS) $(CBOR_CFLAGS)
tests_unit_test_stm32_LDADD = proxy/libdgproxy.la $(UNITLDADD) $(CBOR_LIBS)
tests_unit_test_smp_SOURCES = tests/unit/test_smp.c tests/unit/sproto_loop.c \
	tests/unit/sproto_loop.h $(SERIALB_SIM)
tests_unit_test_smp_CFLAGS = $(UNITCFLAGS) $(CBOR_CFLAGS)
tests_unit_test_smp_LDADD = proxy/libdgproxy.la $(UNITLDADD) $(CBOR_LIBS)
endif
check_PROGRAMS += tests/serial/sim-harness tests/serial/sproto-run
tests_serial_sim_harness_SOURCES = tests/serial/sim-harness.c $(SERIALB_SIM)
tests_serial_sim_harness_CFLAGS = $(src_libdgcore_la_CFLAGS) $(CBOR_CFLAGS)
tests_serial_sim_harness_LDADD = proxy/libdgproxy.la src/libdgcore.la $(CBOR_LIBS)
tests_serial_sproto_run_SOURCES = tests/serial/sproto-run.c
tests_serial_sproto_run_CFLAGS = $(src_libdgcore_la_CFLAGS)
tests_serial_sproto_run_LDADD = proxy/libdgproxy.la src/libdgcore.la
INTEGRATION_TESTS += tests/integration/72-serial-stm32flash.sh \
	tests/integration/73-serial-smp.sh
# --- end serial B
# --- serial driver (issue 12): deltagated's serial driver end to end
INTEGRATION_TESTS += tests/integration/71-serial-gateway.sh
if HAVE_CMOCKA
UNIT_TESTS += tests/unit/test_driver_serial
tests_unit_test_driver_serial_SOURCES = tests/unit/test_driver_serial.c
tests_unit_test_driver_serial_CFLAGS = $(UNITCFLAGS) -I$(top_srcdir)/proxy
tests_unit_test_driver_serial_LDADD = proxy/libdgproxy.la $(UNITLDADD)
endif
# --- end serial driver
# --- serial B (issue 12): fuzz the engines' parsing of device answers
FUZZ_REPLAYS += tests/fuzz/sproto_replay
tests_fuzz_sproto_replay_SOURCES = tests/fuzz/sproto_fuzz.c tests/fuzz/replay.c
tests_fuzz_sproto_replay_CFLAGS = $(FUZZCFLAGS) -DFUZZ_NAME='"sproto"' -I$(top_srcdir)/proxy
tests_fuzz_sproto_replay_LDADD = proxy/libdgproxy.la $(FUZZLDADD)
FUZZ_ENGINES += tests/fuzz/sproto_fuzz
tests_fuzz_sproto_fuzz_SOURCES = tests/fuzz/sproto_fuzz.c
tests_fuzz_sproto_fuzz_CFLAGS = $(FUZZCFLAGS) $(FUZZ_FLAGS) -I$(top_srcdir)/proxy
tests_fuzz_sproto_fuzz_LDFLAGS = $(FUZZ_FLAGS)
tests_fuzz_sproto_fuzz_LDADD = proxy/libdgproxy.la $(FUZZLDADD)
# --- end serial B fuzz
