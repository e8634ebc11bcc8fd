/* dg_json - thin helpers over jansson for untrusted input. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_json.h"

int
dg_json_depth(const json_t *v)
{
	int best = 0;

	if (json_is_object(v)) {
		const char *k;
		json_t *m;

		json_object_foreach((json_t *)v, k, m) {
			int d = dg_json_depth(m);

			if (d > best)
				best = d;
		}
		return best + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *m;

		json_array_foreach(v, i, m) {
			int d = dg_json_depth(m);

			if (d > best)
				best = d;
		}
		return best + 1;
	}
	return 0;
}

int
dg_json_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + n >= len)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += n + 1;
	}
	return 1;
}

json_t *
dg_json_parse(const char *buf, size_t len, size_t max_size, int max_depth,
    dg_err *err, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *v;

	if (why && whylen)
		why[0] = '\0';
	if (len > max_size) {
		*err = DG_ERR_TOOBIG;
		if (why)
			snprintf(why, whylen, "document of %zu bytes exceeds %zu", len, max_size);
		return NULL;
	}
	if (!dg_json_utf8_valid(buf, len)) {
		*err = DG_ERR_JSON_UTF8;
		if (why)
			snprintf(why, whylen, "not valid UTF-8");
		return NULL;
	}
	v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!v) {
		*err = DG_ERR_JSON;
		if (why)
			snprintf(why, whylen, "%s at position %d", jerr.text, jerr.position);
		return NULL;
	}
	if (dg_json_depth(v) > max_depth) {
		json_decref(v);
		*err = DG_ERR_JSON_DEPTH;
		if (why)
			snprintf(why, whylen, "nesting deeper than %d levels", max_depth);
		return NULL;
	}
	*err = DG_OK;
	return v;
}

char *
dg_json_dumps(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

const char *
dg_json_get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

int
dg_json_get_i64(const json_t *obj, const char *key, int64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return 0;
	*out = json_integer_value(v);
	return 1;
}
