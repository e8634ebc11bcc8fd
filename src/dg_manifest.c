/* dg_manifest - import manifest version 5.0: builder and validator. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dg_json.h"
#include "dg_manifest.h"
#include "dg_util.h"

#define MAX_COMPAT 10
#define MAX_STEPS 10
#define MAX_FILES 10
#define MAX_RELATED 4
#define PROPS_MAX (64 * 1024) /* bytes of a properties=JSON option */

struct step {
	json_t *obj;   /* handler, description, handlerProperties */
	json_t *files; /* array of names, or NULL: every file */
};

struct dg_manifest {
	json_t *update_id;
	char *description;
	json_t *compat;
	struct step steps[MAX_STEPS];
	size_t nsteps;
	json_t *files;
};

static dg_err
bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return DG_ERR_MANIFEST;
}

dg_manifest *
dg_manifest_new(dg_err *err)
{
	dg_manifest *m = calloc(1, sizeof(*m));

	if (!m || !(m->compat = json_array()) || !(m->files = json_array())) {
		dg_manifest_free(m);
		if (err)
			*err = DG_ERR_NOMEM;
		return NULL;
	}
	if (err)
		*err = DG_OK;
	return m;
}

void
dg_manifest_free(dg_manifest *m)
{
	size_t i;

	if (!m)
		return;
	json_decref(m->update_id);
	free(m->description);
	json_decref(m->compat);
	for (i = 0; i < m->nsteps; i++) {
		json_decref(m->steps[i].obj);
		json_decref(m->steps[i].files);
	}
	json_decref(m->files);
	free(m);
}

/* ---- checks shared by the builder and the validator ---- */

static int
is_ident(const char *s, size_t maxlen)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > maxlen)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* ^\d+(?:\.\d+)+$ with 2-4 parts, each at most 2147483647. */
static int
is_version(const char *s)
{
	int parts = 0;

	while (*s) {
		uint64_t v = 0;
		int digits = 0;

		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (uint64_t)(*s - '0');
			if (v > 2147483647u)
				return 0;
			s++;
			digits++;
		}
		if (!digits)
			return 0;
		parts++;
		if (*s == '.') {
			s++;
			if (!*s)
				return 0;
		} else if (*s) {
			return 0;
		}
	}
	return parts >= 2 && parts <= 4;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* ^\S+/\S+:\d{1,5}$, 5-32 bytes. */
static int
is_handler(const char *s)
{
	size_t n = strlen(s), i, colon, digits;
	const char *slash;

	if (n < 5 || n > 32)
		return 0;
	for (i = 0; i < n; i++)
		if (is_space(s[i]))
			return 0;
	colon = (size_t)(strrchr(s, ':') ? strrchr(s, ':') - s : 0);
	if (!colon)
		return 0;
	digits = n - colon - 1;
	if (digits < 1 || digits > 5)
		return 0;
	for (i = colon + 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	/* a '/' with something on both sides, before the colon */
	for (slash = s + 1; slash < s + colon - 1; slash++)
		if (*slash == '/')
			return 1;
	return 0;
}

static int
is_b64_sha256(const char *s)
{
	size_t i;

	if (strlen(s) != DG_MANIFEST_B64_SHA256_LEN || s[43] != '=')
		return 0;
	for (i = 0; i < 43; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return 0;
	}
	/* 32 bytes leave the last two bits of the 43rd digit zero */
	return strchr("AEIMQUYcgkosw048", s[42]) != NULL;
}

/* YYYY-MM-DDTHH:MM:SS[.f+](Z|+HH:MM|-HH:MM) */
static int
is_datetime(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return 0;
	}
	s += i;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'Z')
		return s[1] == '\0';
	if (*s == '+' || *s == '-')
		return s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' && s[3] == ':' &&
		    s[4] >= '0' && s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '\0';
	return 0;
}

static int
strlen_in(const char *s, size_t lo, size_t hi)
{
	size_t n = strlen(s);

	return n >= lo && n <= hi;
}

/* ---- builder ---- */

/* Split "key=value"; key into kbuf. NULL if no '='. */
static const char *
split_kv(const char *kv, char *kbuf, size_t ksize)
{
	const char *eq = strchr(kv, '=');
	size_t n;

	if (!eq)
		return NULL;
	n = (size_t)(eq - kv);
	if (n >= ksize)
		n = ksize - 1;
	memcpy(kbuf, kv, n);
	kbuf[n] = '\0';
	return eq + 1;
}

static json_t *
parse_props(const char *text, const char *what, dg_err *e, char *why, size_t whylen)
{
	char jwhy[160];
	json_t *v = dg_json_parse(text, strlen(text), PROPS_MAX, 32, e, jwhy, sizeof(jwhy));

	if (!v) {
		*e = bad(why, whylen, "%s: not valid JSON: %s", what, jwhy);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		*e = bad(why, whylen, "%s: must be a JSON object", what);
		return NULL;
	}
	*e = DG_OK;
	return v;
}

dg_err
dg_manifest_set_update_id(dg_manifest *m, const char *provider, const char *name,
    const char *version, char *why, size_t whylen)
{
	json_t *id;

	if (!provider || !is_ident(provider, 64))
		return bad(why, whylen, "update provider '%s' must be 1-64 of [a-zA-Z0-9.-]",
		    provider ? provider : "");
	if (!name || !is_ident(name, 64))
		return bad(why, whylen, "update name '%s' must be 1-64 of [a-zA-Z0-9.-]",
		    name ? name : "");
	if (!version || !is_version(version))
		return bad(why, whylen, "update version '%s' must be 2-4 dot-separated numbers "
		    "(each at most 2147483647)", version ? version : "");
	id = json_pack("{s:s, s:s, s:s}", "provider", provider, "name", name, "version", version);
	if (!id)
		return DG_ERR_NOMEM;
	json_decref(m->update_id);
	m->update_id = id;
	return DG_OK;
}

dg_err
dg_manifest_set_description(dg_manifest *m, const char *desc, char *why, size_t whylen)
{
	char *d;

	if (!desc || !strlen_in(desc, 1, 512) || !dg_json_utf8_valid(desc, strlen(desc)))
		return bad(why, whylen, "description must be 1-512 bytes of UTF-8");
	if (!(d = strdup(desc)))
		return DG_ERR_NOMEM;
	free(m->description);
	m->description = d;
	return DG_OK;
}

dg_err
dg_manifest_add_compat(dg_manifest *m, char *const *kv, size_t n, char *why, size_t whylen)
{
	json_t *set = NULL;
	size_t i;
	dg_err e;

	if (json_array_size(m->compat) >= MAX_COMPAT)
		return bad(why, whylen, "at most %d --compat sets", MAX_COMPAT);
	if (n < 1 || n > 5)
		return bad(why, whylen, "--compat takes 1-5 key=value pairs, not %zu", n);
	if (!(set = json_object()))
		return DG_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		char key[64];
		const char *val = split_kv(kv[i], key, sizeof(key));

		if (!val) {
			e = bad(why, whylen, "--compat: '%s' is not key=value", kv[i]);
			goto fail;
		}
		if (!strlen_in(key, 1, 32) || strlen(kv[i]) - strlen(val) - 1 > 32 ||
		    !dg_json_utf8_valid(key, strlen(key))) {
			e = bad(why, whylen, "--compat: key '%s' must be 1-32 bytes", key);
			goto fail;
		}
		if (!strlen_in(val, 1, 64) || !dg_json_utf8_valid(val, strlen(val))) {
			e = bad(why, whylen, "--compat: value of '%s' must be 1-64 bytes", key);
			goto fail;
		}
		if (json_object_get(set, key)) {
			e = bad(why, whylen, "--compat: key '%s' given twice", key);
			goto fail;
		}
		if (json_object_set_new(set, key, json_string(val)) != 0) {
			e = DG_ERR_NOMEM;
			goto fail;
		}
	}
	if (json_array_append_new(m->compat, set) != 0)
		return DG_ERR_NOMEM;
	return DG_OK;
fail:
	json_decref(set);
	return e;
}

/* "a,b,c" into a JSON array of names. */
static json_t *
split_names(const char *list, dg_err *e, char *why, size_t whylen)
{
	json_t *arr = json_array();
	const char *p = list;

	if (!arr) {
		*e = DG_ERR_NOMEM;
		return NULL;
	}
	for (;;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);

		if (n < 1 || n > 255) {
			*e = bad(why, whylen, "--step: files= names must be 1-255 bytes");
			json_decref(arr);
			return NULL;
		}
		if (json_array_append_new(arr, json_stringn(p, n)) != 0) {
			*e = DG_ERR_NOMEM;
			json_decref(arr);
			return NULL;
		}
		if (!c)
			break;
		p = c + 1;
	}
	*e = DG_OK;
	return arr;
}

dg_err
dg_manifest_add_step(dg_manifest *m, char *const *kv, size_t n, char *why, size_t whylen)
{
	json_t *obj = NULL, *files = NULL, *props = NULL;
	const char *handler = NULL, *desc = NULL;
	size_t i;
	dg_err e;

	if (m->nsteps >= MAX_STEPS)
		return bad(why, whylen, "at most %d --step options", MAX_STEPS);
	for (i = 0; i < n; i++) {
		char key[32];
		const char *val = split_kv(kv[i], key, sizeof(key));

		if (!val) {
			e = bad(why, whylen, "--step: '%s' is not key=value", kv[i]);
			goto fail;
		}
		if (strcmp(key, "handler") == 0) {
			handler = val;
		} else if (strcmp(key, "description") == 0) {
			desc = val;
		} else if (strcmp(key, "properties") == 0) {
			json_decref(props);
			if (!(props = parse_props(val, "--step properties", &e, why, whylen)))
				goto fail;
		} else if (strcmp(key, "files") == 0) {
			json_decref(files);
			if (!(files = split_names(val, &e, why, whylen)))
				goto fail;
		} else {
			e = bad(why, whylen, "--step: unknown key '%s' (handler, properties, "
			    "description, files)", key);
			goto fail;
		}
	}
	if (!handler || !is_handler(handler)) {
		e = bad(why, whylen, "--step: handler=H is required and must look like "
		    "vendor/name:N (5-32 bytes), not '%s'", handler ? handler : "");
		goto fail;
	}
	if (desc && (!strlen_in(desc, 1, 64) || !dg_json_utf8_valid(desc, strlen(desc)))) {
		e = bad(why, whylen, "--step: description must be 1-64 bytes");
		goto fail;
	}
	if (!(obj = json_object()) ||
	    json_object_set_new(obj, "type", json_string("inline")) != 0 ||
	    (desc && json_object_set_new(obj, "description", json_string(desc)) != 0) ||
	    json_object_set_new(obj, "handler", json_string(handler)) != 0 ||
	    (props && json_object_set(obj, "handlerProperties", props) != 0)) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	json_decref(props);
	m->steps[m->nsteps].obj = obj;
	m->steps[m->nsteps].files = files;
	m->nsteps++;
	return DG_OK;
fail:
	json_decref(obj);
	json_decref(files);
	json_decref(props);
	return e;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* {filename, sizeInBytes, hashes} for the file at path. */
static json_t *
file_entry(const char *path, const char *opt, dg_err *e, char *why, size_t whylen)
{
	char hash[DG_MANIFEST_B64_SHA256_LEN + 1];
	const char *name = base_name(path);
	uint64_t size;
	json_t *f;

	if (!strlen_in(name, 1, 255)) {
		*e = bad(why, whylen, "%s: file name of '%s' must be 1-255 bytes", opt, path);
		return NULL;
	}
	if ((*e = dg_manifest_hash_file(path, &size, hash)) != DG_OK) {
		if (why && whylen)
			snprintf(why, whylen, "%s: %s: %s", opt, path, dg_strerror(*e));
		return NULL;
	}
	if (size < 1) {
		*e = bad(why, whylen, "%s: %s is empty (sizeInBytes must be at least 1)", opt, path);
		return NULL;
	}
	f = json_pack("{s:s, s:I, s:{s:s}}", "filename", name, "sizeInBytes", (json_int_t)size,
	    "hashes", "sha256", hash);
	*e = f ? DG_OK : DG_ERR_NOMEM;
	return f;
}

dg_err
dg_manifest_add_file(dg_manifest *m, char *const *kv, size_t n, char *why, size_t whylen)
{
	const char *path = NULL, *handler = NULL;
	json_t *f = NULL, *props = NULL, *old;
	size_t i, idx;
	dg_err e;

	if (json_array_size(m->files) >= MAX_FILES)
		return bad(why, whylen, "at most %d --file options", MAX_FILES);
	for (i = 0; i < n; i++) {
		char key[32];
		const char *val = split_kv(kv[i], key, sizeof(key));

		if (!val) {
			e = bad(why, whylen, "--file: '%s' is not key=value", kv[i]);
			goto fail;
		}
		if (strcmp(key, "path") == 0) {
			path = val;
		} else if (strcmp(key, "downloadHandler") == 0) {
			handler = val;
		} else if (strcmp(key, "properties") == 0) {
			json_decref(props);
			if (!(props = parse_props(val, "--file properties", &e, why, whylen)))
				goto fail;
		} else {
			e = bad(why, whylen, "--file: unknown key '%s' (path, downloadHandler, "
			    "properties)", key);
			goto fail;
		}
	}
	if (!path || !*path) {
		e = bad(why, whylen, "--file: path=F is required");
		goto fail;
	}
	if (handler && !is_handler(handler)) {
		e = bad(why, whylen, "--file: downloadHandler '%s' must look like vendor/name:N "
		    "(5-32 bytes)", handler);
		goto fail;
	}
	json_array_foreach(m->files, idx, old)
		if (strcmp(json_string_value(json_object_get(old, "filename")), base_name(path)) == 0) {
			e = bad(why, whylen, "--file: two files named '%s'", base_name(path));
			goto fail;
		}
	if (!(f = file_entry(path, "--file", &e, why, whylen)))
		goto fail;
	if ((props && json_object_set(f, "properties", props) != 0) ||
	    (handler && json_object_set_new(f, "downloadHandler",
	    json_pack("{s:s}", "id", handler)) != 0) ||
	    json_array_append(m->files, f) != 0) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	e = DG_OK;
fail:
	json_decref(f);
	json_decref(props);
	return e;
}

dg_err
dg_manifest_add_related_file(dg_manifest *m, char *const *kv, size_t n, char *why,
    size_t whylen)
{
	json_t *owner = json_array_get(m->files, json_array_size(m->files) - 1);
	json_t *rel = NULL, *props = NULL, *list;
	const char *path = NULL, *source = NULL;
	size_t i;
	dg_err e;

	if (!owner)
		return bad(why, whylen, "--related-file must follow the --file it belongs to");
	list = json_object_get(owner, "relatedFiles");
	if (json_array_size(list) >= MAX_RELATED)
		return bad(why, whylen, "at most %d --related-file per --file", MAX_RELATED);
	for (i = 0; i < n; i++) {
		char key[32];
		const char *val = split_kv(kv[i], key, sizeof(key));

		if (!val) {
			e = bad(why, whylen, "--related-file: '%s' is not key=value", kv[i]);
			goto fail;
		}
		if (strcmp(key, "path") == 0) {
			path = val;
		} else if (strcmp(key, "source") == 0) {
			source = val;
		} else if (strcmp(key, "properties") == 0) {
			json_decref(props);
			if (!(props = parse_props(val, "--related-file properties", &e, why, whylen)))
				goto fail;
		} else {
			e = bad(why, whylen, "--related-file: unknown key '%s' (path, properties, "
			    "source)", key);
			goto fail;
		}
	}
	if (!path || !*path) {
		e = bad(why, whylen, "--related-file: path=D is required");
		goto fail;
	}
	if (source) {
		char hash[DG_MANIFEST_B64_SHA256_LEN + 1];
		uint64_t size;

		if ((e = dg_manifest_hash_file(source, &size, hash)) != DG_OK) {
			if (why && whylen)
				snprintf(why, whylen, "--related-file source: %s: %s", source,
				    dg_strerror(e));
			goto fail;
		}
		if (!props && !(props = json_object())) {
			e = DG_ERR_NOMEM;
			goto fail;
		}
		if (json_object_set_new(props, "microsoft.sourceFileHashAlgorithm",
		    json_string("sha256")) != 0 ||
		    json_object_set_new(props, "microsoft.sourceFileHash", json_string(hash)) != 0) {
			e = DG_ERR_NOMEM;
			goto fail;
		}
	}
	if (!(rel = file_entry(path, "--related-file", &e, why, whylen)))
		goto fail;
	if (props && json_object_set(rel, "properties", props) != 0) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if (!list) {
		if (!(list = json_array()) || json_object_set_new(owner, "relatedFiles", list) != 0) {
			e = DG_ERR_NOMEM;
			goto fail;
		}
	}
	if (json_array_append(list, rel) != 0) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	e = DG_OK;
fail:
	json_decref(rel);
	json_decref(props);
	return e;
}

void
dg_manifest_format_time(int64_t t, char *out)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *
dg_manifest_build(const dg_manifest *m, const char *created, dg_err *err, char *why,
    size_t whylen)
{
	json_t *doc = NULL, *steps = NULL, *all = NULL, *f;
	char now[32];
	size_t i, idx;
	dg_err e = DG_ERR_NOMEM;

	if (!m->update_id) {
		e = bad(why, whylen, "--update-provider, --update-name and --update-version are required");
		goto fail;
	}
	if (json_array_size(m->compat) == 0) {
		e = bad(why, whylen, "at least one --compat is required");
		goto fail;
	}
	if (m->nsteps == 0) {
		e = bad(why, whylen, "at least one --step is required");
		goto fail;
	}
	if (!created) {
		const char *sde = getenv("SOURCE_DATE_EPOCH");
		int64_t t = (int64_t)(dg_util_wall_ms() / 1000);

		if (sde && dg_util_parse_i64(sde, 0, INT64_C(253402300799), &t) != DG_OK) {
			e = bad(why, whylen, "SOURCE_DATE_EPOCH '%s' is not a number of seconds", sde);
			goto fail;
		}
		dg_manifest_format_time(t, now);
		created = now;
	}
	if (!(all = json_array()))
		goto fail;
	json_array_foreach(m->files, idx, f)
		if (json_array_append(all, json_object_get(f, "filename")) != 0)
			goto fail;
	if (!(steps = json_array()))
		goto fail;
	for (i = 0; i < m->nsteps; i++) {
		json_t *s = json_deep_copy(m->steps[i].obj);

		if (!s || json_object_set(s, "files", m->steps[i].files ? m->steps[i].files : all) != 0 ||
		    json_array_append_new(steps, s) != 0) {
			json_decref(s);
			goto fail;
		}
	}
	if (!(doc = json_object()) ||
	    json_object_set(doc, "updateId", m->update_id) != 0 ||
	    (m->description && json_object_set_new(doc, "description",
	    json_string(m->description)) != 0) ||
	    json_object_set(doc, "compatibility", m->compat) != 0 ||
	    json_object_set_new(doc, "instructions", json_pack("{s:O}", "steps", steps)) != 0 ||
	    json_object_set(doc, "files", m->files) != 0 ||
	    json_object_set_new(doc, "createdDateTime", json_string(created)) != 0 ||
	    json_object_set_new(doc, "manifestVersion", json_string("5.0")) != 0)
		goto fail;
	/* the builder's output is held to the same rules as any manifest */
	if ((e = dg_manifest_validate(doc, why, whylen)) != DG_OK)
		goto fail;
	json_decref(steps);
	json_decref(all);
	if (err)
		*err = DG_OK;
	{
		/* detach from the builder's own objects */
		json_t *copy = json_deep_copy(doc);

		json_decref(doc);
		if (!copy && err)
			*err = DG_ERR_NOMEM;
		return copy;
	}
fail:
	json_decref(doc);
	json_decref(steps);
	json_decref(all);
	if (err)
		*err = e;
	return NULL;
}

/* ---- validation ---- */

/* Every key of obj is one of the NULL-terminated allowed list. */
static dg_err
only_keys(const json_t *obj, const char *const *allowed, const char *path, char *why,
    size_t whylen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		const char *const *a;

		for (a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (!*a)
			return bad(why, whylen, "%s: member '%s' is not allowed", path, key);
	}
	return DG_OK;
}

static dg_err
check_update_id(const json_t *id, const char *path, char *why, size_t whylen)
{
	static const char *const keys[] = { "provider", "name", "version", NULL };
	const char *p, *n, *v;
	dg_err e;

	if (!json_is_object(id))
		return bad(why, whylen, "%s: must be an object", path);
	if ((e = only_keys(id, keys, path, why, whylen)) != DG_OK)
		return e;
	p = json_string_value(json_object_get(id, "provider"));
	n = json_string_value(json_object_get(id, "name"));
	v = json_string_value(json_object_get(id, "version"));
	if (!p || !is_ident(p, 64))
		return bad(why, whylen, "%s.provider: required, 1-64 of [a-zA-Z0-9.-]", path);
	if (!n || !is_ident(n, 64))
		return bad(why, whylen, "%s.name: required, 1-64 of [a-zA-Z0-9.-]", path);
	if (!v || !is_version(v))
		return bad(why, whylen, "%s.version: required, 2-4 dot-separated numbers", path);
	return DG_OK;
}

static int
is_string_len(const json_t *v, size_t lo, size_t hi)
{
	return json_is_string(v) && json_string_length(v) >= lo && json_string_length(v) <= hi &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

static dg_err
check_base_file(const json_t *f, const char *path, int allow_related, char *why, size_t whylen)
{
	static const char *const keys[] = { "filename", "sizeInBytes", "hashes", "properties",
		"relatedFiles", "downloadHandler", NULL };
	static const char *const base_keys[] = { "filename", "sizeInBytes", "hashes", "properties",
		NULL };
	const json_t *size, *hashes, *v, *dh;
	const char *key;
	char sub[96];
	size_t i;
	dg_err e;

	if (!json_is_object(f))
		return bad(why, whylen, "%s: must be an object", path);
	if ((e = only_keys(f, allow_related ? keys : base_keys, path, why, whylen)) != DG_OK)
		return e;
	if (!is_string_len(json_object_get(f, "filename"), 1, 255))
		return bad(why, whylen, "%s.filename: required, 1-255 bytes", path);
	size = json_object_get(f, "sizeInBytes");
	if (!json_is_number(size) || json_number_value(size) < 1)
		return bad(why, whylen, "%s.sizeInBytes: required, a number at least 1", path);
	hashes = json_object_get(f, "hashes");
	if (!json_is_object(hashes) || json_object_size(hashes) > 2)
		return bad(why, whylen, "%s.hashes: required, an object of at most 2 hashes", path);
	if (!json_is_string(json_object_get(hashes, "sha256")) ||
	    !is_b64_sha256(json_string_value(json_object_get(hashes, "sha256"))))
		return bad(why, whylen, "%s.hashes.sha256: required, base64 of a SHA-256", path);
	json_object_foreach((json_t *)hashes, key, v)
		if (!json_is_string(v) || strlen(key) > 10)
			return bad(why, whylen, "%s.hashes.%s: must be a string, name at most 10 bytes",
			    path, key);
	v = json_object_get(f, "properties");
	if (v && !json_is_object(v))
		return bad(why, whylen, "%s.properties: must be an object", path);
	if (!allow_related)
		return DG_OK;
	v = json_object_get(f, "relatedFiles");
	if (v) {
		if (!json_is_array(v) || json_array_size(v) > MAX_RELATED)
			return bad(why, whylen, "%s.relatedFiles: an array of at most %d files", path,
			    MAX_RELATED);
		for (i = 0; i < json_array_size(v); i++) {
			snprintf(sub, sizeof(sub), "%.60s.relatedFiles[%zu]", path, i);
			if ((e = check_base_file(json_array_get(v, i), sub, 0, why, whylen)) != DG_OK)
				return e;
		}
	}
	dh = json_object_get(f, "downloadHandler");
	if (dh) {
		const json_t *id = json_object_get(dh, "id");

		if (!json_is_object(dh) || !json_is_string(id) || !is_handler(json_string_value(id)))
			return bad(why, whylen, "%s.downloadHandler.id: required, vendor/name:N "
			    "(5-32 bytes)", path);
	}
	return DG_OK;
}

static dg_err
check_step(const json_t *s, const char *path, const json_t *files, char *why, size_t whylen)
{
	static const char *const inline_keys[] = { "type", "description", "handler", "files",
		"handlerProperties", NULL };
	static const char *const ref_keys[] = { "type", "description", "updateId", NULL };
	const json_t *type, *v, *desc, *name;
	char sub[96];
	size_t i, j;
	dg_err e;

	if (!json_is_object(s))
		return bad(why, whylen, "%s: must be an object", path);
	type = json_object_get(s, "type");
	desc = json_object_get(s, "description");
	if (desc && !is_string_len(desc, 1, 64))
		return bad(why, whylen, "%s.description: 1-64 bytes", path);
	if (type && json_is_string(type) && strcmp(json_string_value(type), "reference") == 0) {
		if ((e = only_keys(s, ref_keys, path, why, whylen)) != DG_OK)
			return e;
		snprintf(sub, sizeof(sub), "%.80s.updateId", path);
		return check_update_id(json_object_get(s, "updateId"), sub, why, whylen);
	}
	if (type && !(json_is_string(type) && strcmp(json_string_value(type), "inline") == 0))
		return bad(why, whylen, "%s.type: must be \"inline\" or \"reference\"", path);
	if ((e = only_keys(s, inline_keys, path, why, whylen)) != DG_OK)
		return e;
	v = json_object_get(s, "handler");
	if (!json_is_string(v) || !is_handler(json_string_value(v)))
		return bad(why, whylen, "%s.handler: required, vendor/name:N (5-32 bytes)", path);
	v = json_object_get(s, "handlerProperties");
	if (v && !json_is_object(v))
		return bad(why, whylen, "%s.handlerProperties: must be an object", path);
	v = json_object_get(s, "files");
	if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 10)
		return bad(why, whylen, "%s.files: required, 1-10 file names", path);
	for (i = 0; i < json_array_size(v); i++) {
		name = json_array_get(v, i);
		if (!is_string_len(name, 1, 255))
			return bad(why, whylen, "%s.files[%zu]: 1-255 bytes", path, i);
		for (j = 0; j < json_array_size(files); j++)
			if (json_equal(json_object_get(json_array_get(files, j), "filename"), (json_t *)name))
				break;
		if (j == json_array_size(files))
			return bad(why, whylen, "%s.files[%zu]: '%s' is not in files", path, i,
			    json_string_value(name));
	}
	return DG_OK;
}

dg_err
dg_manifest_validate(const json_t *doc, char *why, size_t whylen)
{
	static const char *const keys[] = { "$schema", "updateId", "description", "compatibility",
		"instructions", "files", "manifestVersion", "createdDateTime", NULL };
	const json_t *v, *files, *steps, *set;
	const char *key;
	char sub[96];
	double total = 0;
	size_t i, j;
	dg_err e;

	if (!json_is_object(doc))
		return bad(why, whylen, "manifest: must be an object");
	if ((e = only_keys(doc, keys, "manifest", why, whylen)) != DG_OK)
		return e;
	v = json_object_get(doc, "$schema");
	if (v && !json_is_string(v))
		return bad(why, whylen, "$schema: must be a string");
	if ((e = check_update_id(json_object_get(doc, "updateId"), "updateId", why, whylen)) != DG_OK)
		return e;
	v = json_object_get(doc, "description");
	if (v && !is_string_len(v, 1, 512))
		return bad(why, whylen, "description: 1-512 bytes");
	v = json_object_get(doc, "compatibility");
	if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > MAX_COMPAT)
		return bad(why, whylen, "compatibility: required, 1-%d sets", MAX_COMPAT);
	for (i = 0; i < json_array_size(v); i++) {
		const json_t *val;

		set = json_array_get(v, i);
		if (!json_is_object(set) || json_object_size(set) < 1 || json_object_size(set) > 5)
			return bad(why, whylen, "compatibility[%zu]: an object of 1-5 properties", i);
		json_object_foreach((json_t *)set, key, val)
			if (!strlen_in(key, 1, 32) || !is_string_len(val, 1, 64))
				return bad(why, whylen, "compatibility[%zu].%s: name 1-32 bytes, "
				    "string value 1-64 bytes", i, key);
	}
	files = json_object_get(doc, "files");
	if (files && !json_is_null(files)) {
		if (!json_is_array(files) || json_array_size(files) > MAX_FILES)
			return bad(why, whylen, "files: an array of at most %d files", MAX_FILES);
		for (i = 0; i < json_array_size(files); i++) {
			const json_t *f = json_array_get(files, i);

			snprintf(sub, sizeof(sub), "files[%zu]", i);
			if ((e = check_base_file(f, sub, 1, why, whylen)) != DG_OK)
				return e;
			total += json_number_value(json_object_get(f, "sizeInBytes"));
			for (j = 0; j < i; j++)
				if (json_equal(json_object_get(json_array_get(files, j), "filename"),
				    json_object_get(f, "filename")))
					return bad(why, whylen, "files[%zu].filename: '%s' twice", i,
					    json_string_value(json_object_get(f, "filename")));
		}
		if (total > 2147483648.0)
			return bad(why, whylen, "files: sizes add up to more than 2 GB");
	} else {
		files = NULL;
	}
	v = json_object_get(doc, "instructions");
	if (!json_is_object(v))
		return bad(why, whylen, "instructions: required, an object");
	{
		static const char *const ikeys[] = { "steps", NULL };

		if ((e = only_keys(v, ikeys, "instructions", why, whylen)) != DG_OK)
			return e;
	}
	steps = json_object_get(v, "steps");
	if (!json_is_array(steps) || json_array_size(steps) < 1 || json_array_size(steps) > MAX_STEPS)
		return bad(why, whylen, "instructions.steps: required, 1-%d steps", MAX_STEPS);
	for (i = 0; i < json_array_size(steps); i++) {
		snprintf(sub, sizeof(sub), "instructions.steps[%zu]", i);
		if ((e = check_step(json_array_get(steps, i), sub, files, why, whylen)) != DG_OK)
			return e;
	}
	v = json_object_get(doc, "manifestVersion");
	if (!json_is_string(v) || strcmp(json_string_value(v), "5.0") != 0)
		return bad(why, whylen, "manifestVersion: required, \"5.0\"");
	v = json_object_get(doc, "createdDateTime");
	if (!json_is_string(v) || !is_datetime(json_string_value(v)))
		return bad(why, whylen, "createdDateTime: required, ISO 8601 (2020-10-02T22:18:04Z)");
	return DG_OK;
}

dg_err
dg_manifest_hash_file(const char *path, uint64_t *size, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE], *buf = NULL;
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	uint64_t total = 0;
	int fd = -1;
	dg_err e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		e = dg_err_from_errno(errno);
		goto fail;
	}
	if (!(buf = malloc(65536))) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if (!(ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		e = DG_ERR_CRYPTO;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf, 65536);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno == EISDIR ? DG_ERR_INVAL : DG_ERR_IO;
			goto fail;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			e = DG_ERR_CRYPTO;
			goto fail;
		}
		total += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		e = DG_ERR_CRYPTO;
		goto fail;
	}
	EVP_EncodeBlock((unsigned char *)out, md, 32);
	*size = total;
	e = DG_OK;
fail:
	EVP_MD_CTX_free(ctx);
	free(buf);
	if (fd >= 0)
		close(fd);
	return e;
}
