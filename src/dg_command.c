/* dg_command - signing and verifying update commands. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dg_command.h"
#include "dg_json.h"

/* The fields of the command that the signature covers. */
static const char *const signed_fields[] = {
	"softwareURL", "softwareVersion", "softwareSha256", "softwareSize", "jobId", "relatedFiles",
};
#define NFIELDS (sizeof(signed_fields) / sizeof(signed_fields[0]))

dg_err
dg_command_sign(json_t *desired, const dg_jws_key *k, const char *device, int64_t seq,
    int64_t expires_at)
{
	json_t *p = NULL;
	char *text = NULL, *jws = NULL;
	dg_err e = DG_ERR_NOMEM;
	size_t i;

	if (!json_is_object(desired) || !dg_json_get_str(desired, "jobId") ||
	    !dg_json_get_str(desired, "softwareURL") || !device)
		return DG_ERR_INVAL;
	if (!(p = json_pack("{s:s,s:I,s:I}", "device", device, "exp", (json_int_t)expires_at,
	    "seq", (json_int_t)seq)))
		goto fail;
	for (i = 0; i < NFIELDS; i++) {
		json_t *v = json_object_get(desired, signed_fields[i]);

		if (v && !json_is_null(v) && json_object_set(p, signed_fields[i], v) != 0)
			goto fail;
	}
	if (!(text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS)))
		goto fail;
	if ((e = dg_jws_sign(k, text, strlen(text), &jws)) != DG_OK)
		goto fail;
	e = json_object_set_new(desired, "signature", json_string(jws)) == 0 ? DG_OK : DG_ERR_NOMEM;
fail:
	free(jws);
	free(text);
	json_decref(p);
	return e;
}

dg_err
dg_command_verify(const json_t *desired, dg_jws_key *const *keys, size_t nkeys,
    const char *device, int64_t now, int64_t *seq)
{
	const char *sig = dg_json_get_str(desired, "signature");
	char *payload = NULL;
	size_t plen = 0, i;
	json_t *p = NULL;
	int64_t exp = 0, s = 0;
	dg_err e, je;

	if (!sig)
		return DG_ERR_CMD_UNSIGNED;
	if ((e = dg_jws_verify(keys, nkeys, sig, &payload, &plen)) != DG_OK)
		return e;
	e = DG_ERR_CMD_ALTERED;
	if (!(p = dg_json_parse(payload, plen, 65536, 8, &je, NULL, 0)) || !json_is_object(p))
		goto fail;
	for (i = 0; i < NFIELDS; i++) {
		json_t *a = json_object_get(p, signed_fields[i]);
		json_t *b = json_object_get(desired, signed_fields[i]);

		if (b && json_is_null(b))
			b = NULL;
		if ((a || b) && !(a && b && json_equal(a, b)))
			goto fail;
	}
	if (!dg_json_get_str(p, "device") || strcmp(dg_json_get_str(p, "device"), device) != 0 ||
	    !dg_json_get_i64(p, "exp", &exp) || !dg_json_get_i64(p, "seq", &s))
		goto fail;
	e = DG_ERR_CMD_EXPIRED;
	if (exp < now)
		goto fail;
	*seq = s;
	e = DG_OK;
fail:
	json_decref(p);
	free(payload);
	return e;
}
