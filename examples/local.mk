# examples/: the CoAP device simulator (issue 5)
noinst_PROGRAMS += examples/coap-device/coap-device
examples_coap_device_coap_device_SOURCES = examples/coap-device/coap-device.c
examples_coap_device_coap_device_CFLAGS = $(AM_CFLAGS) $(COAP_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
examples_coap_device_coap_device_LDADD = $(COAP_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS)
