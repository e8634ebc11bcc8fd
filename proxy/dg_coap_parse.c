/* dg_coap_parse - registration and report parsers of the coap driver. */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "dg_coap_parse.h"
#include "dg_json.h"

#define MAX_DEPTH 4

/* 1 if s (NUL-terminated) has no control character. */
static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* Copy s into out (size outlen); 0 if it does not fit or is unprintable. */
static int
take(const char *s, char *out, size_t outlen)
{
	size_t n = strlen(s);

	if (n >= outlen || !printable(s))
		return 0;
	memcpy(out, s, n + 1);
	return 1;
}

static int
is_hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!s[i] || !strchr("0123456789abcdefABCDEF", s[i]))
			return 0;
	return s[64] == '\0';
}

/* The ep= parameter of an '&'-separated query into id. */
static int
query_ep(const char *q, size_t qlen, char *id, size_t idlen)
{
	size_t i = 0;

	while (q && i < qlen) {
		size_t j = i;

		while (j < qlen && q[j] != '&')
			j++;
		if (j - i > 3 && memcmp(q + i, "ep=", 3) == 0) {
			size_t n = j - i - 3;

			if (n >= idlen || memchr(q + i + 3, '\0', n))
				return 0;
			memcpy(id, q + i + 3, n);
			id[n] = '\0';
			return dg_topic_id_valid(id);
		}
		i = j + 1;
	}
	return 0;
}

dg_err
dg_coap_parse_rd(const char *query, size_t qlen, const uint8_t *body, size_t len,
    dg_coap_reg *out, const char **why)
{
	json_t *o = NULL;
	const char *s;
	int64_t szx;
	dg_err err = DG_ERR_INVAL;

	memset(out, 0, sizeof(*out));
	out->mode = -1;
	out->szx = -1;
	*why = "bad registration";
	if (!query_ep(query, qlen, out->id, sizeof(out->id))) {
		*why = "expected ?ep=<id> (1-128 of A-Z a-z 0-9 _ : . -)";
		return DG_ERR_INVAL;
	}
	if (len > DG_COAP_BODY_MAX) {
		*why = "registration too large";
		return DG_ERR_TOOBIG;
	}
	if (len == 0)
		return DG_OK;
	if (!(o = dg_json_parse((const char *)body, len, DG_COAP_BODY_MAX, MAX_DEPTH, &err, NULL, 0))) {
		*why = "registration must be a JSON object";
		return err == DG_ERR_NOMEM ? DG_ERR_NOMEM : DG_ERR_INVAL;
	}
	err = DG_ERR_INVAL;
	if (!json_is_object(o)) {
		*why = "registration must be a JSON object";
		goto fail;
	}
	if (json_object_get(o, "mode")) {
		s = dg_json_get_str(o, "mode");
		if (s && strcmp(s, "pull") == 0) {
			out->mode = 0;
		} else if (s && strcmp(s, "push") == 0) {
			out->mode = 1;
		} else {
			*why = "mode must be \"pull\" or \"push\"";
			goto fail;
		}
	}
	if (json_object_get(o, "szx")) {
		if (!dg_json_get_i64(o, "szx", &szx) || szx < 0 || szx > 6) {
			*why = "szx must be 0-6";
			goto fail;
		}
		out->szx = (int)szx;
	}
	if (json_object_get(o, "version")) {
		if (!(s = dg_json_get_str(o, "version")) || !take(s, out->version, sizeof(out->version))) {
			*why = "version must be a string of at most 63 bytes";
			goto fail;
		}
		out->has_version = 1;
	}
	if (json_object_get(o, "sha256")) {
		if (!(s = dg_json_get_str(o, "sha256")) || !is_hex64(s)) {
			*why = "sha256 must be 64 hex digits";
			goto fail;
		}
		memcpy(out->sha256, s, 65);
	}
	if (json_object_get(o, "firmware")) {
		if (!(s = dg_json_get_str(o, "firmware")) || !*s || !take(s, out->firmware, sizeof(out->firmware))) {
			*why = "firmware must be a path or coap:// URI of 1-200 bytes";
			goto fail;
		}
	}
	if (out->mode == 1 && !out->firmware[0]) {
		*why = "push mode needs a firmware resource";
		goto fail;
	}
	json_decref(o);
	return DG_OK;
fail:
	json_decref(o);
	return err;
}

/* "jobID:<id> SUCCESS|FAILURE" (p/len starts with "jobID:"), trailing
 * white space allowed. */
static dg_err
report_text(const char *p, size_t len, dg_coap_report *out)
{
	const char *sp;
	size_t n, rest;

	if (!(sp = memchr(p + 6, ' ', len - 6)))
		return DG_ERR_INVAL;
	n = (size_t)(sp - (p + 6));
	if (n == 0 || n > DG_COAP_JOB_MAX)
		return DG_ERR_INVAL;
	memcpy(out->job, p + 6, n);
	out->job[n] = '\0';
	if (strlen(out->job) != n || !printable(out->job) || !dg_json_utf8_valid(out->job, n))
		return DG_ERR_INVAL; /* it must match a job id that came in JSON */
	sp++;
	rest = len - (size_t)(sp - p);
	while (rest && sp[rest - 1] && strchr(" \t\r\n", sp[rest - 1]))
		rest--;
	if (rest == 7 && memcmp(sp, "SUCCESS", 7) == 0)
		out->ok = 1;
	else if (rest == 7 && memcmp(sp, "FAILURE", 7) == 0)
		out->ok = 0;
	else
		return DG_ERR_INVAL;
	return DG_OK;
}

dg_err
dg_coap_parse_report(const uint8_t *body, size_t len, dg_coap_report *out)
{
	const char *p = (const char *)body, *st, *j, *v;
	json_t *o;
	dg_err err;

	memset(out, 0, sizeof(*out));
	if (len > DG_COAP_BODY_MAX)
		return DG_ERR_TOOBIG;
	if (len == 0)
		return DG_ERR_INVAL;
	if (len >= 6 && memcmp(p, "jobID:", 6) == 0) {
		if ((err = report_text(p, len, out)) != DG_OK)
			memset(out, 0, sizeof(*out));
		return err;
	}
	if (!(o = dg_json_parse(p, len, DG_COAP_BODY_MAX, MAX_DEPTH, &err, NULL, 0)))
		return err == DG_ERR_NOMEM ? DG_ERR_NOMEM : DG_ERR_INVAL;
	j = dg_json_get_str(o, "jobId");
	st = dg_json_get_str(o, "status");
	v = dg_json_get_str(o, "version");
	err = DG_ERR_INVAL;
	if (!j || !*j || !take(j, out->job, sizeof(out->job)) || !st ||
	    (strcmp(st, "SUCCEEDED") != 0 && strcmp(st, "FAILED") != 0) ||
	    (json_object_get(o, "version") && (!v || !take(v, out->version, sizeof(out->version)))))
		goto fail;
	out->ok = strcmp(st, "SUCCEEDED") == 0;
	json_decref(o);
	return DG_OK;
fail:
	memset(out, 0, sizeof(*out));
	json_decref(o);
	return err;
}
