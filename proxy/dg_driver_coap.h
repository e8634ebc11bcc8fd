/* dg_driver_coap - the CoAP downstream driver (RFC 7252, 7641, 7959).
 *
 * One libcoap context whose file descriptor is watched by the process's
 * libevent loop (no threads). Devices pull their image from the gateway or
 * have it pushed to them. Resources (docs/protocol.md, "CoAP (downstream)"):
 *
 *   POST /rd?ep=<id>      registration: JSON {"version","sha256","szx",
 *                         "mode":"pull"|"push","firmware":"/5/0/0"}
 *   GET  /state/<id>      (Observe) the pending command as JSON with
 *                         softwareURL = coap(s)://<gateway>/fw/<token>
 *   POST|PUT /state/<id>  the device's report: JSON {"jobId","status",
 *                         "version"} or text "jobID:<id> SUCCESS|FAILURE"
 *   GET  /fw/<token>      the image, Block2, from the cache file (mapped once
 *                         per delivery); token = base64url(HMAC-SHA256(
 *                         secret, device|job|expiry)) "." expiry
 *
 * Push mode: the gateway PUTs the image with Block1 to the device's firmware
 * resource, POSTs the install trigger, then waits for the report. Push
 * requests are NON and retransmitted by the driver from an RFC 6298 estimate
 * of the device's RTT (libcoap 4.3 refuses ACK timeouts under 1 s, which
 * made every lost datagram cost 1-1.5 s); a request unanswered for
 * max_transmit_span_s fails the job. A device with a PSK is pushed to over
 * DTLS (coaps://), the gateway being the client with identity = device id.
 * DTLS with a per-device PSK (identity = device id); a device whose key is
 * "required" is refused over plain UDP; over DTLS the identity must be the
 * id the request names.
 * A push address coaps://... needs the device's PSK; a device whose key is
 * required is never pushed to over plain UDP.
 */
#ifndef DG_DRIVER_COAP_H
#define DG_DRIVER_COAP_H

#include <stddef.h>

#include <event2/event.h>

#include "dg_driver.h"
#include "dg_err.h"

/* Extended result codes (0x90B0xxxx, see dg_driver.h) of the coap driver. */
#define DG_DRIVER_EXT_COAP_REPORTED_FAILURE DG_DRIVER_EXT(0x00300u) /* device said FAILURE */
#define DG_DRIVER_EXT_COAP_UNREACHABLE DG_DRIVER_EXT(0x00301u)      /* push: no answer */
#define DG_DRIVER_EXT_COAP_NO_TARGET DG_DRIVER_EXT(0x00302u)        /* push: no address */
#define DG_DRIVER_EXT_COAP_IMAGE DG_DRIVER_EXT(0x00303u)            /* image unreadable */
#define DG_DRIVER_EXT_COAP_DTLS DG_DRIVER_EXT(0x00304u)             /* push: DTLS handshake failed */
/* push: the device answered with CoAP code c.dd: 0x90B01000 | (c * 100 + dd) */
#define DG_DRIVER_EXT_COAP_CODE(c, dd) DG_DRIVER_EXT(0x01000u | ((c) * 100u + (dd)))

typedef struct dg_coap_opts {
	const char *listen;          /* "ADDR:PORT" for CoAP over UDP, or NULL */
	const char *dtls_listen;     /* "ADDR:PORT" for CoAP over DTLS, or NULL */
	const unsigned char *secret; /* token HMAC key; NULL: 32 random bytes */
	size_t secret_len;
	int token_lifetime_s;        /* validity of a /fw token (3600) */
	int default_timeout_s;       /* bound of one delivery (600) */
	int allow_unknown;           /* accept registrations of unconfigured ids */
	const char *install_path;    /* push: POSTed after the image ("5/0/2");
	                                "" for none */
	int max_transmit_span_s;     /* push: give a request or a DTLS handshake
	                                up after this long (45, RFC 7252's
	                                MAX_TRANSMIT_SPAN) */
} dg_coap_opts;

typedef enum dg_coap_mode { DG_COAP_PULL = 0, DG_COAP_PUSH = 1 } dg_coap_mode;

/* Create the driver and bind its endpoints. NULL with *err set:
 * DG_ERR_INVAL (no endpoint, or dtls_listen without libcoap DTLS),
 * DG_ERR_COAP_ADDRESS (an address does not parse or resolve),
 * DG_ERR_COAP_SETUP (libcoap could not create the context or bind),
 * DG_ERR_NOMEM. */
dg_driver *dg_driver_coap_new(struct event_base *base, const dg_coap_opts *o, dg_err *err);

/* Declare (or update) a device. psk/psk_len: its DTLS key (copied; NULL:
 * none); psk_required: refuse it over plain UDP. address: push target URI
 * "coap://host:port/path" or "coaps://..." (NULL: from its registration).
 * DG_ERR_INVAL (not a coap driver, id invalid, psk longer than 64 bytes,
 * a coaps:// address without a psk, a coap:// address with psk_required),
 * DG_ERR_NOMEM. */
dg_err dg_driver_coap_add_device(dg_driver *drv, const char *id, const unsigned char *psk,
    size_t psk_len, int psk_required, dg_coap_mode mode, const char *address);

/* Counts for logs and tests: devices known, registered, deliveries active. */
void dg_driver_coap_stats(dg_driver *drv, size_t *devices, size_t *registered, size_t *active);

#endif
