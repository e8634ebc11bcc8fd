/* Fuzz target: the coap driver's parsers of device input (dg_coap_parse).
 *
 * Input: byte 0 selects the parser (even: the /state/<id> report; odd: the
 * /rd registration); for a registration byte 1 is the length of the URI
 * query that follows (clipped to what is there), the rest is the payload.
 * Checked after each parse:
 * - an accepted registration has a valid id, szx -1..6, mode -1..1, a
 *   version of at most 63 printable bytes, a sha256 of "" or 64 hex digits,
 *   a firmware resource whenever mode is push;
 * - an accepted report has a job id of 1-127 printable bytes and a version
 *   of at most 63; written back in its text form (and, with a version, as
 *   JSON) it parses to the same report;
 * - a refused report leaves the output zeroed.
 * Any broken invariant aborts.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_coap_parse.h"
#include "dg_topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "coap_fuzz: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static int
printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void
check_rd(const uint8_t *data, size_t size)
{
	size_t qlen = size ? data[0] : 0;
	dg_coap_reg r;
	const char *why = NULL;
	dg_err err;
	size_t i;

	if (size)
		data++, size--;
	if (qlen > size)
		qlen = size;
	err = dg_coap_parse_rd((const char *)data, qlen, data + qlen, size - qlen, &r, &why);
	CHECK(why != NULL);
	if (err != DG_OK) {
		CHECK(err == DG_ERR_INVAL || err == DG_ERR_TOOBIG || err == DG_ERR_NOMEM);
		return;
	}
	CHECK(dg_topic_id_valid(r.id));
	CHECK(r.szx >= -1 && r.szx <= 6);
	CHECK(r.mode >= -1 && r.mode <= 1);
	CHECK(printable(r.version, DG_COAP_VERSION_MAX));
	CHECK(r.has_version || r.version[0] == '\0');
	CHECK(r.sha256[0] == '\0' || strlen(r.sha256) == 64);
	for (i = 0; r.sha256[i]; i++)
		CHECK(strchr("0123456789abcdefABCDEF", r.sha256[i]) != NULL);
	CHECK(printable(r.firmware, DG_COAP_FIRMWARE_MAX));
	CHECK(r.mode != 1 || r.firmware[0]);
}

static void
check_report(const uint8_t *data, size_t size)
{
	dg_coap_report r, again;
	static const dg_coap_report zero;
	char buf[DG_COAP_BODY_MAX + 1];
	dg_err err = dg_coap_parse_report(data, size, &r);
	int n;

	if (err != DG_OK) {
		CHECK(err == DG_ERR_INVAL || err == DG_ERR_TOOBIG || err == DG_ERR_NOMEM);
		CHECK(memcmp(&r, &zero, sizeof(r)) == 0);
		return;
	}
	CHECK(r.job[0] && printable(r.job, DG_COAP_JOB_MAX));
	CHECK(printable(r.version, DG_COAP_VERSION_MAX));
	CHECK(r.ok == 0 || r.ok == 1);
	/* the text form: a job id with a space cannot be written in it */
	if (!strchr(r.job, ' ')) {
		n = snprintf(buf, sizeof(buf), "jobID:%s %s", r.job, r.ok ? "SUCCESS" : "FAILURE");
		CHECK(n > 0 && (size_t)n < sizeof(buf));
		CHECK(dg_coap_parse_report((const uint8_t *)buf, (size_t)n, &again) == DG_OK);
		CHECK(strcmp(again.job, r.job) == 0 && again.ok == r.ok && again.version[0] == '\0');
	}
	/* JSON, when the strings need no escaping */
	if (!strpbrk(r.job, "\"\\") && !strpbrk(r.version, "\"\\")) {
		n = snprintf(buf, sizeof(buf), "{\"jobId\":\"%s\",\"status\":\"%s\",\"version\":\"%s\"}", r.job,
		    r.ok ? "SUCCEEDED" : "FAILED", r.version);
		CHECK(n > 0 && (size_t)n < sizeof(buf));
		CHECK(dg_coap_parse_report((const uint8_t *)buf, (size_t)n, &again) == DG_OK);
		CHECK(strcmp(again.job, r.job) == 0 && again.ok == r.ok && strcmp(again.version, r.version) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		check_rd(data + 1, size - 1);
	else
		check_report(data + 1, size - 1);
	return 0;
}
