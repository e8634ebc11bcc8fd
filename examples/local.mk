# examples/: the CoAP device simulator (issue 5)
noinst_PROGRAMS += examples/coap-device/coap-device
examples_coap_device_coap_device_SOURCES = examples/coap-device/coap-device.c
examples_coap_device_coap_device_CFLAGS = $(AM_CFLAGS) $(COAP_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
examples_coap_device_coap_device_LDADD = $(COAP_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS)
# example configurations (issue 14): generated from the option tables
# (make update-option-docs), checked by tests/integration/90-install-config.sh
exampledir = $(docdir)/examples
dist_example_DATA = examples/deltagated.conf examples/deltagate-shadowd.conf
EXTRA_DIST += scripts/option-docs

# Rewrite the man pages' option lists and the examples from the tables.
update-option-docs: proxy/deltagated$(EXEEXT) src/deltagate-shadowd$(EXEEXT)
	$(SHELL) $(srcdir)/scripts/option-docs update proxy/deltagated$(EXEEXT) \
		$(srcdir)/docs/deltagated.8 $(srcdir)/examples/deltagated.conf
	$(SHELL) $(srcdir)/scripts/option-docs update src/deltagate-shadowd$(EXEEXT) \
		$(srcdir)/docs/deltagate-shadowd.8 $(srcdir)/examples/deltagate-shadowd.conf
.PHONY: update-option-docs
# --- serial A (issue 12): the serial device simulator
noinst_PROGRAMS += examples/serial-device/serial-device
examples_serial_device_serial_device_SOURCES = examples/serial-device/main.c \
	examples/serial-device/sim.h examples/serial-device/sim_ymodem.c \
	examples/serial-device/sim_stm32.c examples/serial-device/sim_smp.c
examples_serial_device_serial_device_CFLAGS = $(src_libdgcore_la_CFLAGS) $(CBOR_CFLAGS)
examples_serial_device_serial_device_LDADD = proxy/libdgproxy.la src/libdgcore.la $(CBOR_LIBS)
# --- end serial A
# --- serial driver (issue 12): the serial devices' example configuration
dist_example_DATA += examples/serial.conf
# --- end serial driver
