/* dg_coap_parse - the parsers of what CoAP devices send the gateway: the
 * /rd registration and the /state/<id> report. Pure functions on bytes (no
 * libcoap types), so that they are unit-tested and fuzzed alone; the coap
 * driver (dg_driver_coap.c) calls them from its handlers. All input is
 * untrusted: any byte string gets DG_OK or an error, never a crash.
 */
#ifndef DG_COAP_PARSE_H
#define DG_COAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"
#include "dg_topic.h"

#define DG_COAP_BODY_MAX 2048    /* largest registration or report payload */
#define DG_COAP_VERSION_MAX 63   /* bytes of a version string */
#define DG_COAP_JOB_MAX 127      /* bytes of a job id */
#define DG_COAP_FIRMWARE_MAX 200 /* bytes of a push firmware resource */

/* A registration: POST /rd?ep=<id> with an optional JSON object
 * {"version","sha256","szx","mode":"pull"|"push","firmware"}. */
typedef struct dg_coap_reg {
	char id[DG_TOPIC_ID_MAX + 1];
	int mode;                /* -1: not given, 0: pull, 1: push */
	int szx;                 /* -1: not given, else 0-6 */
	int has_version;         /* version given (may be "") */
	char version[DG_COAP_VERSION_MAX + 1];
	char sha256[65];         /* lower-case hex, "" if not given */
	char firmware[DG_COAP_FIRMWARE_MAX + 1]; /* "" if not given */
} dg_coap_reg;

/* A report: POST|PUT /state/<id>, JSON {"jobId","status":"SUCCEEDED"|
 * "FAILED","version"} or the text "jobID:<id> SUCCESS|FAILURE". */
typedef struct dg_coap_report {
	char job[DG_COAP_JOB_MAX + 1];
	int ok;                  /* 1: SUCCESS / SUCCEEDED */
	char version[DG_COAP_VERSION_MAX + 1]; /* "" if not given */
} dg_coap_report;

/* Parse a registration. query/qlen: the request's URI query ("ep=<id>",
 * other '&'-separated parameters are ignored; not NUL-terminated, may be
 * NULL); body/len: its payload (may be empty). Fills *out; on error *why
 * (never NULL) is a static line for the device.
 * DG_ERR_INVAL (no or an invalid ep=, a payload that is not a JSON object,
 * a field of the wrong type, value or length), DG_ERR_TOOBIG (payload over
 * DG_COAP_BODY_MAX), DG_ERR_NOMEM. */
dg_err dg_coap_parse_rd(const char *query, size_t qlen, const uint8_t *body, size_t len,
    dg_coap_reg *out, const char **why);

/* Parse a report (body/len, not NUL-terminated). Fills *out.
 * DG_ERR_INVAL (neither form, or a job id empty, too long, holding
 * control characters or not UTF-8, or a version too long or holding
 * control characters), DG_ERR_TOOBIG (over DG_COAP_BODY_MAX),
 * DG_ERR_NOMEM. */
dg_err dg_coap_parse_report(const uint8_t *body, size_t len, dg_coap_report *out);

#endif
